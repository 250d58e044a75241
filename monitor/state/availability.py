"""Three kinds of "online" and the one the contract counts.

Ops teams of video networks know three different "online"s, and they disagree exactly where
problems hide (a camera that answers ping but sends no picture):

- network (网络在线): the device answers ICMP echo (probe `icmp`);
- service (服务在线): its ONVIF device service answers, authenticated (probe `onvif`);
- video (视频在线): its RTSP stream is described (probe `rtsp`) and, where the frame check is
  enabled, a frame decodes (probe `rtsp_frame`);
- picture (画面正常): the frame check's video-quality diagnosis (probes.rtsp_frame.vqd) found
  no score at or over its threshold. Its tracker (named PICTURE) is fed by the `picture_ok` of
  each check's `video_quality` series (picture_verdict); a check that decoded no frame gives no
  verdict. It applies to the cameras the frame check polls while vqd is on.

Each *basis* has a published State per device, derived from the probes' own trackers
(monitor.state.tracker, hysteresis and topology each):

- network: its probe's tracker state, as is (the worst, should several probes feed it).
- service / video: UNREACHABLE while the device is offline on the network (the network is the
  cause, not the service: one fault per problem); else DOWN when any of the basis' probes
  says so, UP when all that poll the device say UP, UNKNOWN until then.
- picture: UNREACHABLE while the network or the video is offline (no picture to judge: they
  are the cause); else its tracker's state (UNKNOWN until the camera's first diagnosed check).
- online (the contract's 在线, for the 95 % rule): the bases listed in
  `availability.online_requires` that apply to the device (default: network and video, i.e.
  "network up and RTSP DESCRIBE OK"); a switch has no video, so for it online = network.
  Network offline gives the network state; any other required basis DOWN gives DOWN; any
  UNKNOWN gives UNKNOWN; else UP.

A basis applies to a device when one of its probes is enabled and polls it (Probe.wants).
Which probes feed which basis is declared by the probes (Probe.basis, probes.probes_of).
"""

from __future__ import annotations

from typing import Annotated, Iterable, Mapping

from pydantic import Field, field_validator

from monitor.core.config_base import Strict
from monitor.core.model import Basis, Device
from monitor.state.tracker import State
from probes import probes_of
from probes.base import ProbeResult
from probes.vqd.config import MEASUREMENT as VIDEO_QUALITY

MEASURED = (Basis.NETWORK, Basis.SERVICE, Basis.VIDEO)
"""The bases probes feed (Probe.basis); `online` is combined from them (and from picture)."""
PICTURE = "picture"
"""The picture basis' tracker: its key among the trackers of `combine` and the `probe` of its
transitions and of its cycles (probe_watch, recorded with the frame check's while vqd is on) in
the state database. The period assessment (monitor.assess) reads it as a probe of its own and
combines it with this module's `combine`, so the quarter's 在线率 counts the picture exactly
when and as the live rates and device_state do."""
PICTURE_PROBE = "rtsp_frame"
"""The probe whose results carry the picture verdict."""


def picture_verdict(result: ProbeResult) -> ProbeResult | None:
    """The picture tracker's result from a frame check (`result` of PICTURE_PROBE): ok when its
    `video_quality` series says picture_ok (no diagnosis at or over its threshold), else failed
    with the faults found as the reason ("frozen", "blur,dark"). None without a verdict: no
    frame decoded (the video basis speaks), or vqd off."""
    for series in result.series:
        if series.measurement == VIDEO_QUALITY.name:
            ok = series.fields.get("picture_ok")
            if isinstance(ok, bool):
                faults = str(series.fields.get("faults", ""))
                return ProbeResult(result.device_id, PICTURE, result.ts_ns, ok, None if ok else f"picture: {faults}", {})
    return None


class AvailabilityConfig(Strict):
    """config.yaml section `availability`."""

    online_requires: Annotated[list[Basis], Field(min_length=1)] = [Basis.NETWORK, Basis.VIDEO]
    """What "online" means for online rates, the period assessment (考核在线率) and the 95 %
    rule: every listed basis that applies to a device must be up. Tenders differ: some count
    ping only ([network]); `picture` (画面正常) needs probes.rtsp_frame with vqd enabled
    (checked by the whole config)."""

    @field_validator("online_requires")
    @classmethod
    def _measured_only(cls, bases: list[Basis]) -> list[Basis]:
        if Basis.ONLINE in bases:
            raise ValueError("online_requires lists measured bases: network, service, video, picture")
        if len(set(bases)) != len(bases):
            raise ValueError("online_requires lists a basis twice")
        return bases


# With several network probes, the worst of their states (each tracker settles its own topology).
_WORST_FIRST = (State.DOWN, State.UNREACHABLE, State.UNKNOWN, State.UP)


