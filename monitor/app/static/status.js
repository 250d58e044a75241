// fleetmon status page (monitor/app/status_page.py): fetches the JSON API every `refresh` seconds and
// draws it for a phone. Every text goes in through textContent: device names come from point
// lists and are not trusted. When the daemon cannot be reached the last data stays on screen.
"use strict";

(() => {
  const TEXTS = {
    zh: {
      title: "fleetmon 链路状态",
      other: "EN",
      updated: "更新于 {t} {tz} · 每 {n} 秒刷新",
      loading: "正在加载…",
      unreachable: "无法连接监测服务（{t}）。",
      http: "监测服务返回错误 {code}（{t}）：{msg}",
      unauthorized: "访问令牌缺失或错误（{t}）：请使用带 ?token= 的链接打开本页。",
      kept: "以下为 {t} 的数据。",
      nodata: "尚无数据。",
      stale: "探测已停止：最近一轮完成于 {age} 前。",
      starting: "监测服务刚启动，等待第一轮探测完成。",
      fleet: "全网在线率",
      target: "目标 ≥ {p}%",
      online: "在线",
      offline: "离线",
      unknown: "未判定",
      excluded: "延建/拆除",
      regions: "各区域在线率",
      region: "区域",
      worst_first: "最差在前",
      offline_points: "离线点位",
      offline_note: "网络不通，新的在前",
      none_offline: "没有离线点位。",
      down: "离线",
      unreachable_state: "上级故障",
      no_video: "有网无视频",
      no_video_note: "能 ping 通，取流失败",
      no_video_badge: "无视频",
      none_no_video: "无",
      rtsp_reason: "RTSP：{r}",
      no_reason: "原因未知",
      behind_parent: "上级 {p} 离线",
      since: "{t} 起 · {d}",
      more: "另有 {n} 个未显示",
      links: "专线",
      links_note: "时延上限 {ms} ms，最差在前",
      none_links: "没有专线。",
      rtt: "时延",
      loss: "丢包",
      jitter: "抖动",
      no_reply: "无响应",
      no_result: "尚无结果",
      faults: "当前故障",
      none_faults: "没有未恢复的故障。",
      pending: "待确认",
      firing: "告警中",
      acked: "已认领 · {by}",
      not_acked: "未认领",
      maintenance: "维护期",
      cycle: "第 {n} 轮探测（{probe}）完成于 {t} · {targets} 台 · 用时 {d} 秒",
      no_cycle: "第一轮探测尚未完成。",
      critical: "紧急", major: "严重", minor: "一般",
      camera: "摄像机", switch: "交换机", ups: "UPS", link: "专线", server: "服务器", platform: "平台",
      basis_online: "在线率", basis_network: "网络", basis_service: "服务", basis_video: "视频",
      d: "{n}天", h: "{n}小时", m: "{n}分", s: "{n}秒",
      tz_Asia_Shanghai: "北京时间",
    },
    en: {
      title: "fleetmon network status",
      other: "中文",
      updated: "Updated {t} ({tz}) · every {n} s",
      loading: "Loading…",
      unreachable: "Cannot reach the monitoring service ({t}).",
      http: "The monitoring service answered {code} ({t}): {msg}",
      unauthorized: "Token missing or wrong ({t}): open this page with its ?token= link.",
      kept: "Showing the data of {t}.",
      nodata: "No data yet.",
      stale: "Probing has stopped: the last cycle finished {age} ago.",
      starting: "The monitoring service just started; waiting for the first cycle.",
      fleet: "Fleet online rate",
      target: "target ≥ {p} %",
      online: "online",
      offline: "offline",
      unknown: "undecided",
      excluded: "excluded",
      regions: "Online rate per region",
      region: "Region",
      worst_first: "worst first",
      offline_points: "Offline points",
      offline_note: "no network, newest first",
      none_offline: "No point is offline.",
      down: "down",
      unreachable_state: "unreachable",
      no_video: "Network up, no video",
      no_video_note: "answers ping, RTSP fails",
      no_video_badge: "no video",
      none_no_video: "none",
      rtsp_reason: "RTSP: {r}",
      no_reason: "no reason given",
      behind_parent: "behind {p} (down)",
      since: "since {t} · {d}",
      more: "{n} more not shown",
      links: "Dedicated links",
      links_note: "RTT limit {ms} ms, worst first",
      none_links: "No links.",
      rtt: "RTT",
      loss: "loss",
      jitter: "jitter",
      no_reply: "no reply",
      no_result: "no result yet",
      faults: "Open faults",
      none_faults: "No open fault.",
      pending: "pending",
      firing: "firing",
      acked: "acknowledged · {by}",
      not_acked: "not acknowledged",
      maintenance: "maintenance",
      cycle: "Cycle {n} ({probe}) finished {t} · {targets} devices · {d} s",
      no_cycle: "The first cycle has not finished yet.",
      critical: "critical", major: "major", minor: "minor",
      camera: "cameras", switch: "switches", ups: "UPS", link: "links", server: "servers", platform: "platforms",
      basis_online: "online", basis_network: "network", basis_service: "service", basis_video: "video",
      d: "{n} d", h: "{n} h", m: "{n} min", s: "{n} s",
    },
  };
  const MAX_OFFLINE = 100;
  const MAX_LINKS = 10;
  const MAX_FAULTS = 50;
  const FETCH_TIMEOUT_S = 20; // a hung daemon is reported, not waited for
  const MAX_PARENT_HOPS = 32; // bounds the walk up to a root cause, whatever the data
  const HEADLINE_BASIS = "online"; // the contract's rate, when the API reports several

  const body = document.body;
  const targetPct = Number(body.dataset.onlineTargetPct);
  const rttLimitMs = Number(body.dataset.rttLimitMs);
  const [minRefresh, defaultRefresh, maxRefresh] = body.dataset.refreshS.split(" ").map(Number);
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const asked = Number.parseInt(params.get("refresh") || "", 10);
  const refreshS = Number.isFinite(asked) ? Math.min(maxRefresh, Math.max(minRefresh, asked)) : defaultRefresh;
  let lang = TEXTS[params.get("lang")] ? params.get("lang") : null; // null: the daemon's language
  let data = null; // the last data fetched completely
  let problem = null; // {kind, at, code, msg} of the last failed refresh, null after a good one

  // -- helpers ----------------------------------------------------------------------------------

  function t(key, values) {
    const table = TEXTS[currentLang()];
    const text = key in table ? table[key] : key;
    return text.replace(/\{(\w+)\}/g, (_, name) => String(values && name in values ? values[name] : ""));
  }

  function currentLang() {
    return lang || (data && TEXTS[data.status.language] ? data.status.language : "zh");
  }

  // el("p", {class: "x"}, "text", child …): strings become text nodes, never markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fill(id, ...children) {
    document.getElementById(id).replaceChildren(...children.flat().filter((c) => c));
  }

  function zone() {
    return data ? data.status.timezone : "Asia/Shanghai";
  }

  function parts(ms) {
    const fmt = new Intl.DateTimeFormat("en-CA", {
      timeZone: zone(), year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    });
    return Object.fromEntries(fmt.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  }

  // A time of day in the daemon's zone; with the date when it is not today there.
  function clock(ms, seconds) {
    const p = parts(ms);
    const today = parts(Date.now());
    const time = seconds ? `${p.hour}:${p.minute}:${p.second}` : `${p.hour}:${p.minute}`;
    if (p.year === today.year && p.month === today.month && p.day === today.day) return time;
    return p.year === today.year ? `${p.month}-${p.day} ${time}` : `${p.year}-${p.month}-${p.day} ${time}`;
  }

  function duration(ms) {
    let s = Math.max(0, Math.floor(ms / 1000));
    const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
    const out = [];
    for (const [unit, size] of units) {
      const n = Math.floor(s / size);
      s -= n * size;
      if (n > 0 || (unit === "s" && out.length === 0)) out.push(t(unit, { n }));
      if (out.length === 2) break;
    }
    return out.join(currentLang() === "zh" ? "" : " ");
  }

  function pct(value) {
    return value === null || value === undefined ? "—" : `${value.toFixed(2)}%`;
  }

  function rateClass(value) {
    return value === null || value === undefined ? "na" : value < targetPct ? "bad" : "good";
  }

  function num(value, digits) {
    return typeof value === "number" ? value.toFixed(digits) : "—";
  }

  // -- fetching ----------------------------------------------------------------------------------

  class HttpError extends Error {
    constructor(code, msg) {
      super(msg);
      this.code = code;
    }
  }

  async function get(path, okStatuses) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_S * 1000);
    try {
      const resp = await fetch(path, { headers, cache: "no-store", credentials: "omit", signal: abort.signal });
      const json = await resp.json().catch(() => null);
      if (!resp.ok && !(okStatuses || []).includes(resp.status)) {
        throw new HttpError(resp.status, json && typeof json.error === "string" ? json.error : resp.statusText);
      }
      if (json === null) throw new HttpError(resp.status, "not JSON"); // a proxy's page, say
      return json;
    } finally {
      clearTimeout(timer);
    }
  }

  async function load() {
    const [status, down, unreachable, noVideo, links, faults, health] = await Promise.all([
      get("/api/v1/status"),
      get("/api/v1/devices?state=down&limit=10000"),
      get("/api/v1/devices?state=unreachable&limit=10000"),
      get("/api/v1/devices?basis=video&state=down&limit=10000"),
      get("/api/v1/devices?kind=link&limit=1000"),
      get("/api/v1/faults?state=open&limit=500"),
      get("/healthz", [503]),
    ]);
    return { status, down, unreachable, noVideo, links, faults, health, fetchedMs: Date.now() };
  }

  async function refresh() {
    try {
      data = await load();
      problem = null;
      body.dataset.state = "ok";
    } catch (err) {
      problem = err instanceof HttpError
        ? { kind: err.code === 401 ? "unauthorized" : "http", code: err.code, msg: err.message, at: Date.now() }
        : { kind: "unreachable", at: Date.now() };
      body.dataset.state = "error";
    }
    try {
      render();
    } finally {
      setTimeout(refresh, refreshS * 1000); // whatever happened, keep refreshing
    }
  }

  // -- drawing -----------------------------------------------------------------------------------

  function render() {
    document.documentElement.lang = currentLang() === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    fill("title", t("title"));
    fill("lang", TEXTS[currentLang()].other);
    renderProblem();
    if (!data) {
      fill("updated", problem ? "" : t("loading"));
      return;
    }
    const s = data.status;
    const tzName = TEXTS[currentLang()][`tz_${s.timezone.replace(/\//g, "_")}`] || s.timezone;
    fill("updated", t("updated", { t: clock(s.generated_ns / 1e6, true), tz: tzName, n: refreshS }));
    renderHealth();
    renderFleet();
    renderRegions();
    renderOffline();
    renderNoVideo();
    renderLinks();
    renderFaults();
    const c = s.cycle;
    fill("cycle", c
      ? t("cycle", { n: c.cycle, probe: c.probe, t: clock(c.ts_ns / 1e6 + c.duration_s * 1000, true),
        targets: c.targets, d: c.duration_s.toFixed(1) })
      : t("no_cycle"));
  }

  function renderProblem() {
    const box = document.getElementById("problem");
    if (!problem) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    const at = clock(problem.at, true);
    const line = problem.kind === "unreachable" ? t("unreachable", { t: at })
      : problem.kind === "unauthorized" ? t("unauthorized", { t: at })
        : t("http", { code: problem.code, t: at, msg: problem.msg });
    const kept = data ? t("kept", { t: clock(data.status.generated_ns / 1e6, true) }) : t("nodata");
    box.replaceChildren(el("strong", null, line), currentLang() === "zh" ? "" : " ", kept);
    box.hidden = false;
  }

  function renderHealth() {
    const box = document.getElementById("stale");
    const h = data.health;
    const text = h.status === "stale"
      ? t("stale", { age: h.last_cycle_age_s === null ? "—" : duration(h.last_cycle_age_s * 1000) })
      : h.status === "starting" ? t("starting") : null;
    box.hidden = text === null;
    box.replaceChildren(text || "");
  }

  // Rates by group, each {basis: rate}; bases in the order the API lists them. A new basis
  // shows up as a new column without a change here.
  function ratesBy(scope, kind) {
    const bases = [];
    const groups = new Map();
    for (const r of data.status.rates) {
      if (r.scope !== scope || r.kind !== kind) continue;
      if (!bases.includes(r.basis)) bases.push(r.basis);
      if (!groups.has(r.group)) groups.set(r.group, {});
      groups.get(r.group)[r.basis] = r;
    }
    return { bases, groups };
  }

  function headline(bases) {
    return bases.includes(HEADLINE_BASIS) ? HEADLINE_BASIS : bases[0];
  }

  function basisLabel(basis) {
    const key = `basis_${basis}`;
    return key in TEXTS[currentLang()] ? t(key) : basis;
  }

  function heading(title, count, note) {
    return el("h2", null, title, count === null ? null : el("span", { class: "count" }, String(count)),
      note ? el("small", null, note) : null);
  }

  function renderFleet() {
    const { bases, groups } = ratesBy("fleet", "all");
    const byBasis = groups.get("all") || {};
    const main = byBasis[headline(bases)] || data.status.fleet;
    const others = bases.filter((b) => b !== headline(bases) && byBasis[b]);
    const kinds = kindRates(headline(bases));
    fill("fleet",
      heading(t("fleet"), null, t("target", { p: targetPct })),
      el("div", { class: `big ${rateClass(main.rate_pct)}`, id: "fleet-rate" }, pct(main.rate_pct)),
      el("div", { class: "meter" }, el("div", {
        class: `fill ${rateClass(main.rate_pct)}`,
        "data-pct": main.rate_pct === null ? 0 : main.rate_pct.toFixed(0),
      }), el("div", { class: "mark", "data-pct": targetPct.toFixed(0) })),
      others.length ? el("p", { class: "bases" }, others.map((b) => el("span", { class: "basis" },
        `${basisLabel(b)} `, el("b", { class: rateClass(byBasis[b].rate_pct) }, pct(byBasis[b].rate_pct))))) : null,
      el("dl", { class: "counts", id: "fleet-counts" },
        el("div", null, el("dt", null, t("online")), el("dd", { class: "good" }, String(main.online))),
        el("div", null, el("dt", null, t("offline")),
          el("dd", { class: main.offline ? "bad" : "" }, String(main.offline))),
        el("div", null, el("dt", null, t("unknown")), el("dd", null, String(main.unknown))),
        el("div", null, el("dt", null, t("excluded")), el("dd", null, String(main.excluded)))),
      kinds.length ? el("p", { class: "kinds" }, kinds) : null);
    // Widths from data attributes: the page's CSP forbids inline styles set as markup, not via CSSOM.
    for (const node of document.querySelectorAll("#fleet [data-pct]")) {
      node.style.setProperty(node.classList.contains("mark") ? "left" : "width", `${node.dataset.pct}%`);
    }
  }

  function kindRates(basis) {
    const out = [];
    for (const r of data.status.rates) {
      if (r.scope !== "fleet" || r.kind === "all" || r.basis !== basis || r.total === 0) continue;
      const rate = el("b", { class: rateClass(r.rate_pct) }, pct(r.rate_pct));
      out.push(el("span", { class: "kind" }, `${t(r.kind)} `, rate));
    }
    return out;
  }

  function renderRegions() {
    const { bases, groups } = ratesBy("region", "all");
    const key = headline(bases);
    const rows = [...groups.entries()].sort(([nameA, a], [nameB, b]) => {
      const ra = a[key] ? a[key].rate_pct : null;
      const rb = b[key] ? b[key].rate_pct : null;
      if (ra === null && rb !== null) return 1; // undecided last
      if (rb === null && ra !== null) return -1;
      return (ra === rb ? 0 : ra - rb) || nameA.localeCompare(nameB, "zh-CN");
    });
    const head = el("tr", null, el("th", { class: "name" }, t("region")),
      bases.map((b) => el("th", { class: "num" }, basisLabel(b))), el("th", { class: "num" }, t("offline")));
    const body = rows.map(([name, byBasis]) => el("tr", { class: "region" },
      el("td", { class: "name" }, name),
      bases.map((b) => {
        const r = byBasis[b];
        return el("td", { class: `num rate ${rateClass(r ? r.rate_pct : null)}` }, pct(r ? r.rate_pct : null));
      }),
      el("td", { class: "num off" }, byBasis[key] ? `${byBasis[key].offline}/${byBasis[key].total}` : "—")));
    fill("regions", heading(t("regions"), rows.length, t("worst_first")),
      el("table", { class: "rates" }, el("thead", null, head), el("tbody", null, body)));
  }

  function renderOffline() {
    const offline = [...data.down.devices, ...data.unreachable.devices];
    const byId = new Map(offline.map((d) => [d.id, d]));
    const points = offline.filter((d) => d.status === "active"); // the points the rate counts
    // Down first (root causes), then the points behind them; newest first within each.
    points.sort((a, b) => (a.state === b.state ? 0 : a.state === "down" ? -1 : 1)
      || (b.since_ns || 0) - (a.since_ns || 0));
    const total = points.length;
    const rows = points.slice(0, MAX_OFFLINE).map((d) => {
      const down = d.state === "down";
      const since = d.since_ns
        ? t("since", { t: clock(d.since_ns / 1e6, false), d: duration(data.fetchedMs - d.since_ns / 1e6) }) : "";
      const cause = down ? null : rootCause(d, byId);
      return el("li", { class: `point ${d.state}` },
        el("div", { class: "line" },
          el("span", { class: "name" }, d.name),
          el("span", { class: `badge ${down ? "bad" : "warn"}` }, down ? t("down") : t("unreachable_state"))),
        el("div", { class: "sub" },
          el("span", { class: "site" }, `${d.site} · ${d.region}`),
          since ? el("span", { class: "since" }, since) : null),
        cause ? el("div", { class: "sub cause" }, t("behind_parent", { p: cause })) : null);
    });
    fill("offline", heading(t("offline_points"), total, t("offline_note")),
      rows.length ? el("ul", { class: "list" }, rows) : el("p", { class: "empty" }, t("none_offline")),
      total > rows.length ? el("p", { class: "more" }, t("more", { n: total - rows.length })) : null);
  }

  // The name of the down device an unreachable one is behind: up its offline parents, bounded.
  function rootCause(device, byId) {
    let current = device;
    for (let hop = 0; hop < MAX_PARENT_HOPS; hop++) {
      const parent = current.parent ? byId.get(current.parent) : undefined;
      if (!parent) break;
      if (parent.state === "down") return parent.name;
      current = parent;
    }
    // No down device up the chain (states changed between two requests): name the parent.
    const parent = byId.get(device.parent);
    return parent ? parent.name : device.parent;
  }

  // Cameras that answer ping but whose RTSP DESCRIBE fails: the API's list (video basis down),
  // by region then name, with the RTSP probe's reason (the camera's own words: untrusted text).
  // The API gives no since-when per basis, so none is shown.
  function renderNoVideo() {
    const cameras = [...data.noVideo.devices];
    cameras.sort((a, b) => a.region.localeCompare(b.region, "zh-CN") || a.name.localeCompare(b.name, "zh-CN")
      || a.id.localeCompare(b.id));
    const total = cameras.length;
    const rows = cameras.slice(0, MAX_OFFLINE).map((d) => {
      const rtsp = d.results ? d.results.rtsp : undefined;
      const reason = !rtsp ? t("no_result") : rtsp.reason || t("no_reason");
      return el("li", { class: "novideo" },
        el("div", { class: "line" },
          el("span", { class: "name" }, d.name),
          el("span", { class: "badge bad" }, t("no_video_badge"))),
        el("div", { class: "sub" }, el("span", { class: "site" }, `${d.site} · ${d.region}`)),
        el("div", { class: "sub reason" }, t("rtsp_reason", { r: reason })));
    });
    fill("novideo", heading(t("no_video"), total, t("no_video_note")),
      rows.length ? el("ul", { class: "list" }, rows) : el("p", { class: "empty" }, t("none_no_video")),
      total > rows.length ? el("p", { class: "more" }, t("more", { n: total - rows.length })) : null);
  }

  function renderLinks() {
    const links = data.links.devices.filter((d) => d.status === "active");
    const rtt = (d) => (d.latest ? (typeof d.latest.fields.rtt_avg_ms === "number"
      ? d.latest.fields.rtt_avg_ms : Infinity) : -Infinity);
    const loss = (d) => (d.latest && typeof d.latest.fields.loss_pct === "number" ? d.latest.fields.loss_pct : 0);
    // No reply first, then the slowest, then the lossiest; links without a result yet last.
    links.sort((a, b) => (rtt(b) - rtt(a)) || (loss(b) - loss(a)));
    const rows = links.slice(0, MAX_LINKS).map((d) => {
      const f = d.latest ? d.latest.fields : null;
      const ms = f && typeof f.rtt_avg_ms === "number" ? f.rtt_avg_ms : null;
      const lossPct = f && typeof f.loss_pct === "number" ? f.loss_pct : null;
      const rttText = !f ? t("no_result") : ms === null ? t("no_reply") : `${ms.toFixed(1)} ms`;
      return el("li", { class: `link ${d.state}` },
        el("div", { class: "line" },
          el("span", { class: "name" }, d.name),
          el("span", { class: `rtt ${ms === null ? (f ? "bad" : "na") : ms > rttLimitMs ? "bad" : "good"}` }, rttText)),
        el("div", { class: "sub" },
          el("span", { class: "site" }, d.site),
          el("span", { class: "metrics" },
            `${t("loss")} `,
            el("b", { class: `loss ${lossPct ? "bad" : ""}` }, lossPct === null ? "—" : `${num(lossPct, 0)}%`),
            ` · ${t("jitter")} `, el("b", { class: "jitter" }, f && typeof f.jitter_ms === "number"
              ? `${num(f.jitter_ms, 1)} ms` : "—"))));
    });
    fill("links", heading(t("links"), links.length, t("links_note", { ms: rttLimitMs })),
      rows.length ? el("ul", { class: "list" }, rows) : el("p", { class: "empty" }, t("none_links")),
      links.length > rows.length ? el("p", { class: "more" }, t("more", { n: links.length - rows.length })) : null);
  }

  function renderFaults() {
    const faults = data.faults.faults;
    const rows = faults.slice(0, MAX_FAULTS).map((f) => el("li", { class: `fault ${f.severity}` },
      el("div", { class: "line" },
        el("span", { class: `badge sev ${f.severity}` }, t(f.severity)),
        el("span", { class: "title" }, f.title)),
      el("div", { class: "sub" },
        el("span", { class: "since" },
          t("since", { t: clock(f.first_seen_ns / 1e6, false), d: duration(data.fetchedMs - f.first_seen_ns / 1e6) })),
        el("span", { class: `state ${f.state}` }, t(f.state)),
        el("span", { class: `ack ${f.acked_by ? "yes" : "no"}` },
          f.acked_by ? t("acked", { by: f.acked_by }) : t("not_acked")),
        f.in_maintenance ? el("span", { class: "badge maint" }, t("maintenance")) : null)));
    fill("faults", heading(t("faults"), faults.length, null),
      rows.length ? el("ul", { class: "list" }, rows) : el("p", { class: "empty" }, t("none_faults")),
      faults.length > rows.length ? el("p", { class: "more" }, t("more", { n: faults.length - rows.length })) : null);
  }

  // -- start -------------------------------------------------------------------------------------

  document.getElementById("lang").addEventListener("click", () => {
    lang = currentLang() === "zh" ? "en" : "zh";
    render();
  });
  render();
  refresh();
})();
