// fleetmon status page (monitor/app/status_page.py): fetches the JSON API every `refresh` seconds and
// draws it for a phone. Every text goes in through textContent: device names come from point
// lists and are not trusted. When the daemon cannot be reached the last data stays on screen.
//
// Work orders (工单): the open orders with their SLA countdowns for everyone who may read; for a
// person signed in with their own token (entered once, kept in this browser's localStorage, sent
// only as a bearer header on writes and /whoami, never in a URL) the duty engineer's actions:
// 报障 (a manual report), 认领, 到场, 修复, 更换, 关闭. The API records that person as `by`.
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
      unauthorized: "访问令牌缺失或错误（{t}）：请使用带 #token= 的链接打开本页。",
      kept: "以下为 {t} 的数据。",
      nodata: "尚无数据。",
      stale: "探测已停止：最近一轮完成于 {age} 前。",
      starting: "监测服务刚启动，等待第一轮探测完成。",
      failing: "状态库写入失败：{cause}。数据暂存内存，恢复后补写。",
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
      offline_note: "网络不通，故障源在前，新的在前",
      none_offline: "没有离线点位。",
      down: "离线",
      unreachable_state: "上级故障",
      no_video: "有网无视频",
      no_video_note: "能 ping 通，取流失败",
      no_video_badge: "无视频",
      none_no_video: "无",
      rtsp_reason: "RTSP：{r}",
      snapshot: "画面截图 {t}",
      reason: "原因：{r}",
      no_reason: "原因未知",
      no_address: "无地址",
      behind_parent: "上级 {p} 离线",
      behind_it: "下挂 {n} 个点位随之离线",
      since: "{t} 起 · {d}",
      shown_of: "显示 {n} / {total}",
      shown_filtered: "显示 {n} / {total}（筛选自 {all}）",
      show_more: "再显示 {n} 个",
      search: "搜索编号、名称、IP、站点、区域",
      all_regions: "全部区域",
      all_kinds: "全部类型",
      all_states: "全部状态",
      links: "专线",
      links_note: "时延上限 {ms} ms，最差在前",
      none_links: "没有专线。",
      rtt: "时延",
      loss: "丢包",
      jitter: "抖动",
      no_reply: "无响应",
      no_result: "尚无结果",
      faults: "当前故障",
      faults_note: "最紧急在前",
      none_faults: "没有未恢复的故障。",
      pending: "观察中",
      firing: "告警中",
      acked: "已认领 · {by}",
      not_acked: "待认领",
      maintenance: "维护期",
      in_maintenance: "维护中",
      maint_until: "维护至 {t} · {r}",
      windows: "维护窗口",
      windows_note: "期间不告警，考核扣除",
      none_windows: "没有维护窗口。",
      window_running: "进行中 · 至 {t}",
      window_next: "下次 {t}",
      window_each: "{rule} · 每次 {d}",
      scope_all: "全部点位",
      scope_devices: "点位", scope_region: "区域", scope_site: "站点", scope_kind: "类型", scope_tags: "标签",
      cycle: "第 {n} 轮探测（{probe}）完成于 {t} · {targets}\u00a0台 · 用时 {d}\u00a0秒", // no break before a unit
      no_cycle: "第一轮探测尚未完成。",
      critical: "紧急", major: "严重", minor: "一般",
      camera: "摄像机", switch: "交换机", ups: "UPS", link: "专线", server: "服务器", platform: "平台", nvr: "录像机",
      basis_online: "在线率", basis_network: "网络", basis_service: "服务", basis_video: "视频", basis_picture: "画面",
      d: "{n}天", h: "{n}小时", m: "{n}分", s: "{n}秒",
      tz_Asia_Shanghai: "北京时间",
      orders: "工单",
      orders_note: "最紧迫在前",
      none_orders: "没有未关闭的工单。",
      sign_in: "登录",
      sign_in_title: "值班人员登录",
      sign_in_help: "输入您的个人令牌（由管理员发放）。令牌只保存在本机浏览器中，用于记录操作人。",
      token: "个人令牌",
      submit_sign_in: "登录",
      cancel: "取消",
      signed_in_as: "已登录：{name}（{roles}）",
      sign_out: "退出登录",
      close_panel: "关闭",
      not_personal: "这不是个人令牌：请使用管理员发放给您本人的令牌。",
      bad_token: "令牌无效。",
      token_expired: "登录已失效，请重新登录。",
      role_duty: "值班", role_manager: "主管", role_read: "只读",
      sign_in_to_act: "登录后可报障和处理工单。",
      read_only_person: "您的令牌只能查看，不能处理工单。",
      report: "＋ 报障",
      report_title: "报障（故障申告）",
      point: "点位",
      point_search: "输入点位编号或名称",
      no_points: "没有匹配的点位。",
      pick_point: "请选择点位。",
      fault_title: "故障描述",
      fault_title_hint: "例：采购方来电，画面黑屏",
      need_title: "请填写故障描述。",
      severity: "级别",
      submit_report: "提交报障",
      stage_reported: "待认领", stage_acknowledged: "已认领", stage_arrived: "已到场", stage_restored: "已修复",
      stage_closed: "已关闭",
      stage_by: "{stage} · {by}",
      assignee: "负责人 {n}",
      unassigned: "未指派",
      more_points: "等{n}个点位",
      left: "剩{d}",
      over: "超时{d}",
      met: "✓",
      missed: "超时",
      do_ack: "认领", do_arrive: "到场", do_restore: "修复", do_replace: "更换", do_close: "关闭",
      restore_how: "如何修复？",
      remote: "远程修复",
      on_site: "现场修复",
      on_site_needs_arrival: "现场修复需先记录到场。",
      replace_title: "更换设备",
      device: "设备",
      old_serial: "旧序列号",
      new_serial: "新序列号",
      new_model: "新型号（可选）",
      need_serials: "请填写新旧序列号。",
      submit_replace: "确认更换",
      close_confirm: "确认关闭工单 {ref}？",
      submit_close: "确认关闭",
      done_report: "已报障 {ref} · {t}",
      done_ack: "已认领 {ref} · {t}",
      done_arrive: "已记录到场 {ref} · {t}",
      done_restore: "已记录修复 {ref} · {t}",
      done_replace: "已记录更换 {ref} · {t}",
      done_close: "已关闭 {ref} · {t}",
      failed: "操作未完成（{code}）：{msg}",
      failed_net: "操作未完成：无法连接监测服务。",
      working: "正在提交…",
    },
    en: {
      title: "fleetmon network status",
      other: "中文",
      updated: "Updated {t} ({tz}) · every {n} s",
      loading: "Loading…",
      unreachable: "Cannot reach the monitoring service ({t}).",
      http: "The monitoring service answered {code} ({t}): {msg}",
      unauthorized: "Token missing or wrong ({t}): open this page with its #token= link.",
      kept: "Showing the data of {t}.",
      nodata: "No data yet.",
      stale: "Probing has stopped: the last cycle finished {age} ago.",
      starting: "The monitoring service just started; waiting for the first cycle.",
      failing: "State database writes failing: {cause}. Data is kept in memory and written once they work again.",
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
      offline_note: "no network, root causes first, newest first",
      none_offline: "No point is offline.",
      down: "down",
      unreachable_state: "unreachable",
      no_video: "Network up, no video",
      no_video_note: "answers ping, RTSP fails",
      no_video_badge: "no video",
      none_no_video: "none",
      rtsp_reason: "RTSP: {r}",
      snapshot: "picture of {t}",
      reason: "reason: {r}",
      no_reason: "no reason given",
      no_address: "no address",
      behind_parent: "behind {p} (down)",
      behind_it: "{n} points behind it are offline too",
      since: "since {t} · {d}",
      shown_of: "showing {n} / {total}",
      shown_filtered: "showing {n} / {total} (filtered from {all})",
      show_more: "Show {n} more",
      search: "search id, name, IP, site, region",
      all_regions: "region", // the filter's label while it is off: short, for a 360 px phone
      all_kinds: "kind",
      all_states: "state",
      links: "Dedicated links",
      links_note: "RTT limit {ms} ms, worst first",
      none_links: "No links.",
      rtt: "RTT",
      loss: "loss",
      jitter: "jitter",
      no_reply: "no reply",
      no_result: "no result yet",
      faults: "Open faults",
      faults_note: "most urgent first",
      none_faults: "No open fault.",
      pending: "watching",
      firing: "firing",
      acked: "taken · {by}",
      not_acked: "to take",
      maintenance: "maintenance",
      in_maintenance: "in maintenance",
      maint_until: "maintenance until {t} · {r}",
      windows: "Maintenance windows",
      windows_note: "no alarms inside, excluded from the assessment",
      none_windows: "No maintenance window.",
      window_running: "running · until {t}",
      window_next: "next {t}",
      window_each: "{rule} · {d} each",
      scope_all: "all points",
      scope_devices: "points", scope_region: "regions", scope_site: "sites", scope_kind: "kinds", scope_tags: "tags",
      cycle: "Cycle {n} ({probe}) finished {t} · {targets} devices · {d} s",
      no_cycle: "The first cycle has not finished yet.",
      critical: "critical", major: "major", minor: "minor",
      camera: "cameras", switch: "switches", ups: "UPS", link: "links", server: "servers", platform: "platforms", nvr: "NVRs",
      basis_online: "online", basis_network: "network", basis_service: "service", basis_video: "video", basis_picture: "picture",
      d: "{n} d", h: "{n} h", m: "{n} min", s: "{n} s",
      orders: "Work orders",
      orders_note: "most urgent first",
      none_orders: "No open work order.",
      sign_in: "Sign in",
      sign_in_title: "Duty sign-in",
      sign_in_help: "Enter your personal token (from your administrator). It stays in this browser and "
        + "records who acts.",
      token: "Personal token",
      submit_sign_in: "Sign in",
      cancel: "Cancel",
      signed_in_as: "Signed in: {name} ({roles})",
      sign_out: "Sign out",
      close_panel: "Close",
      not_personal: "This is not a personal token: use the one issued to you.",
      bad_token: "Wrong token.",
      token_expired: "Your sign-in is no longer valid: please sign in again.",
      role_duty: "duty", role_manager: "manager", role_read: "read only",
      sign_in_to_act: "Sign in to report faults and act on orders.",
      read_only_person: "Your token may read, not act on orders.",
      report: "+ Report",
      report_title: "Report a fault",
      point: "Point",
      point_search: "point id or name",
      no_points: "No point matches.",
      pick_point: "Pick a point.",
      fault_title: "What is wrong",
      fault_title_hint: "e.g. buyer called: no picture",
      need_title: "Describe the fault.",
      severity: "Severity",
      submit_report: "Report",
      stage_reported: "to take", stage_acknowledged: "taken", stage_arrived: "on site", stage_restored: "restored",
      stage_closed: "closed",
      stage_by: "{stage} · {by}",
      assignee: "assignee {n}",
      unassigned: "unassigned",
      more_points: "+{n} points",
      left: "{d} left",
      over: "{d} over",
      met: "✓",
      missed: "missed",
      do_ack: "Take", do_arrive: "On site", do_restore: "Fixed", do_replace: "Replace", do_close: "Close",
      restore_how: "How was it fixed?",
      remote: "Remotely",
      on_site: "On site",
      on_site_needs_arrival: "An on-site fix needs the arrival first.",
      replace_title: "Device replaced",
      device: "Device",
      old_serial: "Old serial",
      new_serial: "New serial",
      new_model: "New model (optional)",
      need_serials: "Enter both serial numbers.",
      submit_replace: "Record replacement",
      close_confirm: "Close work order {ref}?",
      submit_close: "Close it",
      done_report: "Reported {ref} · {t}",
      done_ack: "Taken {ref} · {t}",
      done_arrive: "Arrival recorded {ref} · {t}",
      done_restore: "Restore recorded {ref} · {t}",
      done_replace: "Replacement recorded {ref} · {t}",
      done_close: "Closed {ref} · {t}",
      failed: "Not done ({code}): {msg}",
      failed_net: "Not done: cannot reach the monitoring service.",
      working: "Sending…",
      response: "response", arrival: "arrival", restore: "restore", replacement: "replacement",
    },
  };
  const PAGE_STEP = 20; // items per list at first and per "show more": a phone scrolls, it does not page
  const SEVERITY_RANK = { critical: 0, major: 1, minor: 2 };
  const FETCH_TIMEOUT_S = 20; // a hung daemon is reported, not waited for
  const MAX_PARENT_HOPS = 32; // bounds the walk up to a root cause, whatever the data
  const HEADLINE_BASIS = "online"; // the contract's rate, when the API reports several
  const MAX_ORDERS = 50;
  const MAX_POINTS_FOUND = 8; // search results shown while picking a point
  const SEARCH_DELAY_MS = 250; // typing pause before the point search asks the API
  const PERSON_KEY = "fleetmon.person-token"; // localStorage: the signed-in person's own token
  const THUMB_MAX_AGE_MS = 60000; // a camera's picture is fetched again at most once a minute (checks are minutes apart)

  const body = document.body;
  const targetPct = Number(body.dataset.onlineTargetPct);
  // The Chinese of the probes' failure reasons (monitor/app/status_reasons.py): whole texts and
  // patterns; English pages and unknown reasons show the probe's own words.
  const REASONS = JSON.parse(body.dataset.reasons);
  const REASON_PATTERNS = REASONS.patterns.map(([re, template]) => [new RegExp(re), template]);
  const rttLimitMs = Number(body.dataset.rttLimitMs);
  // Fault kinds of video-quality diagnosis (rules.families.vqd): their faults show the camera's picture.
  const VQD_KINDS = new Set(body.dataset.vqdKinds.split(" ").filter((k) => k));
  const [minRefresh, defaultRefresh, maxRefresh] = body.dataset.refreshS.split(" ").map(Number);
  const params = new URLSearchParams(location.search);
  // The status token travels after the # of the page's link (/status#token=…): browsers never send
  // that part, so it reaches no server or proxy log. The daemon refuses tokens in query strings.
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const asked = Number.parseInt(params.get("refresh") || "", 10);
  const refreshS = Number.isFinite(asked) ? Math.min(maxRefresh, Math.max(minRefresh, asked)) : defaultRefresh;
  let lang = TEXTS[params.get("lang")] ? params.get("lang") : null; // null: the daemon's language
  let data = null; // the last data fetched completely
  let problem = null; // {kind, at, code, msg} of the last failed refresh, null after a good one
  let personToken = readStored(); // the signed-in person's token, or null
  let person = null; // the signed-in person as /whoami says: {name, roles, permissions}
  let signin = null; // the sign-in panel: null (closed) or {error}
  let panel = null; // the open work-order form: {kind: "report"|"restore"|"replace"|"close", ref, …}
  let notice = null; // {ok, text}: what the last action did
  let busy = false; // a write is on its way: no second one
  const shown = {}; // list key → how many of its items are on screen (PAGE_STEP more per tap)
  // Camera pictures: device id → {url (an object URL, null: none), takenMs, fetchedMs, busy}.
  const thumbs = new Map();
  const filter = { q: "", region: "", kind: "", state: "" }; // the offline list's search and filters
  let toolsKey = null; // language and options the offline filters were built for

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
    const out = []; // the largest unit and the next one: 3小时5分, never 3小时1秒
    for (const [unit, size] of units) {
      const n = Math.floor(s / size);
      s -= n * size;
      if (out.length) {
        if (n > 0) out.push(t(unit, { n }));
        break;
      }
      if (n > 0 || unit === "s") out.push(t(unit, { n }));
    }
    return out.join(currentLang() === "zh" ? "" : " ");
  }

  function count(n) {
    return n.toLocaleString("en-US"); // 1,234 in both languages
  }

  function reasonText(reason) {
    if (currentLang() !== "zh") return reason;
    if (Object.prototype.hasOwnProperty.call(REASONS.exact, reason)) return REASONS.exact[reason];
    for (const [re, template] of REASON_PATTERNS) {
      const m = re.exec(reason);
      if (m) return template.replace(/\$(\d)/g, (_, i) => m[Number(i)]);
    }
    return reason;
  }

  // How many of a list's `total` items to draw: PAGE_STEP at first, more after each tap.
  function limitOf(key, total) {
    return Math.min(total, shown[key] || PAGE_STEP);
  }

  // Never a silent cut: "显示 20 / 1,234" under a list longer than one step, with a button for
  // the next step while some are left; `all` is the list's size before a filter.
  function pager(key, drawn, total, all, redraw) {
    if (total <= PAGE_STEP && (all === undefined || all === total)) return null;
    const filtered = all !== undefined && all !== total;
    const line = el("p", { class: "more", id: `${key}-shown`, "data-shown": drawn, "data-total": total },
      filtered ? t("shown_filtered", { n: count(drawn), total: count(total), all: count(all) })
        : t("shown_of", { n: count(drawn), total: count(total) }));
    if (drawn >= total) return line;
    const more = button(`${key}-more`, t("show_more", { n: count(Math.min(PAGE_STEP, total - drawn)) }), () => {
      shown[key] = drawn + PAGE_STEP;
      redraw();
    });
    more.classList.add("show-more");
    return [line, el("div", { class: "actions" }, more)];
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

  // GET `path` with the page's read token (the status token of its link, after #) or `bearer`.
  async function get(path, okStatuses, bearer) {
    const headers = { Accept: "application/json" };
    if (bearer || token) headers.Authorization = `Bearer ${bearer || token}`;
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
    const [status, down, unreachable, noVideo, links, faults, health, me, maintenance] = await Promise.all([
      get("/api/v1/status"),
      get("/api/v1/devices?state=down&limit=10000"),
      get("/api/v1/devices?state=unreachable&limit=10000"),
      get("/api/v1/devices?basis=video&state=down&limit=10000"),
      get("/api/v1/devices?kind=link&limit=1000"),
      get("/api/v1/faults?state=open&limit=500"),
      get("/healthz", [503]),
      get("/api/v1/whoami"), // says whether the daemon keeps work orders at all
      get("/api/v1/maintenance"),
    ]);
    const orders = me.workorders ? await get(`/api/v1/workorders?state=open&limit=${MAX_ORDERS}`) : null;
    return {
      status, down, unreachable, noVideo, links, faults, health, maintenance, fetchedMs: Date.now(),
      orders: orders ? { ...orders, fetchedMs: Date.now() } : null,
    };
  }

  async function refresh() {
    try {
      data = await load();
      await identify();
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
    renderMaintenance();
    renderAccount();
    if (!panel) renderOrders(); // an open form is left alone: a refresh must not eat what is typed
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
      : h.status === "starting" ? t("starting")
      : h.status === "failing" ? t("failing", { cause: h.statedb_error }) : null;
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

  // One item per region, worst first by the contract's rate: the name on a line of its own
  // width, the headline rate beside it, the other bases and the offline count below. (A table of
  // five columns left a township's name one character per line on a 360 px phone.)
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
    const items = rows.map(([name, byBasis]) => {
      const main = byBasis[key];
      return el("li", { class: "region" },
        el("div", { class: "line" },
          el("span", { class: "name" }, name),
          el("span", { class: `rate ${rateClass(main ? main.rate_pct : null)}`, "data-basis": key },
            pct(main ? main.rate_pct : null))),
        el("div", { class: "sub" },
          bases.filter((b) => b !== key).map((b) => {
            const r = byBasis[b];
            return el("span", { class: "basis", "data-basis": b }, `${basisLabel(b)} `,
              el("b", { class: rateClass(r ? r.rate_pct : null) }, pct(r ? r.rate_pct : null)));
          }),
          el("span", { class: "off" }, `${t("offline")} ${main ? `${main.offline}/${main.total}` : "—"}`)));
    });
    fill("regions", heading(t("regions"), rows.length, `${basisLabel(key)} · ${t("worst_first")}`),
      el("ul", { class: "list rates" }, items));
  }

  // Offline points (the rate counts them: status active), down first (root causes, those with
  // the most points behind them first: a dead line before a camera), then those behind them;
  // newest first within each. Searched and filtered here, over the whole list. Returns
  // {points, byId, behind: id of a down device → how many offline points are behind it}.
  function offlinePoints() {
    const all = [...data.down.devices, ...data.unreachable.devices];
    const byId = new Map(all.map((d) => [d.id, d]));
    const points = all.filter((d) => d.status === "active");
    const behind = new Map();
    for (const d of points) {
      const root = d.state === "down" ? null : rootOf(d, byId);
      if (root) behind.set(root.id, (behind.get(root.id) || 0) + 1);
    }
    points.sort((a, b) => (a.state === b.state ? 0 : a.state === "down" ? -1 : 1)
      || (behind.get(b.id) || 0) - (behind.get(a.id) || 0)
      || (b.since_ns || 0) - (a.since_ns || 0));
    return { points, byId, behind };
  }

  function matches(d) {
    if (filter.region && d.region !== filter.region) return false;
    if (filter.kind && d.kind !== filter.kind) return false;
    if (filter.state && d.state !== filter.state) return false;
    const q = filter.q.trim().toLowerCase();
    return !q || [d.id, d.name, d.address || "", d.site, d.region].some((v) => v.toLowerCase().includes(q));
  }

  function renderOffline() {
    if (!document.getElementById("offline-body")) {
      fill("offline", el("div", { id: "offline-head" }), el("div", { class: "tools", id: "offline-tools" }),
        el("div", { id: "offline-body" }));
    }
    renderOfflineTools();
    renderOfflineBody();
  }

  // The search box is made once and never replaced (a refresh must not take its focus or what
  // is typed); the selects are made again only when the language or their options change.
  function renderOfflineTools() {
    const regions = [...ratesBy("region", "all").groups.keys()].sort((a, b) => a.localeCompare(b, "zh-CN"));
    const kinds = [...new Set(data.status.rates.filter((r) => r.scope === "fleet" && r.kind !== "all" && r.total > 0)
      .map((r) => r.kind))];
    const key = JSON.stringify([currentLang(), regions, kinds]);
    const box = document.getElementById("offline-tools");
    let search = document.getElementById("offline-search");
    if (!search) {
      search = el("input", { id: "offline-search", type: "search", autocomplete: "off", spellcheck: "false",
        enterkeyhint: "search" });
      search.addEventListener("input", () => {
        filter.q = search.value;
        shown.offline = PAGE_STEP;
        renderOfflineBody();
      });
      box.append(search, el("div", { class: "filters", id: "offline-filters" }));
    }
    search.placeholder = t("search");
    search.setAttribute("aria-label", t("search"));
    if (key === toolsKey) return;
    toolsKey = key;
    const select = (name, all, options) => {
      const node = el("select", { id: `offline-${name}`, "aria-label": all },
        el("option", { value: "" }, all), options.map(([value, label]) => el("option", { value }, label)));
      node.value = options.some(([value]) => value === filter[name]) ? filter[name] : "";
      filter[name] = node.value;
      node.addEventListener("change", () => {
        filter[name] = node.value;
        shown.offline = PAGE_STEP;
        renderOfflineBody();
      });
      return node;
    };
    fill("offline-filters",
      select("region", t("all_regions"), regions.map((r) => [r, r])),
      select("kind", t("all_kinds"), kinds.map((k) => [k, t(k)])),
      select("state", t("all_states"), [["down", t("down")], ["unreachable", t("unreachable_state")]]));
  }

  function renderOfflineBody() {
    const { points, byId, behind } = offlinePoints();
    const found = points.filter(matches);
    const drawn = limitOf("offline", found.length);
    const rows = found.slice(0, drawn).map((d) => offlineItem(d, byId, behind.get(d.id) || 0));
    fill("offline-head", heading(t("offline_points"), points.length, t("offline_note")));
    fill("offline-body",
      rows.length ? el("ul", { class: "list" }, rows)
        : el("p", { class: points.length ? "hint" : "empty" }, points.length ? t("no_points") : t("none_offline")),
      pager("offline", drawn, found.length, points.length, renderOfflineBody));
  }

  // A point as the engineer on the way needs it: name, id and IP (to ping, to find it in the
  // point list), since when (local time and how long), and why: the probe's reason or the
  // down device it is behind.
  function offlineItem(d, byId, behind) {
    const down = d.state === "down";
    const since = d.since_ns
      ? t("since", { t: clock(d.since_ns / 1e6, false), d: duration(data.fetchedMs - d.since_ns / 1e6) }) : "";
    const root = down ? null : rootOf(d, byId);
    const cause = down ? null : root ? root.name : d.parent;
    const reason = down && d.latest && !d.latest.ok ? reasonText(d.latest.reason || t("no_reason")) : null;
    return el("li", { class: `point ${d.state}`, "data-id": d.id },
      el("div", { class: "line" },
        el("span", { class: "name" }, d.name),
        d.maintenance ? el("span", { class: "badge maint" }, t("in_maintenance")) : null,
        el("span", { class: `badge ${down ? "bad" : "warn"}` }, down ? t("down") : t("unreachable_state"))),
      el("div", { class: "sub ids" },
        el("span", { class: "id" }, d.id),
        el("span", { class: "ip" }, d.address || t("no_address")),
        since ? el("span", { class: "since" }, since) : null),
      el("div", { class: "sub" }, el("span", { class: "site" }, `${d.site} · ${d.region}`)),
      reason ? el("div", { class: "sub reason" }, t("reason", { r: reason })) : null,
      behind ? el("div", { class: "sub impact" }, t("behind_it", { n: count(behind) })) : null,
      cause ? el("div", { class: "sub cause" }, t("behind_parent", { p: cause })) : null,
      d.maintenance ? el("div", { class: "sub maint" },
        t("maint_until", { t: clock(d.maintenance.until_ns / 1e6, false), r: d.maintenance.reason })) : null);
  }

  // The down device an unreachable one is behind: up its offline parents, bounded. With no down
  // device up the chain (states changed between two requests) its offline parent, if any.
  function rootOf(device, byId) {
    let current = device;
    for (let hop = 0; hop < MAX_PARENT_HOPS; hop++) {
      const parent = current.parent ? byId.get(current.parent) : undefined;
      if (!parent) break;
      if (parent.state === "down") return parent;
      current = parent;
    }
    return byId.get(device.parent);
  }

  // Cameras that answer ping but whose RTSP DESCRIBE fails: the API's list (video basis down),
  // by region then name, with the RTSP probe's reason (translated when known; otherwise the
  // camera's own words: untrusted text). The API gives no since-when per basis, so none is shown.
  function renderNoVideo() {
    const cameras = [...data.noVideo.devices];
    cameras.sort((a, b) => a.region.localeCompare(b.region, "zh-CN") || a.name.localeCompare(b.name, "zh-CN")
      || a.id.localeCompare(b.id));
    const total = cameras.length;
    const drawn = limitOf("novideo", total);
    const rows = cameras.slice(0, drawn).map((d) => {
      const rtsp = d.results ? d.results.rtsp : undefined;
      const reason = !rtsp ? t("no_result") : rtsp.reason ? reasonText(rtsp.reason) : t("no_reason");
      return el("li", { class: "novideo", "data-id": d.id },
        el("div", { class: "line" },
          el("span", { class: "name" }, d.name),
          el("span", { class: "badge bad" }, t("no_video_badge"))),
        el("div", { class: "sub ids" },
          el("span", { class: "id" }, d.id),
          el("span", { class: "ip" }, d.address || t("no_address"))),
        el("div", { class: "sub" }, el("span", { class: "site" }, `${d.site} · ${d.region}`)),
        el("div", { class: "sub reason" }, t("rtsp_reason", { r: reason })));
    });
    fill("novideo", heading(t("no_video"), total, t("no_video_note")),
      rows.length ? el("ul", { class: "list" }, rows) : el("p", { class: "empty" }, t("none_no_video")),
      pager("novideo", drawn, total, undefined, renderNoVideo));
  }

  function renderLinks() {
    const links = data.links.devices.filter((d) => d.status === "active");
    const rtt = (d) => (d.latest ? (typeof d.latest.fields.rtt_avg_ms === "number"
      ? d.latest.fields.rtt_avg_ms : Infinity) : -Infinity);
    const loss = (d) => (d.latest && typeof d.latest.fields.loss_pct === "number" ? d.latest.fields.loss_pct : 0);
    // No reply first, then the slowest, then the lossiest; links without a result yet last.
    links.sort((a, b) => (rtt(b) - rtt(a)) || (loss(b) - loss(a)));
    const drawn = limitOf("links", links.length);
    const rows = links.slice(0, drawn).map((d) => {
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
      pager("links", drawn, links.length, undefined, renderLinks));
  }

  // Most urgent first: the most severe; within it those nobody has taken (待认领), those firing
  // before those still watched (pending), the longest open first.
  function faultUrgency(a, b) {
    return (SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity])
      || (Boolean(a.acked_by) - Boolean(b.acked_by))
      || ((a.state === "firing" ? 0 : 1) - (b.state === "firing" ? 0 : 1))
      || (a.first_seen_ns - b.first_seen_ns);
  }

  function renderFaults() {
    const faults = [...data.faults.faults].sort(faultUrgency);
    const drawn = limitOf("faults", faults.length);
    const rows = faults.slice(0, drawn).map((f) => el("li", { class: `fault ${f.severity}`, "data-id": f.id },
      el("div", { class: "line" },
        el("span", { class: `badge sev ${f.severity}` }, t(f.severity)),
        el("span", { class: "title" }, f.title)),
      el("div", { class: "sub" },
        el("span", { class: "since" },
          t("since", { t: clock(f.first_seen_ns / 1e6, false), d: duration(data.fetchedMs - f.first_seen_ns / 1e6) })),
        el("span", { class: `state ${f.state}` }, t(f.state)),
        el("span", { class: `ack ${f.acked_by ? "yes" : "no"}` },
          f.acked_by ? t("acked", { by: f.acked_by }) : t("not_acked")),
        f.in_maintenance ? el("span", { class: "badge maint" }, t("maintenance")) : null),
      VQD_KINDS.has(f.kind) && f.device_id ? thumbnail(f.device_id) : null));
    forgetThumbs(new Set(faults.slice(0, drawn).filter((f) => VQD_KINDS.has(f.kind)).map((f) => f.device_id)));
    fill("faults", heading(t("faults"), faults.length, t("faults_note")),
      rows.length ? el("ul", { class: "list" }, rows) : el("p", { class: "empty" }, t("none_faults")),
      pager("faults", drawn, faults.length, undefined, renderFaults));
  }

  // The camera's latest picture with its time, or nothing while there is none (yet). A missing or
  // old one is fetched in the background; the faults are drawn again when it arrives.
  function thumbnail(id) {
    const known = thumbs.get(id);
    if (!known || (!known.busy && Date.now() - known.fetchedMs > THUMB_MAX_AGE_MS)) fetchThumb(id);
    if (!known || !known.url) return null;
    return el("figure", { class: "thumb", "data-device": id },
      el("img", { src: known.url, alt: t("snapshot", { t: clock(known.takenMs, false) }), width: 320 }),
      el("figcaption", null, t("snapshot", { t: clock(known.takenMs, false) })));
  }

  // GET the picture as a blob with the page's bearer header (an <img src> could not send it); a
  // 404 (none kept, none of this camera yet) is remembered as no picture, other failures too.
  async function fetchThumb(id) {
    const entry = thumbs.get(id) || { url: null, takenMs: 0, fetchedMs: 0 };
    entry.busy = true;
    thumbs.set(id, entry);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_S * 1000);
    let changed = false;
    try {
      const resp = await fetch(`/api/v1/thumbnails/${encodeURIComponent(id)}`, {
        headers: token ? { Authorization: `Bearer ${token}` } : {}, cache: "no-store", credentials: "omit",
        signal: abort.signal,
      });
      const taken = Date.parse(resp.headers.get("Last-Modified") || "");
      if (resp.ok && (resp.headers.get("Content-Type") || "").startsWith("image/")) {
        const blob = await resp.blob();
        if (entry.url) URL.revokeObjectURL(entry.url);
        entry.url = URL.createObjectURL(blob);
        entry.takenMs = Number.isFinite(taken) ? taken : Date.now();
        changed = true;
      } else if (entry.url) {
        URL.revokeObjectURL(entry.url);
        entry.url = null;
        changed = true;
      }
    } catch (err) {
      // unreachable: keep what is shown; the next refresh tries again
    } finally {
      clearTimeout(timer);
      entry.fetchedMs = Date.now();
      entry.busy = false;
    }
    if (changed && thumbs.get(id) === entry && data) renderFaults();
  }

  // Pictures of cameras no longer drawn are let go (their object URLs hold memory).
  function forgetThumbs(keep) {
    for (const [id, entry] of thumbs) {
      if (keep.has(id) || entry.busy) continue;
      if (entry.url) URL.revokeObjectURL(entry.url);
      thumbs.delete(id);
    }
  }

  // Maintenance windows not yet over: those running first, then by their next start. A recurring
  // window shows its rule (the API's label, in the daemon's language) and its next occurrence.
  function renderMaintenance() {
    const nextStart = (w) => (w.next.length ? w.next[0].start_ns : Infinity);
    const windows = [...data.maintenance.windows].sort((a, b) => (b.active - a.active) || (nextStart(a) - nextStart(b)));
    const drawn = limitOf("maintenance", windows.length);
    const rows = windows.slice(0, drawn).map((w) => {
      const scope = ["devices", "region", "site", "kind", "tags"].filter((k) => w.match[k].length)
        .map((k) => `${t(`scope_${k}`)} ${w.match[k].map((v) => (k === "kind" ? t(v) : v)).join("、")}`);
      const occurrence = w.next.length ? w.next[0] : null;
      const when = w.every
        ? t("window_each", { rule: w.every_label, d: duration(w.duration_s * 1000) })
        : `${clock(w.start_ns / 1e6, false)} → ${clock(w.end_ns / 1e6, false)}`;
      const state = !occurrence ? null : w.active
        ? t("window_running", { t: clock(occurrence.end_ns / 1e6, false) })
        : t("window_next", { t: clock(occurrence.start_ns / 1e6, false) });
      return el("li", { class: `window ${w.active ? "active" : ""}`, "data-window": w.id },
        el("div", { class: "line" },
          el("span", { class: "name" }, w.reason),
          w.active ? el("span", { class: "badge maint" }, t("in_maintenance")) : null),
        el("div", { class: "sub" },
          el("span", { class: "scope" }, scope.length ? scope.join(" · ") : t("scope_all"))),
        el("div", { class: "sub" },
          el("span", { class: "when" }, when),
          state ? el("span", { class: "state" }, state) : null));
    });
    fill("maintenance", heading(t("windows"), windows.length, t("windows_note")),
      rows.length ? el("ul", { class: "list" }, rows) : el("p", { class: "empty" }, t("none_windows")),
      pager("maintenance", drawn, windows.length, undefined, renderMaintenance));
  }

  // -- work orders (工单) ------------------------------------------------------------------------

  function readStored() {
    try {
      return localStorage.getItem(PERSON_KEY);
    } catch (err) {
      return null; // storage disabled: sign in again on each visit
    }
  }

  function store(value) {
    try {
      if (value) localStorage.setItem(PERSON_KEY, value);
      else localStorage.removeItem(PERSON_KEY);
    } catch (err) {
      // private mode: signed in for this visit only
    }
  }

  function may(permission) {
    return Boolean(person && person.permissions.includes(permission));
  }

  function button(id, text, onClick, style) {
    const node = el("button", { type: "button", id, class: style || null }, text);
    node.addEventListener("click", onClick);
    return node;
  }

  // An input bound to `panel[key]`: a re-render shows what was typed.
  function input(id, key, attrs) {
    const { tag, options, ...rest } = attrs || {};
    const node = el(tag || "input", { id, ...rest }, options || []);
    node.value = panel[key] || "";
    node.addEventListener(node.tagName === "SELECT" ? "change" : "input", () => { panel[key] = node.value; });
    return node;
  }

  function field(label, control) {
    return el("label", { class: "field" }, el("span", null, label), control);
  }

  async function post(path, body) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_S * 1000);
    try {
      const resp = await fetch(path, {
        method: "POST", body: JSON.stringify(body), cache: "no-store", credentials: "omit", signal: abort.signal,
        headers: { Accept: "application/json", "Content-Type": "application/json", Authorization: `Bearer ${personToken}` },
      });
      const json = await resp.json().catch(() => null);
      if (!resp.ok) throw new HttpError(resp.status, json && typeof json.error === "string" ? json.error : resp.statusText);
      if (json === null) throw new HttpError(resp.status, "not JSON");
      return json;
    } finally {
      clearTimeout(timer);
    }
  }

  // Who the stored token belongs to; a token the daemon no longer knows is forgotten.
  async function identify() {
    if (!personToken || person) return;
    try {
      const me = await get("/api/v1/whoami", null, personToken);
      if (me.kind !== "person") throw new HttpError(401, "");
      person = me;
    } catch (err) {
      if (err instanceof HttpError && err.code === 401) {
        signOut();
        notice = { ok: false, text: t("token_expired") };
      } // unreachable: asked again at the next refresh
    }
  }

  function signOut() {
    personToken = null;
    person = null;
    panel = null;
    store(null);
  }

  function rolesText() {
    return person.roles.map((r) => t(`role_${r}`)).join("、");
  }

  function renderAccount() {
    const node = document.getElementById("account");
    node.hidden = !(data && data.orders); // without work orders there is nothing to sign in for
    node.replaceChildren(person ? person.name : t("sign_in"));
    node.classList.toggle("in", Boolean(person));
  }

  function renderSignin() {
    const box = document.getElementById("signin");
    box.hidden = signin === null;
    if (signin === null) {
      box.replaceChildren();
      return;
    }
    if (person) {
      fill("signin", heading(t("sign_in_title"), null, null),
        el("p", { class: "who", id: "signed-in" }, t("signed_in_as", { name: person.name, roles: rolesText() })),
        el("div", { class: "actions" },
          button("sign-out", t("sign_out"), () => { signOut(); signin = null; render(); renderSignin(); }),
          button("signin-close", t("close_panel"), () => { signin = null; renderSignin(); })));
      return;
    }
    const tokenInput = el("input", {
      id: "token-input", type: "password", autocomplete: "off", autocapitalize: "off", spellcheck: "false",
    });
    tokenInput.addEventListener("keydown", (e) => { if (e.key === "Enter") submitSignin(); });
    fill("signin", heading(t("sign_in_title"), null, null),
      el("p", { class: "help" }, t("sign_in_help")),
      field(t("token"), tokenInput),
      signin.error ? el("p", { class: "error", role: "alert" }, signin.error) : null,
      el("div", { class: "actions" },
        button("signin-submit", t("submit_sign_in"), submitSignin, "primary"),
        button("signin-cancel", t("cancel"), () => { signin = null; renderSignin(); })));
    tokenInput.focus();
  }

  async function submitSignin() {
    const value = document.getElementById("token-input").value.trim();
    if (!value) return;
    try {
      const me = await get("/api/v1/whoami", null, value);
      if (me.kind !== "person") {
        signin = { error: t("not_personal") };
      } else {
        personToken = value;
        person = me;
        store(value);
        signin = null;
        notice = null;
      }
    } catch (err) {
      signin = { error: !(err instanceof HttpError) ? t("failed_net")
        : err.code === 401 ? t("bad_token") : t("failed", { code: err.code, msg: err.message }) };
    }
    renderSignin();
    renderAccount();
    renderOrders();
  }

  // Now on the daemon's clock (its answer's now_ns, advanced by the time since): a phone's
  // clock may be off by minutes, a countdown must not be.
  function serverNowMs() {
    return data.orders.now_ns / 1e6 + (Date.now() - data.orders.fetchedMs);
  }

  function urgency(order, nowMs) {
    const running = order.clocks.filter((c) => c.stopped_ns === null);
    return running.length ? Math.min(...running.map((c) => c.deadline_ns / 1e6 - nowMs)) : Infinity;
  }

  function clockName(c) {
    return currentLang() === "zh" ? c.label : t(c.clock);
  }

  // One chip per SLA clock: running ones count down (red once past the deadline), stopped ones
  // say met or missed.
  function clockChip(c, nowMs) {
    if (c.stopped_ns !== null) {
      const met = c.state === "met";
      return el("span", { class: `clock ${c.state}`, "data-clock": c.clock }, `${clockName(c)} ${t(met ? "met" : "missed")}`);
    }
    const leftMs = c.deadline_ns / 1e6 - nowMs;
    const state = leftMs < 0 ? "breached" : c.state === "warning" ? "warning" : "ok";
    const text = leftMs < 0 ? t("over", { d: duration(-leftMs) }) : t("left", { d: duration(leftMs) });
    return el("span", { class: `clock ${state}`, "data-clock": c.clock }, `${clockName(c)} ${text}`);
  }

  function renderOrders() {
    const box = document.getElementById("orders");
    if (!data || !data.orders) {
      box.replaceChildren(); // work orders not enabled: the card stays hidden
      return;
    }
    const nowMs = serverNowMs();
    const orders = [...data.orders.orders].sort((a, b) => (urgency(a, nowMs) - urgency(b, nowMs))
      || a.reported_ns - b.reported_ns);
    const canAct = may("workorder");
    fill("orders",
      heading(t("orders"), data.orders.total, t("orders_note")),
      notice ? el("p", { class: `notice ${notice.ok ? "ok" : "error"}`, id: "order-notice", role: "status" },
        notice.text) : null,
      canAct ? el("div", { class: "actions top" },
        panel && panel.kind === "report" ? null
          : button("report-open", t("report"), () => openPanel({ kind: "report", severity: "major" }), "primary"))
        : el("p", { class: "hint" }, person ? t("read_only_person") : t("sign_in_to_act")),
      panel && panel.kind === "report" ? reportForm() : null,
      orders.length ? el("ul", { class: "list orders" }, orders.map((o) => orderItem(o, nowMs, canAct)))
        : el("p", { class: "empty" }, t("none_orders")),
      data.orders.total > orders.length ? el("p", { class: "more", id: "orders-shown" },
        t("shown_of", { n: count(orders.length), total: count(data.orders.total) })) : null);
  }

  // The stage in the work orders' words, with who took the last step: 已认领 · 李工.
  function stageText(o) {
    const by = { acknowledged: o.acknowledged_by, arrived: o.arrived_by, restored: o.restored_by,
      closed: o.closed_by }[o.stage];
    return by ? t("stage_by", { stage: t(`stage_${o.stage}`), by }) : t(`stage_${o.stage}`);
  }

  function orderItem(o, nowMs, canAct) {
    const first = o.devices[0];
    const point = first.name ? `${first.name}（${first.id}）` : first.id;
    const mine = panel && panel.ref === o.ref ? panel : null;
    return el("li", { class: `order ${o.severity}`, "data-ref": o.ref },
      el("div", { class: "line" },
        el("span", { class: `badge sev ${o.severity}` }, t(o.severity)),
        el("span", { class: "title" }, o.title)),
      el("div", { class: "sub" },
        el("span", { class: "ref" }, o.ref),
        el("span", { class: `stage ${o.stage}` }, stageText(o)),
        el("span", { class: "assignee" }, o.assignee ? t("assignee", { n: o.assignee }) : t("unassigned"))),
      el("div", { class: "sub" },
        el("span", { class: "point" }, point),
        o.devices.length > 1 ? el("span", null, t("more_points", { n: o.devices.length })) : null,
        first.site ? el("span", { class: "site" }, first.site) : null),
      el("div", { class: "clocks" }, o.clocks.map((c) => clockChip(c, nowMs))),
      canAct && !mine ? orderActions(o) : null,
      mine ? orderPanel(o, mine) : null);
  }

  function orderActions(o) {
    const open = o.restored_ns === null;
    const act = (name, onClick) => {
      const node = el("button", { type: "button", "data-action": name }, t(`do_${name}`));
      node.addEventListener("click", onClick);
      return node;
    };
    const base = `/api/v1/workorders/${encodeURIComponent(o.ref)}`;
    return el("div", { class: "actions" },
      open && o.acknowledged_ns === null && o.arrived_ns === null
        ? act("ack", () => send(`${base}/acknowledge`, {}, "ack")) : null,
      open && o.arrived_ns === null ? act("arrive", () => send(`${base}/arrive`, {}, "arrive")) : null,
      open ? act("restore", () => openPanel({ kind: "restore", ref: o.ref })) : null,
      act("replace", () => openPanel({
        kind: "replace", ref: o.ref, device: o.devices[0].id, old_serial: o.devices[0].serial || "",
      })),
      open ? null : act("close", () => openPanel({ kind: "close", ref: o.ref })));
  }

  function orderPanel(o, p) {
    const base = `/api/v1/workorders/${encodeURIComponent(o.ref)}`;
    const cancel = button("panel-cancel", t("cancel"), closePanel);
    if (p.kind === "restore") {
      return el("div", { class: "form", id: "restore-form" },
        el("p", null, t("restore_how")),
        o.arrived_ns === null ? el("p", { class: "hint" }, t("on_site_needs_arrival")) : null,
        el("div", { class: "actions" },
          button("restore-remote", t("remote"), () => send(`${base}/restore`, { resolution: "remote" }, "restore")),
          o.arrived_ns === null ? null : button("restore-on-site", t("on_site"),
            () => send(`${base}/restore`, { resolution: "on_site" }, "restore"), "primary"),
          cancel));
    }
    if (p.kind === "replace") {
      const devices = o.devices.map((d) => el("option", { value: d.id }, d.name ? `${d.name}（${d.id}）` : d.id));
      return el("div", { class: "form", id: "replace-form" },
        el("h3", null, t("replace_title")),
        o.devices.length > 1 ? field(t("device"), input("replace-device", "device", { tag: "select", options: devices }))
          : null,
        field(t("old_serial"), input("replace-old", "old_serial", { type: "text", autocapitalize: "characters" })),
        field(t("new_serial"), input("replace-new", "new_serial", { type: "text", autocapitalize: "characters" })),
        field(t("new_model"), input("replace-model", "new_model", { type: "text" })),
        p.error ? el("p", { class: "error" }, p.error) : null,
        el("div", { class: "actions" },
          button("replace-submit", t("submit_replace"), () => {
            if (!(p.old_serial || "").trim() || !(p.new_serial || "").trim()) {
              p.error = t("need_serials");
              renderOrders();
              return;
            }
            send(`${base}/replace`, {
              device: p.device, old_serial: p.old_serial.trim(), new_serial: p.new_serial.trim(),
              ...(p.new_model && p.new_model.trim() ? { new_model: p.new_model.trim() } : {}),
            }, "replace");
          }, "primary"),
          cancel));
    }
    return el("div", { class: "form", id: "close-form" },
      el("p", null, t("close_confirm", { ref: o.ref })),
      el("div", { class: "actions" },
        button("close-submit", t("submit_close"), () => send(`${base}/close`, {}, "close"), "primary"), cancel));
  }

  function reportForm() {
    const p = panel;
    const search = input("point-search", "query", { type: "search", placeholder: t("point_search"), autocomplete: "off" });
    search.addEventListener("input", () => {
      clearTimeout(p.timer);
      p.timer = setTimeout(() => findPoints(p), SEARCH_DELAY_MS);
    });
    const chosen = p.point ? el("div", { class: "chosen", id: "point-chosen" },
      el("span", null, el("span", { class: "name" }, p.point.name), el("span", { class: "sub" }, p.point.id)),
      button("point-clear", "✕", () => { p.point = null; renderOrders(); })) : null;
    const severities = ["critical", "major", "minor"].map((s) => el("option", { value: s }, t(s)));
    return el("div", { class: "form", id: "report-form" },
      el("h3", null, t("report_title")),
      field(t("point"), chosen || search),
      chosen ? null : el("div", { id: "points-found" }),
      field(t("fault_title"), input("report-title", "title", { type: "text", maxlength: "200",
        placeholder: t("fault_title_hint") })),
      field(t("severity"), input("report-severity", "severity", { tag: "select", options: severities })),
      p.error ? el("p", { class: "error" }, p.error) : null,
      el("div", { class: "actions" },
        button("report-submit", t("submit_report"), () => {
          const title = (p.title || "").trim();
          p.error = !p.point ? t("pick_point") : !title ? t("need_title") : null;
          if (p.error) {
            renderOrders();
            return;
          }
          send("/api/v1/workorders", { devices: [p.point.id], title, severity: p.severity }, "report");
        }, "primary"),
        button("report-cancel", t("cancel"), closePanel)));
  }

  // The points matching what was typed, as buttons; only the result list is redrawn (the
  // search field keeps its focus).
  async function findPoints(p) {
    const query = (p.query || "").trim();
    const box = document.getElementById("points-found");
    if (!box || panel !== p) return;
    if (!query) {
      box.replaceChildren();
      return;
    }
    let found;
    try {
      found = await get(`/api/v1/devices?q=${encodeURIComponent(query)}&limit=${MAX_POINTS_FOUND * 2}`);
    } catch (err) {
      box.replaceChildren(el("p", { class: "error" }, err instanceof HttpError
        ? t("failed", { code: err.code, msg: err.message }) : t("failed_net")));
      return;
    }
    if (panel !== p || (p.query || "").trim() !== query) return; // typed on meanwhile
    const points = found.devices.filter((d) => d.status !== "removed").slice(0, MAX_POINTS_FOUND);
    box.replaceChildren(points.length ? el("ul", { class: "found" }, points.map((d) => {
      const pick = el("button", { type: "button", "data-device": d.id },
        el("span", { class: "name" }, d.name), el("span", { class: "sub" }, `${d.id} · ${d.site}`));
      pick.addEventListener("click", () => {
        p.point = { id: d.id, name: d.name };
        renderOrders();
        const title = document.getElementById("report-title");
        if (title) title.focus();
      });
      return el("li", null, pick);
    })) : el("p", { class: "hint" }, t("no_points")));
  }

  function openPanel(p) {
    panel = p;
    notice = null;
    renderOrders();
    const first = document.querySelector("#orders .form input, #orders .form button");
    if (first) first.focus();
  }

  function closePanel() {
    panel = null;
    renderOrders();
  }

  // POST a work-order action as the signed-in person; the notice says what was recorded (with
  // the stamp the daemon kept) or why not.
  async function send(path, body, kind) {
    if (busy) return;
    busy = true;
    notice = { ok: true, text: t("working") };
    renderOrders();
    try {
      const order = await post(path, body);
      const last = order.events[order.events.length - 1];
      notice = { ok: true, text: t(`done_${kind}`, { ref: order.ref, t: clock(last.at_ns / 1e6, true) }) };
      panel = null;
      const orders = await get(`/api/v1/workorders?state=open&limit=${MAX_ORDERS}`);
      data.orders = { ...orders, fetchedMs: Date.now() };
    } catch (err) {
      if (err instanceof HttpError && err.code === 401) {
        signOut();
        notice = { ok: false, text: t("token_expired") };
        renderAccount();
      } else {
        notice = { ok: false, text: err instanceof HttpError ? t("failed", { code: err.code, msg: err.message })
          : t("failed_net") };
      }
    } finally {
      busy = false;
    }
    renderOrders();
  }

  // -- start -------------------------------------------------------------------------------------

  document.getElementById("lang").addEventListener("click", () => {
    lang = currentLang() === "zh" ? "en" : "zh";
    render();
    if (!signin || person) renderSignin(); // a half-typed token is left as it is
  });
  document.getElementById("account").addEventListener("click", () => {
    signin = signin ? null : {};
    renderSignin();
    if (signin) document.getElementById("signin").scrollIntoView({ block: "nearest" });
  });
  render();
  refresh();
})();