def _network(states: list[State]) -> State | None:
    """The network state of one device from its network probes' states; None when none polls it."""
    if len(states) < 2:
        return states[0] if states else None
    return min(states, key=_WORST_FIRST.index)


def _measured(states: list[State], network: State | None) -> State | None:
    """State of one measured basis but network, from its probes' states of one device; None
    when it does not apply (no probe of it polls the device)."""
    if not states:
        return None
    if network is not None and network.offline:
        return State.UNREACHABLE
    if any(s.offline for s in states):
        return State.DOWN
    if all(s is State.UP for s in states):
        return State.UP
    return State.UNKNOWN


def combine(
    devices: Iterable[Device],
    trackers: Mapping[str, Mapping[str, State]],
    polled: Mapping[str, frozenset[str]],
    online_requires: Iterable[Basis],
) -> dict[Basis, dict[str, State]]:
    """Per-basis states of every device.

    - trackers: probe name → (device id → published state of that probe's tracker);
    - polled: probe name → ids of the devices the (enabled) probe polls.
    Returns basis → (device id → State), with only the devices a basis applies to (`online`:
    every device polled by any probe). The picture tracker, when it runs, is `trackers[PICTURE]`
    with `polled[PICTURE]` (the frame check's devices). When only network probes run, `online`
    and `network` are one and the same dict: read them, do not change them.
    """
    required = tuple(online_requires)
    # basis → the probes of it that run (are in `polled`)
    running = {b: [(trackers[p], polled[p]) for p in probes_of(b) if p in polled] for b in MEASURED}
    out: dict[Basis, dict[str, State]] = {b: {} for b in Basis}
    network_probes = running[Basis.NETWORK]
    picture = (trackers[PICTURE], polled[PICTURE]) if PICTURE in polled else None
    derived = any(running[b] for b in (Basis.SERVICE, Basis.VIDEO)) or picture is not None
    out_network = out[Basis.NETWORK]
    if not derived:
        # Only network probes run: online is the network state (_online of it alone), one
        # mapping for both (one table of every device less per evaluation: ~5 MB at 100,000).
        out[Basis.ONLINE] = out_network
    for device in devices:
        key = device.id
        if len(network_probes) == 1:  # the common case, without building a list per device
            states, ids = network_probes[0]
            network = states[key] if key in ids else None
        else:
            network = _network([states[key] for states, ids in network_probes if key in ids])
        if not derived:
            # Only network probes run: online is the network state (_online of it alone).
            if network is not None:
                out_network[key] = network
            continue
        measured: dict[Basis, State] = {}
        if network is not None:
            measured[Basis.NETWORK] = network
        for basis in (Basis.SERVICE, Basis.VIDEO):
            state = _measured([states[key] for states, ids in running[basis] if key in ids], network)
            if state is not None:
                measured[basis] = state
        if picture is not None and key in picture[1]:
            video = measured.get(Basis.VIDEO)
            blind = (network is not None and network.offline) or (video is not None and video.offline)
            measured[Basis.PICTURE] = State.UNREACHABLE if blind else picture[0][key]
        for basis, state in measured.items():
            out[basis][key] = state
        if measured:
            out[Basis.ONLINE][key] = _online([measured[b] for b in required if b in measured] or list(measured.values()), network)
    return out


def judged(trackers: Mapping[str, Mapping[str, State]], polled: Mapping[str, frozenset[str]]) -> dict[Basis, frozenset[str]]:
    """Per derived basis (service, video, picture): the ids of the devices one of its own probes has
    given a verdict (a state other than UNKNOWN). `combine` calls a device offline on the
    network UNREACHABLE on these bases before their probes ever ran; such a state is derived,
    not judged, and an online rate made only of derived states would be false (issue 13:
    right after start-up a region's service rate read 0.00 %). Network and online states are
    verdicts themselves (their UNKNOWN is left out of the rates anyway), so they are not listed.
    Arguments as for `combine`."""
    out: dict[Basis, frozenset[str]] = {}
    for basis in (Basis.SERVICE, Basis.VIDEO):
        out[basis] = frozenset(
            key for p in probes_of(basis) if p in polled
            for key, state in trackers[p].items() if state is not State.UNKNOWN and key in polled[p]
        )
    if PICTURE in polled:
        out[Basis.PICTURE] = frozenset(
            key for key, state in trackers[PICTURE].items() if state is not State.UNKNOWN and key in polled[PICTURE])
    return out


def _online(states: list[State], network: State | None) -> State:
    if network is not None and network.offline:
        return network
    if any(s.offline for s in states):
        return State.DOWN
    if any(s is State.UNKNOWN for s in states):
        return State.UNKNOWN
    return State.UP
