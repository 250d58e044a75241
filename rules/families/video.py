"""video_down: a camera up on the network whose video basis (or, with `basis: service`, its
service basis) is down: the picture is gone while ping says all is well. The title gives the
reason of the basis' probes (probes_of: RTSP DESCRIBE, the frame check; for the service basis
the probe's name before its reason, since several feed it: ONVIF, HTTP, TCP, ISAPI of NVRs).
While the device is offline on the network the basis is UNREACHABLE: device_down speaks for it,
a firing fault is held. With `basis: service` and a selector of platforms, servers or NVRs it
is their service check: a device no network probe polls is named without "network up".
"""

from __future__ import annotations

from typing import Literal

from monitor.core.config_base import SelectorConfig
from monitor.core.model import Basis, Kind
from monitor.state.tracker import State
from probes import probes_of
from rules.base import Condition, Facts, Key, Now, RuleBase

TITLES = {
    "zh": {
        "video": "{kind}{name}网络正常但视频中断（{reason}）",
        "service": "{kind}{name}网络正常但服务异常（{reason}）",
        "service_alone": "{kind}{name}服务异常（{reason}）",
        "unknown_reason": "原因未知",
    },
    "en": {
        "video": "{kind} {name} network up but no video ({reason})",
        "service": "{kind} {name} network up but service failing ({reason})",
        "service_alone": "{kind} {name} service failing ({reason})",
        "unknown_reason": "reason unknown",
    },
}


class VideoDownRule(RuleBase):
    titles = TITLES
    type: Literal["video_down"] = "video_down"
    match: SelectorConfig = SelectorConfig(kind=[Kind.CAMERA])
    basis: Literal["video", "service"] = "video"
    """Which basis must be up besides the network (monitor.state.availability)."""

    def watch(self, facts: Facts) -> None:
        facts.match(self)
        facts.keep_reasons(probes_of(Basis(self.basis)))

    def evaluate(self, facts: Facts, now: Now, out: dict[Key, Condition]) -> None:
        basis = now.view.bases.get(Basis(self.basis), {})
        if not basis:
            return  # the basis' probes are not running
        probes = probes_of(Basis(self.basis))
        t = self.titles[facts.language]
        for device in facts.devices[self.name]:
            key = (self.name, f"device:{device.id}")
            state = basis.get(device.id)
            if state is None:
                continue
            if key in now.firing:
                holds = state is not State.UP  # offline on the network or unknown: no news, hold
            else:
                holds = state is State.DOWN
            if not holds:
                continue
            reason = next((self._reason(p, r) for p in probes if (r := facts.reasons.get((device.id, p)))),
                          t["unknown_reason"])
            pinged = device.id in now.view.bases.get(Basis.NETWORK.value, {})
            template = self.basis if pinged or self.basis == "video" else "service_alone"
            out[key] = Condition(
                self.name, self.type, key[1], self.severity,
                t[template].format(kind=facts.kinds[device.kind], name=device.name, reason=reason),
                self.for_s, self.clear_for_s, since_ns=None, device_id=device.id, site=device.site,
                region=device.region, details={"basis": self.basis, "reason": reason}, held=state is not State.DOWN,
            )

    def _reason(self, probe: str, reason: str) -> str:
        """The reason as the title shows it: prefixed by its probe on the service basis."""
        return f"{probe}: {reason}" if self.basis == "service" else reason
