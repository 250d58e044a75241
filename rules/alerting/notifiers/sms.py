"""The SMS route (短信): fault events as template SMS through Alibaba Cloud SMS (阿里云短信,
dysmsapi SendSms) or Tencent Cloud SMS (腾讯云短信, SendSms API 3.0), to fixed numbers and/or
whoever is on duty (rules.alerting.duty). Chinese SMS must use a pre-approved signature (签名)
and template (模板); fleetmon fills the template's variables (`params`).

Alibaba Cloud (RPC style, https://help.aliyun.com/document_detail/101414.html and 101343):
`POST {endpoint}` form-encoded: Action=SendSms, Version=2017-05-25, RegionId, PhoneNumbers
(comma-separated), SignName, TemplateCode, TemplateParam (JSON object of the variables), OutId
(our event ids), and the common AccessKeyId, Format=JSON, SignatureMethod=HMAC-SHA1,
SignatureVersion=1.0, SignatureNonce, Timestamp (UTC ISO 8601), Signature = Base64(HMAC-SHA1(
secret + "&", "POST&%2F&" + percentEncode(sorted canonical query))), percentEncode being RFC 3986
(space %20, * %2A, ~ kept). Answer: `{"Code": "OK", "Message", "BizId", "RequestId"}`; errors
are other Codes (HTTP 200 for isv.*, 4xx for signature and key errors).

Tencent Cloud (https://cloud.tencent.com/document/api/382/55981, signature v3 TC3-HMAC-SHA256,
https://cloud.tencent.com/document/api/382/52072): `POST {endpoint}` JSON {PhoneNumberSet
(+86…), SmsSdkAppId, SignName, TemplateId, TemplateParamSet (the variables in order),
SessionContext (our event ids)} with X-TC-Action=SendSms, X-TC-Version=2021-01-11, X-TC-Region,
X-TC-Timestamp and `Authorization: TC3-HMAC-SHA256 Credential=ID/DATE/sms/tc3_request,
SignedHeaders=content-type;host, Signature=…`. Answer: {"Response": {"SendStatusSet": [{
"PhoneNumber", "Code": "Ok" | …}], "RequestId"}} or {"Response": {"Error": {"Code", "Message"}}}.

What the route does (the outbox owns durability and order):
- Only `kinds` are texted (default firing, escalated, SLA breached: an SMS wakes somebody);
  other events of the route are consumed without a message, as documented here.
- All pending events go out as one SMS per call: the first event's fields, and with several,
  `title` = "N条告警：<first title>" — a burst costs one SMS per number, not one per camera.
- Variables are cut to `param_max_chars` (providers refuse longer ones: Alibaba 35 characters
  for notification templates; `isv.PARAM_LENGTH_LIMIT`).
- Numbers that already received a batch are not texted again when only other numbers failed
  (Tencent reports per number): the retry goes to the rest. After a restart the memory is gone:
  at least once, as for every route.
- Rate limits (Alibaba isv.BUSINESS_LIMIT_CONTROL, Tencent LimitExceeded.*, RequestLimitExceeded)
  → retry_after_s = RATE_RETRY_S; balance exhausted (isv.AMOUNT_NOT_ENOUGH,
  isv.OUT_OF_SERVICE, FailedOperation.InsufficientBalanceInSmsPackage) and configuration errors
  (wrong key or signature, unapproved sign name or template, bad numbers or parameters) →
  retry_after_s = REJECTED_RETRY_S with what to fix; never dropped. System errors, HTTP 5xx,
  no connection → the outbox's backoff.
- No answer after the request went out (timeout, broken connection): the gateway may have sent
  the SMS, so it is sent again only after `resend_after_s`, doubled for each further such
  attempt (at most MAX_RESEND_S): an SMS repeated costs money and wakes people twice.
- The secret never leaves this module except inside the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import aiohttp
from pydantic import ConfigDict, Field, field_validator, model_validator

from monitor.core.config_base import ResolvedSecret, WithSecrets, is_bare_http_url
from monitor.core.timecheck import ZoneName
from rules.alerting.duty import DutyRoster
from rules.alerting.notifiers.base import Delivery, Progress, RouteConfigBase
from rules.alerting.notifiers.wecom import CONNECT_TIMEOUT_S, MAX_RESEND_S
from rules.model import EventKind, FaultEvent, Severity

ENDPOINTS = {"aliyun": "https://dysmsapi.aliyuncs.com/", "tencent": "https://sms.tencentcloudapi.com/"}
RATE_RETRY_S = 60.0
REJECTED_RETRY_S = 600.0
PARAM_SOURCES = ("title", "time", "region", "site", "device", "fault_id", "severity", "count")
"""What a template variable can be filled with (`params: {variable: source}`)."""

_RATE = ("isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL", "LimitExceeded", "RequestLimitExceeded",
         "Throttling")
_BALANCE = ("isv.AMOUNT_NOT_ENOUGH", "isv.OUT_OF_SERVICE", "FailedOperation.InsufficientBalanceInSmsPackage")
_RETRYABLE = ("isp.", "InternalError", "ServiceUnavailable")
_NUMBER_PERMANENT = ("InvalidParameterValue.IncorrectPhoneNumber", "FailedOperation.PhoneNumberInBlacklist",
                     "UnsupportedOperation")
_WORDS = {"zh": "{n}条告警：{title}", "en": "{n} alarms: {title}"}


class SmsConfig(RouteConfigBase, WithSecrets):
    """An SMS route (config `notify.routes[]` with `type: sms`).

    - provider: aliyun | tencent; endpoint: its API URL (the provider's by default; a lab
      simulator in tests).
    - access_key_id: Alibaba AccessKeyId or Tencent SecretId; access_key_secret_env / _file:
      the AccessKeySecret / SecretKey (resolved into `access_key_secret`, never printed).
    - sign_name: the approved signature (短信签名); template: TemplateCode (Alibaba, SMS_…) or
      TemplateId (Tencent); sdk_app_id: Tencent's SmsSdkAppId; region: Alibaba RegionId or
      Tencent X-TC-Region.
    - params: the template's variables in order → what fills them (PARAM_SOURCES);
      param_max_chars: each cut to this many characters.
    - to: mobile numbers (11 digits, or +86…); to_duty: also whoever is on duty.
    - kinds: which events are texted; min_severity defaults to critical (an SMS wakes people).
    """

    model_config = ConfigDict(hide_input_in_errors=True)
    secrets = ("access_key_secret",)

    type: Literal["sms"]
    provider: Literal["aliyun", "tencent"]
    endpoint: str | None = None
    access_key_id: Annotated[str, Field(min_length=1, max_length=128)]
    access_key_secret_env: str | None = None
    access_key_secret_file: Path | None = None
    sign_name: Annotated[str, Field(min_length=1, max_length=32)]
    template: Annotated[str, Field(min_length=1, max_length=64)]
    sdk_app_id: str | None = None
    region: str | None = None
    params: dict[str, Literal["title", "time", "region", "site", "device", "fault_id", "severity", "count"]] = {
        "title": "title", "time": "time"}
    param_max_chars: Annotated[int, Field(ge=4, le=200)] = 35
    to: list[Annotated[str, Field(pattern=r"^(\+86)?1[3-9][0-9]{9}$")]] = []
    to_duty: bool = False
    kinds: list[EventKind] = [EventKind.FIRING, EventKind.ESCALATED, EventKind.SLA_BREACHED]
    min_severity: Severity = Severity.CRITICAL
    language: Literal["zh", "en"] = "zh"
    timezone: ZoneName = "Asia/Shanghai"
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    resend_after_s: Annotated[float, Field(gt=0, le=3600)] = 300.0

    access_key_secret: ResolvedSecret = None

    @field_validator("endpoint")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and not is_bare_http_url(url):
            raise ValueError("must be an http(s) URL without credentials or query")
        return url

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.access_key_secret is None:
            raise ValueError("give the secret as access_key_secret_env or access_key_secret_file")
        if not self.to and not self.to_duty:
            raise ValueError("no recipient: give `to` numbers or `to_duty: true`")
        if self.provider == "tencent" and not self.sdk_app_id:
            raise ValueError("tencent needs sdk_app_id (SmsSdkAppId)")
        return self

    @property
    def url(self) -> str:
        return self.endpoint or ENDPOINTS[self.provider]


def percent_encode(text: str) -> str:
    """RFC 3986 percent-encoding as Alibaba Cloud's RPC signature wants it (UTF-8; A-Z a-z 0-9
    - _ . ~ kept; space %20, * %2A)."""
    return quote(text, safe="-_.~")


def aliyun_signature(secret: str, method: str, params: dict[str, str]) -> str:
    """Signature of an Alibaba Cloud RPC request (HMAC-SHA1 v1.0) over `params` (without
    Signature): Base64(HMAC-SHA1(secret&, METHOD&%2F&encode(sorted k=v&…)))."""
    query = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))
    to_sign = f"{method}&{percent_encode('/')}&{percent_encode(query)}"
    return base64.b64encode(hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


def tc3_authorization(secret_id: str, secret_key: str, host: str, body: bytes, timestamp: int,
                      service: str = "sms", content_type: str = "application/json; charset=utf-8") -> str:
    """The Authorization header of a Tencent Cloud API 3.0 POST (TC3-HMAC-SHA256)."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical = "\n".join(["POST", "/", "", f"content-type:{content_type}\nhost:{host}\n", "content-type;host",
                           hashlib.sha256(body).hexdigest()])
    scope = f"{date}/{service}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"

    def mac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    signing = mac(mac(mac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    return (f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host, "
            f"Signature={signature}")


class SmsRoute:
    """The `sms` route (rules.alerting.notifiers.base.Route); see the module doc."""

    type: ClassVar[str] = "sms"

    def __init__(self, cfg: SmsConfig, duty: DutyRoster | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.duty = duty
        self.tz = ZoneInfo(cfg.timezone)
        self._got: dict[int, set[str]] = {}  # event id → numbers that got it (until all did)
        self._uncertain: dict[int, int] = {}  # first texted event id → answerless attempts
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
            total=self.cfg.timeout_s, connect=min(CONNECT_TIMEOUT_S, self.cfg.timeout_s)))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, events: Sequence[FaultEvent], progress: Progress | None = None) -> Delivery:
        """One SMS with every pending texted event to each number that has not got them. One
        request per call, so `progress` has nothing to report before the call returns."""
        texted = [e for e in events if e.kind in self.cfg.kinds]
        if not texted:
            return Delivery(tuple(e.id for e in events))
        numbers = self._numbers(events[-1].ts_ns)
        if not numbers:
            return Delivery((), retry_after_s=RATE_RETRY_S, error="nobody to text: no number and nobody on duty")
        todo = [n for n in numbers if not all(n in self._got.get(e.id, ()) for e in texted)]
        if not todo:
            return Delivery(tuple(e.id for e in events))
        values = self._values(texted)
        try:
            done, error, retry = await (self._aliyun if self.cfg.provider == "aliyun" else self._tencent)(
                todo, values, ",".join(str(e.id) for e in texted))
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            return Delivery((), error=f"cannot connect to {self.cfg.provider} SMS ({type(exc).__name__})")
        except (aiohttp.ClientError, TimeoutError) as exc:
            attempts = self._uncertain[texted[0].id] = self._uncertain.get(texted[0].id, 0) + 1
            wait = min(MAX_RESEND_S, self.cfg.resend_after_s * 2 ** (attempts - 1))
            return Delivery((), retry_after_s=wait, error=(
                f"no answer from {self.cfg.provider} SMS ({type(exc).__name__}); it may have been sent: "
                f"sent again in {wait:g} s, so a repeat is possible (event #{texted[0].id}, no answer {attempts}×)"))
        self._uncertain.pop(texted[0].id, None)
        for e in texted:
            self._got.setdefault(e.id, set()).update(done)
        if error is None or all(all(n in self._got[e.id] for n in numbers) for e in texted):
            for e in texted:
                self._got.pop(e.id, None)
            return Delivery(tuple(e.id for e in events), error=error)
        return Delivery((), retry_after_s=retry, error=error)

    # -- pieces ----------------------------------------------------------------------------------

    def _numbers(self, ts_ns: int) -> list[str]:
        numbers = [n.removeprefix("+86") for n in self.cfg.to]
        if self.cfg.to_duty and self.duty is not None:
            numbers += [s.mobile.removeprefix("+86") for s in self.duty.on_duty(ts_ns)]
        return list(dict.fromkeys(numbers))

    def _values(self, events: Sequence[FaultEvent]) -> list[tuple[str, str]]:
        """(variable, value) in template order, each cut to param_max_chars."""
        f = events[0].fault
        title = f.title if len(events) == 1 else _WORDS[self.cfg.language].format(n=len(events), title=f.title)
        when = datetime.fromtimestamp(events[0].ts_ns / 1e9, UTC).astimezone(self.tz).strftime("%m-%d %H:%M")
        source = {"title": title, "time": when, "region": f.region or "-", "site": f.site or "-",
                  "device": f.device_id or "-", "fault_id": f.id, "count": str(len(events)),
                  "severity": f.severity.zh if self.cfg.language == "zh" else f.severity.name}
        cut = self.cfg.param_max_chars
        return [(name, _cut(source[what], cut)) for name, what in self.cfg.params.items()]

    async def _aliyun(self, numbers: list[str], values: list[tuple[str, str]], ids: str) -> tuple[set[str], str | None, float | None]:
        assert self._session is not None and self.cfg.access_key_secret is not None
        params = {
            "Action": "SendSms", "Version": "2017-05-25", "RegionId": self.cfg.region or "cn-hangzhou",
            "PhoneNumbers": ",".join(numbers), "SignName": self.cfg.sign_name, "TemplateCode": self.cfg.template,
            "TemplateParam": json.dumps(dict(values), ensure_ascii=False, separators=(",", ":")),
            "OutId": f"fleetmon-{ids}"[:256], "AccessKeyId": self.cfg.access_key_id, "Format": "JSON",
            "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": str(uuid.uuid4()),
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        params["Signature"] = aliyun_signature(self.cfg.access_key_secret.get_secret_value(), "POST", params)
        async with self._session.post(self.cfg.url, data=params, allow_redirects=False) as response:
            status, answer = response.status, await _json(response)
        code = str(answer.get("Code", "")) if answer else ""
        if code == "OK":
            return set(numbers), None, None
        why = f"aliyun SMS HTTP {status}: {code or 'no JSON answer'} {str(answer.get('Message', ''))[:200] if answer else ''}".rstrip()
        return set(), why + _hint(code), _retry(code, status)

    async def _tencent(self, numbers: list[str], values: list[tuple[str, str]], ids: str) -> tuple[set[str], str | None, float | None]:
        assert self._session is not None and self.cfg.access_key_secret is not None
        body = json.dumps({
            "PhoneNumberSet": [f"+86{n}" for n in numbers], "SmsSdkAppId": self.cfg.sdk_app_id,
            "SignName": self.cfg.sign_name, "TemplateId": self.cfg.template,
            "TemplateParamSet": [v for _, v in values], "SessionContext": f"fleetmon-{ids}"[:500],
        }, ensure_ascii=False, separators=(",", ":")).encode()
        host = urlsplit(self.cfg.url).netloc
        now = int(time.time())  # the signature's timestamp: wall clock by the API's definition
        headers = {
            "Content-Type": "application/json; charset=utf-8", "Host": host, "X-TC-Action": "SendSms",
            "X-TC-Version": "2021-01-11", "X-TC-Timestamp": str(now), "X-TC-Region": self.cfg.region or "ap-guangzhou",
            "Authorization": tc3_authorization(self.cfg.access_key_id, self.cfg.access_key_secret.get_secret_value(),
                                               host, body, now),
        }
        async with self._session.post(self.cfg.url, data=body, headers=headers, allow_redirects=False) as response:
            status, answer = response.status, await _json(response)
        reply = answer.get("Response", {}) if answer else {}
        if not isinstance(reply, dict) or "Error" in reply or status != 200:
            err = reply.get("Error", {}) if isinstance(reply, dict) else {}
            code = str(err.get("Code", "")) if isinstance(err, dict) else ""
            why = f"tencent SMS HTTP {status}: {code or 'no API answer'} {str(err.get('Message', ''))[:200] if isinstance(err, dict) else ''}".rstrip()
            return set(), why + _hint(code), _retry(code, status)
        done: set[str] = set()
        failed: list[str] = []
        waits: list[float | None] = []
        answered = set()
        for item in reply.get("SendStatusSet", []):
            number = str(item.get("PhoneNumber", "")).removeprefix("+86")
            code = str(item.get("Code", ""))
            answered.add(number)
            if code == "Ok" or code.startswith(_NUMBER_PERMANENT):
                done.add(number)  # a number that can never get it is not retried for ever
            if code != "Ok":
                failed.append(f"{number}: {code}{_hint(code)}")
                if number not in done:
                    waits.append(_retry(code, 200))
        failed += [f"{n}: not in the answer" for n in numbers if n not in answered]
        retry = max((w for w in waits if w is not None), default=None)
        return done, ("tencent SMS: " + "; ".join(failed)) if failed else None, retry


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any] | None:
    try:
        data = json.loads(await response.content.read(65_536))
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _retry(code: str, status: int) -> float | None:
    """retry_after_s for an error code (None: the outbox's backoff)."""
    if code.startswith(_RATE):
        return RATE_RETRY_S
    if code.startswith(_RETRYABLE) or status >= 500 or not code:
        return None
    return REJECTED_RETRY_S  # balance, keys, signature, template, numbers, parameters


def _hint(code: str) -> str:
    if code.startswith(_BALANCE):
        return " (the SMS account has no balance left: top it up)"
    if not code or code.startswith(_RATE + _RETRYABLE):
        return ""
    return " (fix the route's key, sign name, template or numbers; retried every 10 min meanwhile)"
