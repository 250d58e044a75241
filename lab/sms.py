"""SMS gateway simulators for tests: Alibaba Cloud SMS (dysmsapi SendSms, RPC style) and Tencent
Cloud SMS (SendSms API 3.0), written from their published API documents (the request shapes,
signatures and error codes are listed in rules/alerting/notifiers/sms.py's doc).

`SmsGateway(provider, key_id, secret, templates={code: [variables]})` on the running loop, at
`url`. It checks what the real services check and answers as they do:
- the signature (Alibaba: HMAC-SHA1 over the sorted form; Tencent: TC3-HMAC-SHA256 over the
  canonical request with content-type and host), the key id, the timestamp (Alibaba 15 min,
  Tencent 5 min) and, for Alibaba, SignatureNonce reuse;
- the sign name (`sign_names`), the template and that its variables are all given, each at most
  `max_param_chars` (Alibaba isv.PARAM_LENGTH_LIMIT; Tencent
  InvalidParameterValue.TemplateParameterLengthLimit);
- numbers: mainland mobiles (Alibaba isv.MOBILE_NUMBER_ILLEGAL for the request; Tencent
  InvalidParameterValue.IncorrectPhoneNumber per number), `blacklist` (Tencent
  FailedOperation.PhoneNumberInBlacklist per number);
- `per_number_interval_s`: one SMS per number in that time (Alibaba isv.BUSINESS_LIMIT_CONTROL
  for the request, Tencent LimitExceeded.PhoneNumberThirtySecondLimit per number);
- `balance`: SMS left (per number texted); at 0 Alibaba isv.AMOUNT_NOT_ENOUGH, Tencent
  FailedOperation.InsufficientBalanceInSmsPackage.
Scripted faults: `fail_next` = ["http500", "hang", "system"] consumed in order (system =
isp.SYSTEM_ERROR / InternalError.OtherError).
Accepted messages are in `sent` (number, variables, the OutId/SessionContext).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Self

from aiohttp import web

from rules.alerting.notifiers.sms import aliyun_signature, tc3_authorization

_MOBILE = re.compile(r"1[3-9][0-9]{9}")


@dataclass(frozen=True, slots=True)
class Sent:
    number: str
    variables: dict[str, str]
    context: str


@dataclass
class SmsGateway:
    provider: Literal["aliyun", "tencent"]
    key_id: str = "LTAI-lab-key"
    secret: str = "lab-secret-0a1b2c"
    templates: dict[str, list[str]] = field(default_factory=lambda: {"SMS_100001": ["title", "time"]})
    sign_names: tuple[str, ...] = ("雪亮运维",)
    sdk_app_id: str = "1400006666"
    max_param_chars: int = 35
    per_number_interval_s: float = 0.0
    balance: int = 1_000
    blacklist: tuple[str, ...] = ()
    fail_next: list[str] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    requests: int = 0
    url: str = ""
    _nonces: set[str] = field(default_factory=set)
    _last: dict[str, float] = field(default_factory=dict)
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        fault = self.fail_next.pop(0) if self.fail_next else ""
        if fault == "hang":
            await self._closing.wait()
        if fault == "http500":
            return web.Response(status=500, text="<html>Internal Server Error</html>")
        if self.provider == "aliyun":
            return await self._aliyun(request, fault == "system")
        return await self._tencent(request, fault == "system")

    # -- Alibaba -----------------------------------------------------------------------------------

    async def _aliyun(self, request: web.Request, system: bool) -> web.Response:
        form = dict(await request.post())
        params = {k: str(v) for k, v in form.items()}

        def answer(code: str, message: str, status: int = 200) -> web.Response:
            body = {"RequestId": str(uuid.uuid4()), "Code": code, "Message": message}
            if code == "OK":
                body["BizId"] = f"{int(time.time())}^0"
            return web.json_response(body, status=status)

        signature = params.pop("Signature", "")
        if params.get("AccessKeyId") != self.key_id:
            return answer("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        if not hmac.compare_digest(signature, aliyun_signature(self.secret, request.method, params)):
            return answer("SignatureDoesNotMatch", "Specified signature is not matched with our calculation.", 400)
        try:
            stamp = datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return answer("MissingTimestamp", "Timestamp is mandatory for this action.", 400)
        if abs(time.time() - stamp.timestamp()) > 900:
            return answer("InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", 400)
        nonce = params.get("SignatureNonce", "")
        if nonce in self._nonces:
            return answer("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
        self._nonces.add(nonce)
        if system:
            return answer("isp.SYSTEM_ERROR", "isp.SYSTEM_ERROR")
        if params.get("SignName") not in self.sign_names:
            return answer("isv.SMS_SIGNATURE_ILLEGAL", "签名不合法")
        variables_wanted = self.templates.get(params.get("TemplateCode", ""))
        if variables_wanted is None:
            return answer("isv.SMS_TEMPLATE_ILLEGAL", "模板不合法")
        try:
            variables = json.loads(params.get("TemplateParam", "{}"))
        except ValueError:
            return answer("isv.INVALID_JSON_PARAM", "JSON参数不合法")
        if not isinstance(variables, dict) or set(variables_wanted) - set(variables):
            return answer("isv.TEMPLATE_MISSING_PARAMETERS", "短信模板变量缺少参数")
        if any(not isinstance(v, str) or len(v) > self.max_param_chars for v in variables.values()):
            return answer("isv.PARAM_LENGTH_LIMIT", "参数超出长度限制")
        numbers = params.get("PhoneNumbers", "").split(",")
        if not numbers or not all(_MOBILE.fullmatch(n) for n in numbers):
            return answer("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        now = time.monotonic()
        if any(now - self._last.get(n, -1e9) < self.per_number_interval_s for n in numbers):
            return answer("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1")
        if self.balance < len(numbers):
            return answer("isv.AMOUNT_NOT_ENOUGH", "账户余额不足")
        self.balance -= len(numbers)
        for n in numbers:
            self._last[n] = now
            self.sent.append(Sent(n, variables, params.get("OutId", "")))
        return answer("OK", "OK")

    # -- Tencent ------------------------------------------------------------------------------------

    async def _tencent(self, request: web.Request, system: bool) -> web.Response:
        body = await request.read()
        request_id = str(uuid.uuid4())

        def error(code: str, message: str) -> web.Response:
            return web.json_response({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}})

        auth = request.headers.get("Authorization", "")
        m = re.fullmatch(r"TC3-HMAC-SHA256 Credential=([^/]+)/[^,]+, SignedHeaders=content-type;host, Signature=[0-9a-f]{64}", auth)
        if m is None:
            return error("AuthFailure.InvalidAuthorization", "Authorization in the request header is invalid.")
        if m[1] != self.key_id:
            return error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        try:
            stamp = int(request.headers.get("X-TC-Timestamp", ""))
        except ValueError:
            return error("MissingParameter", "The request is missing a required parameter `Timestamp`.")
        if abs(time.time() - stamp) > 300:
            return error("AuthFailure.SignatureExpire", "Signature expired.")
        expected = tc3_authorization(self.key_id, self.secret, request.headers.get("Host", ""), body, stamp,
                                     content_type=request.headers.get("Content-Type", ""))
        if not hmac.compare_digest(auth, expected):
            return error("AuthFailure.SignatureFailure", "The provided credentials could not be validated.")
        if request.headers.get("X-TC-Action") != "SendSms" or request.headers.get("X-TC-Version") != "2021-01-11":
            return error("InvalidAction", "The action or version is unknown.")
        if system:
            return error("InternalError.OtherError", "其他错误")
        try:
            req: dict[str, Any] = json.loads(body)
        except ValueError:
            return error("FailedOperation.FailResolvePacket", "请求包解析失败")
        if req.get("SmsSdkAppId") != self.sdk_app_id:
            return error("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId不存在")
        if req.get("SignName") not in self.sign_names:
            return error("FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误")
        wanted = self.templates.get(str(req.get("TemplateId", "")))
        params = req.get("TemplateParamSet") or []
        if wanted is None or len(params) != len(wanted):
            return error("FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配")
        if any(not isinstance(p, str) or len(p) > self.max_param_chars for p in params):
            return error("InvalidParameterValue.TemplateParameterLengthLimit", "单个模板变量字符数超过限制")
        statuses = []
        now = time.monotonic()
        for raw in req.get("PhoneNumberSet") or []:
            number = str(raw).removeprefix("+86")
            if not _MOBILE.fullmatch(number):
                code = "InvalidParameterValue.IncorrectPhoneNumber"
            elif number in self.blacklist:
                code = "FailedOperation.PhoneNumberInBlacklist"
            elif now - self._last.get(number, -1e9) < self.per_number_interval_s:
                code = "LimitExceeded.PhoneNumberThirtySecondLimit"
            elif self.balance < 1:
                code = "FailedOperation.InsufficientBalanceInSmsPackage"
            else:
                code = "Ok"
                self.balance -= 1
                self._last[number] = now
                self.sent.append(Sent(number, dict(zip(wanted, params, strict=True)), str(req.get("SessionContext", ""))))
            statuses.append({"SerialNo": str(uuid.uuid4()) if code == "Ok" else "", "PhoneNumber": str(raw),
                             "Fee": 1 if code == "Ok" else 0, "SessionContext": req.get("SessionContext", ""),
                             "Code": code, "Message": "send success" if code == "Ok" else code, "IsoCode": "CN"})
        return web.json_response({"Response": {"SendStatusSet": statuses, "RequestId": request_id}})
