"""Video-quality diagnosis: thresholds from the ROC of a tuning split, precision and recall on a
held-out split of real photographs (lab/vqd_data.py), CPU per frame and per camera check.

`python -m bench.vqd [--per-photo 10] [--seed 17]` (no root, no network; needs Debian's
opencv-doc for its photographs). Prints:
1. per diagnosis the threshold chosen on the tuning split (best TPR at FPR ≤ 0.5 %, midway in
   the gap to the next positive) beside the shipped default (probes/vqd/config.py): the split
   rendered at its native size (384 px wide) and at SUB_STREAM (640×360, a camera's 16:9
   sub-stream, scaled to 480 px as decoded frames are) taken together, as a camera can be read
   at either; the choice on each size alone beside it;
2. per diagnosis on the held-out split with the shipped defaults: TP, FP, FN, precision,
   recall; and false alarms on the clean samples;
3. CPU (process time) per check: scoring a burst of two 384-px frames against the camera's
   reference (computed once per camera and kept, as the frame check does; its cost is printed
   apart), and the fleet's load: 1,850 cameras at one check per 15 minutes as a share of one
   core. Decoding is not included (the frame check's ffmpeg).
Targets of issue 17: precision and recall ≥ 0.95, false alarms on clean ≤ 1 %, ≤ 5 % of a core.

`--size 640x360`: the held-out split only, its samples rendered at that size (lab/vqd_data.py:
the same samples as at 384 px, crop, exposures, defect and strength; 640×360 is a camera's 16:9 sub-stream, which
the frame check reads by default) and scaled down to 480 px wide before the measures, as decoded frames
are; table 2 and the CPU per check at that size, with the shipped thresholds.
"""

from __future__ import annotations

import argparse
import statistics
import sys

CAMERAS, PERIOD_S = 1850, 900
SUB_STREAM = (640, 360)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want WxH, e.g. 640x360") from None
    if not (64 <= width <= 4096 and 48 <= height <= 4096):
        raise argparse.ArgumentTypeError(f"{text!r}: 64x48 … 4096x4096")
    return width, height


def _print_quality(held, thresholds) -> None:
    """The precision/recall table of `held` (scored samples) at `thresholds`, and the false
    alarms on its clean samples."""
    from lab.vqd_data import quality

    table, false_alarms = quality(held, thresholds)
    print(f"{'diagnosis':<12} {'TP':>5} {'FP':>5} {'FN':>5} {'precision':>10} {'recall':>7}")
    for q in table:
        print(f"{q.diagnosis:<12} {q.tp:>5} {q.fp:>5} {q.fn:>5} {q.precision:>10.3f} {q.recall:>7.3f}")
    clean = sum(1 for s in held if s.label == "clean")
    print(f"false alarms on clean samples: {false_alarms:.2%} of {clean}")


def _held_out(args: argparse.Namespace, defaults) -> int:
    """Table 2 and the CPU per check with the held-out split rendered at args.size."""
    from lab.vqd_data import HELD_OUT, score_all

    width, height = args.size
    held = score_all(HELD_OUT, args.per_photo, args.seed + 1, (width, height))
    print(f"held-out split at {width}x{height} (scaled to 480 px wide before the measures): {', '.join(HELD_OUT)}; "
          f"{len(held)} samples, shipped default thresholds")
    _print_quality(held, defaults)
    cpu = [s.cpu_s for s in held]
    print(f"CPU per check at {width}x{height} (prepare, scaled to 480 px, and every measure; reference ready): "
          f"mean {statistics.mean(cpu) * 1e3:.1f} ms, p95 {statistics.quantiles(cpu, n=20)[-1] * 1e3:.1f} ms")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-photo", type=int, default=10, help="samples per label and photograph (10)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--size", type=_size, help="WxH: the held-out split rendered at this size (e.g. 640x360)")
    args = parser.parse_args(argv)

    from lab.vqd_data import DEFECTS, HELD_OUT, TUNING, choose_threshold, quality, score_all
    from probes.vqd.config import Thresholds

    defaults = Thresholds()
    if args.size is not None:
        return _held_out(args, defaults)
    tuning = score_all(TUNING, args.per_photo, args.seed)
    tuning_sub = score_all(TUNING, args.per_photo, args.seed, SUB_STREAM)
    sub = "x".join(map(str, SUB_STREAM))
    print(f"tuning split: {', '.join(TUNING)}; {len(tuning)} samples at 384 px and {len(tuning_sub)} at {sub}")
    print(f"{'diagnosis':<12} {'ROC threshold':>13} {'TPR':>6} {'FPR':>7} {'default':>8} {'384 px':>8} {sub:>8}")
    chosen = {}
    for d in DEFECTS:
        t, tpr, fpr = choose_threshold(tuning + tuning_sub, d)
        chosen[d] = t
        alone = [choose_threshold(s, d)[0] for s in (tuning, tuning_sub)]
        print(f"{d:<12} {t:>13.4f} {tpr:>6.3f} {fpr:>7.4f} {getattr(defaults, d):>8g} {alone[0]:>8.4f} {alone[1]:>8.4f}")

    held = score_all(HELD_OUT, args.per_photo, args.seed + 1)
    print(f"\nheld-out split: {', '.join(HELD_OUT)}; {len(held)} samples, shipped default thresholds")
    _print_quality(held, defaults)
    tuned_table, tuned_fa = quality(held, defaults.model_copy(update=chosen))
    worst = min(min(q.precision, q.recall) for q in tuned_table)
    print(f"(with the unrounded ROC thresholds: worst precision/recall {worst:.3f}, false alarms {tuned_fa:.2%})")

    cpu = [s.cpu_s for s in tuning + held]  # 384 px only: the sub-stream's CPU is --size's
    per_check = statistics.mean(cpu)
    print(f"\nCPU per check (burst of 2 frames, 384 px, reference ready): mean {per_check * 1e3:.1f} ms, "
          f"p95 {statistics.quantiles(cpu, n=20)[-1] * 1e3:.1f} ms; taking a reference (once per camera): "
          f"mean {statistics.mean(s.ref_cpu_s for s in tuning + held) * 1e3:.1f} ms")
    load = per_check * CAMERAS / PERIOD_S
    print(f"{CAMERAS} cameras, one check per {PERIOD_S // 60} min: {load:.2%} of one core (analysis only)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
