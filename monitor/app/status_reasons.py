"""Why a probe failed, in Chinese, for the phone status page: one table of the reason texts the
probes write into ProbeResult.reason (short English, probes/*.py) and their translations.

Shape: EXACT maps a whole reason to its Chinese; PATTERNS are (regex, template) pairs for the
reasons that carry a number or a nested text ("timeout (5 s)", "TLS handshake failed: …"), the
template's $1, $2 … being the regex's groups. The regexes use only syntax that Python's `re`
and JavaScript's RegExp read alike (no named groups, no look-behind): the page's script
(static/status.js) applies them, reading them from the HTML's data-reasons attribute
(status_page.load_assets). English pages show the reason as the probe wrote it, and so do
Chinese pages for a reason found in neither table (a camera's own RTSP phrase, a new probe's
text): nothing is lost, only left untranslated.

Sources of the texts: probes/icmp.py (RFC 792 / RFC 4443 unreachable codes, errno), rtsp.py,
_onvif_client.py, http.py, tcp.py, tls.py, _snmp_engine.py, snmp.py, nvr.py.
"""

from __future__ import annotations

import json
import re

EXACT: dict[str, str] = {
    # ICMP (probes/icmp.py): no reply, ICMP errors (RFC 792, RFC 1812, RFC 4443), send errors
    "timeout": "超时无响应",
    "network unreachable": "网络不可达",
    "host unreachable": "主机不可达",
    "protocol unreachable": "协议不可达",
    "port unreachable": "端口不可达",
    "fragmentation needed": "需要分片",
    "source route failed": "源路由失败",
    "destination network unknown": "目的网络未知",
    "destination host unknown": "目的主机未知",
    "source host isolated": "源主机被隔离",
    "network administratively prohibited": "网络被管理禁止",
    "host administratively prohibited": "主机被管理禁止",
    "network unreachable for TOS": "该服务类型网络不可达",
    "host unreachable for TOS": "该服务类型主机不可达",
    "communication administratively prohibited": "通信被禁止（防火墙或策略路由）",
    "host precedence violation": "主机优先级违规",
    "precedence cutoff in effect": "优先级截止生效",
    "beyond scope of source address": "超出源地址作用域",
    "source address failed ingress/egress policy": "源地址未通过出入口策略",
    "reject route to destination": "到目的地的路由被拒绝",
    "destination unreachable": "目的不可达",
    "fragment reassembly time exceeded": "分片重组超时",
    "TTL exceeded in transit": "传输中 TTL 耗尽（可能有路由环路）",
    "hop limit exceeded in transit": "传输中跳数耗尽（可能有路由环路）",
    "parameter problem": "报文参数错误",
    "packet too big": "报文过大",
    "network down": "网络中断",
    "host down": "主机宕机",
    "message too long": "报文过长",
    "address not available": "地址不可用",
    "invalid destination": "目的地址无效（黑洞路由？）",
    "ICMP engine closed": "ICMP 探测已停止",
    # RTSP DESCRIBE and frame check (probes/rtsp.py)
    "connection refused": "连接被拒绝",
    "connection reset by camera": "摄像机重置了连接",
    "connect timeout": "连接超时",
    "cannot connect": "无法连接",
    "connection error": "连接出错",
    "not an RTSP response": "应答不是 RTSP",
    "malformed RTSP header": "RTSP 报头格式错误",
    "response CSeq does not match the request": "应答序号（CSeq）与请求不符",
    "connection closed by camera": "摄像机关闭了连接",
    "connection closed by camera (incomplete response)": "摄像机关闭了连接（应答不完整）",
    "invalid Content-Length": "Content-Length 无效",
    "no SDP in DESCRIBE response": "DESCRIBE 应答中没有 SDP",
    "no video media in SDP": "SDP 中没有视频流",
    "401 Unauthorized": "401 未授权",
    "401 Unauthorized (no credentials configured)": "401 未授权（未配置账号）",
    "401 Unauthorized (no supported authentication scheme)": "401 未授权（认证方式不支持）",
    "401 Unauthorized (wrong credentials)": "401 未授权（账号或密码错误）",
    "404 Not Found": "404 未找到（取流地址错误？）",
    # ONVIF (probes/_onvif_client.py)
    "HTTP 401 Unauthorized (device wants HTTP authentication)": "HTTP 401 未授权（设备要求 HTTP 认证）",
    "HTTP 404 Not Found (ONVIF service not enabled?)": "HTTP 404 未找到（未开启 ONVIF 服务？）",
    "connection reset": "连接被重置",
    "connection failed": "连接失败",
    "connection closed by device": "设备关闭了连接",
    "XML with DTD/entities refused": "拒收带 DTD/实体的 XML",
    "unexpected SOAP response": "SOAP 应答异常",
    "malformed XML": "XML 格式错误",
    "HTTP protocol error": "HTTP 协议错误",
    # HTTP checks (probes/http.py)
    "malformed URL": "URL 格式错误",
    "redirect to a malformed URL": "重定向到格式错误的 URL",
    "redirect to a non-HTTP URL": "重定向到非 HTTP 地址",
    "redirect loop": "重定向循环",
    "body does not contain the expected text": "页面不含预期文字",
    "body does not match": "页面内容不符",
    "connect timed out": "连接超时",
    "host name not resolved": "域名解析失败",
    "connection closed by the server": "服务器关闭了连接",
    "broken response body": "应答内容不完整",
    # TCP and TLS (probes/tcp.py, probes/tls.py)
    "connect failed": "连接失败",
    "no certificate offered": "未提供证书",
    # SNMP (probes/snmp.py, probes/_snmp_engine.py)
    "no address": "未配置地址",
    "no SNMP credentials": "未配置 SNMP 凭据",
    "timeout (agent down or wrong community)": "超时（SNMP 代理未运行或团体名错误）",
    # NVR (probes/nvr.py)
    "account locked by the NVR (too many wrong logins)": "账号被录像机锁定（密码错误次数过多）",
    "connection closed by the NVR": "录像机关闭了连接",
    "broken answer": "应答不完整",
    "malformed HTTP answer": "HTTP 应答格式错误",
}

PATTERNS: tuple[tuple[str, str], ...] = (
    (r"^timeout \(([0-9.]+) s\)$", "超时（$1 秒）"),
    (r"^timeout \(no frame within ([0-9.]+) s\)$", "超时（$1 秒内未收到画面）"),
    (r"^timeout \(no complete answer within ([0-9.]+) s\)$", "超时（$1 秒内无完整应答）"),
    (r"^timeout \(poll not done within ([0-9.]+) s\)$", "超时（$1 秒内未完成轮询）"),
    (r"^no complete response within ([0-9.]+) s$", "$1 秒内无完整应答"),
    (r"^response too large \(> ([0-9]+) bytes\)$", "应答过大（超过 $1 字节）"),
    (r"^(SDP|response body) too large \(> ([0-9]+) bytes\)$", "$1 过大（超过 $2 字节）"),
    (r"^too many headers \(> ([0-9]+)\)$", "报头过多（超过 $1 个）"),
    (r"^unsupported RTSP version (.+)$", "不支持的 RTSP 版本 $1"),
    (r"^bad stream URL \((.+)\)$", "取流地址错误（$1）"),
    (r"^HTTP ([0-9]{3}) redirect without Location$", "HTTP $1 重定向缺少 Location"),
    (r"^too many redirects \(more than ([0-9]+)\)$", "重定向过多（超过 $1 次）"),
    (r"^TLS handshake failed: (.+)$", "TLS 握手失败：$1"),
    (r"^partial: (.+)$", "部分失败：$1"),
)


def translate(reason: str) -> str:
    """`reason` in Chinese by the tables above, or unchanged when neither knows it. The page's
    script does the same; this one serves tests and any Python text that wants it."""
    if reason in EXACT:
        return EXACT[reason]
    for pattern, template in PATTERNS:
        m = re.match(pattern, reason)
        if m:
            return re.sub(r"\$(\d)", lambda g: m.group(int(g.group(1))), template)
    return reason


def as_json() -> str:
    """The tables as the page reads them: {"exact": {en: zh}, "patterns": [[regex, template]]}."""
    return json.dumps({"exact": EXACT, "patterns": [list(p) for p in PATTERNS]}, ensure_ascii=False,
                      separators=(",", ":"))
