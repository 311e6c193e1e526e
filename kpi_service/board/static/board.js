// Takt supervisor board: reads /alerts/stream (server-sent events over fetch, so the API
// key travels in a header, never in a URL) and acknowledges through /alerts/{id}/ack.
// Every figure, level and time on it comes from the server (line time, rule thresholds);
// the page only lays it out. ?mode=wall: large type, no controls (a screen across the room).
// #pair=CODE (from a supervisor's QR code) redeems a pairing code for this tablet's key.
"use strict";

const API = new URL("../", document.baseURI);
const ALERTS = new URL("alerts/", API);
const T = {
  zh: { title: "班组看板", key: "API 密钥", connect: "连接", logout: "退出", alerts: "当前报警",
        noAlerts: "无报警", online: "在线", offline: "离线", ack: "确认", acked: "已确认",
        defect: "不良率", eff: "标准达成", uph: "件/时", running: "运行", idle: "空闲", down: "停机",
        unknown: "未知", defect_rate: "不良率", efficiency: "标准达成率", no_output: "无产出",
        down_time: "停机时间", warning: "警告", critical: "严重", line: "产线",
        badKey: "密钥无效或无权限", asOf: "数据时间", ago: "前", stale: "数据过期",
        unattended: "运行中 · 无人登录", since: "登录", lastMin: "近 {n} 分钟",
        lastUnits: "近 {n} 件", clearsAt: "恢复需 {op} {v}", threshold: "阈值 {op} {v}",
        ackBy: "{who} 已确认 · {at}", raised: "报警于", pair: "配对平板", pairCode: "配对码",
        pairGo: "配对", pairHint: "在平板上输入此配对码或扫码（{min} 分钟内有效，仅限一次）",
        badCode: "配对码无效、已过期或已使用", tooMany: "尝试次数过多，请稍后再试",
        close: "关闭", s: "秒", min: "分钟", h: "小时", or: "或", noWorker: "无人登录",
        tablets: "已配对的平板", revoke: "撤销", pairing_waiting: "等待配对", pairing_expired: "已过期",
        pairing_active: "使用中", pairing_revoked: "已撤销",
        reasons: { fault: "故障", jam: "卡料", starved: "缺料", blocked: "堵料", maintenance: "维护",
                   changeover: "换型", setup: "调机", break: "休息" } },
  en: { title: "Supervisor board", key: "API key", connect: "Connect", logout: "Log out",
        alerts: "Active alerts", noAlerts: "No alerts", online: "online", offline: "offline",
        ack: "Acknowledge", acked: "Acknowledged", defect: "Defects", eff: "% of standard",
        uph: "units/h", running: "running", idle: "idle", down: "down", unknown: "unknown",
        defect_rate: "Defect rate", efficiency: "% of standard", no_output: "No output",
        down_time: "Down time", warning: "warning", critical: "critical", line: "Line",
        badKey: "Invalid key or no access", asOf: "as of", ago: "ago", stale: "stale",
        unattended: "running, nobody logged in", since: "in since", lastMin: "last {n} min",
        lastUnits: "last {n} units", clearsAt: "clears at {op} {v}", threshold: "raised at {op} {v}",
        ackBy: "acknowledged by {who} · {at}", raised: "raised", pair: "Pair a tablet",
        pairCode: "Pairing code", pairGo: "Pair",
        pairHint: "Type this code on the tablet or scan it (valid {min} min, once)",
        badCode: "Unknown, expired or used code", tooMany: "Too many attempts; try again later",
        close: "Close", s: "s", min: "min", h: "h", or: "or", noWorker: "nobody logged in",
        tablets: "Paired tablets", revoke: "Revoke", pairing_waiting: "waiting", pairing_expired: "expired",
        pairing_active: "active", pairing_revoked: "revoked" },
};
const query = new URLSearchParams(location.search);
const asked = query.get("lang");
const wall = query.get("mode") === "wall";
let lang = T[asked] ? asked : localStorage.getItem("takt-lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
let key = sessionStorage.getItem("takt-key") || localStorage.getItem("takt-board-key") || "";
let snapshot = null;
let abort = null;
const $ = (id) => document.getElementById(id);
const t = (k, vars = {}) => (T[lang][k] ?? k).replace(/\{(\w+)\}/g, (_, n) => vars[n] ?? "");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function applyLanguage() {
  document.documentElement.lang = lang;
  $("lang").textContent = lang === "zh" ? "EN" : "中文";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  setOnline($("status").classList.contains("online"));
  render();
}

function setOnline(on) {
  const status = $("status");
  status.className = "status " + (on ? "online" : "offline");
  status.textContent = t(on ? "online" : "offline");
}

const pct = (v) => (v === null || v === undefined ? "–" : `${v.toFixed(1)} %`);

/** "45 s", "12 min", "2 h 05 min" (zh: 秒/分钟/小时). */
function span(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const sep = lang === "zh" ? "" : " ";
  if (seconds < 60) return `${seconds}${sep}${t("s")}`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}${sep}${t("min")}`;
  const rest = String(minutes % 60).padStart(2, "0");
  return `${Math.floor(minutes / 60)}${sep}${t("h")} ${rest}${sep}${t("min")}`;
}

const ago = (seconds) => (lang === "zh" ? `${span(seconds)}${t("ago")}` : `${span(seconds)} ${t("ago")}`);
// Levels come from the alert rules' thresholds (server side); "bad" marks any breach.
const lvl = (levels, metric) => {
  const level = levels && levels[metric];
  return level ? `lvl-${level}${level === "ok" ? "" : " bad"}` : "";
};

function trendSvg(trend) {
  const max = Math.max(1, ...trend.map(([, g, d]) => g + d));
  const w = 100 / trend.length;
  const root = svg("svg", { viewBox: "0 0 100 32", preserveAspectRatio: "none", role: "img" });
  trend.forEach(([i, good, defect]) => {
    const hg = (good / max) * 30, hd = (defect / max) * 30;
    root.append(svg("rect", { class: "trend-good", x: i * w, y: 32 - hg - hd, width: w * 0.85, height: hg }));
    if (defect) root.append(svg("rect", { class: "trend-defect", x: i * w, y: 32 - hd, width: w * 0.85, height: hd }));
  });
  return root;
}

function windowText(win) {
  if (!win) return "";
  return win.units ? t("lastUnits", { n: win.units }) : t("lastMin", { n: win.minutes });
}

function alertCard(a) {
  const where = [a.line, a.station, a.worker].filter(Boolean).join(" / ");
  const unit = a.unit === "%" ? " %" : ` ${a.unit}`;
  const up = !a.rule || a.rule.higher_is_worse;
  const level = a.hysteresis && a.rule
    ? el("span", { class: "clears" }, t("clearsAt", { op: up ? "≤" : "≥", v: `${a.rule.clear}${unit}` }))
    : el("span", { class: "threshold" }, t("threshold", { op: up ? "≥" : "≤", v: `${a.threshold}${unit}` }));
  const item = el("li", { class: `alert ${a.severity} ${a.status}${a.hysteresis ? " hysteresis" : ""}`, "data-id": a.id },
    el("span", { class: "sev" }, t(a.severity)),
    el("span", { class: "what" }, `${t(a.metric)} `, el("b", { class: "value" }, `${a.value.toFixed(1)}${unit}`),
      ` · ${windowText(a.window)} · `, level),
    el("span", { class: "where" }, where),
    el("span", { class: "when" }, `${t("raised")} ${a.raised_local ?? ""}`));
  const acked = a.status === "acknowledged";
  if (acked) {
    item.append(el("span", { class: "acked-by" }, t("ackBy", { who: a.acknowledged_by ?? "?", at: a.acknowledged_local ?? "" })));
  }
  if (!wall) {
    const button = el("button", { type: "button", class: "ack", "data-id": a.id }, t(acked ? "acked" : "ack"));
    if (acked) button.disabled = true;
    else button.addEventListener("click", () => acknowledge(a.id, button));
    item.append(button);
  }
  return item;
}

function stationCard(line, s, alerting) {
  const state = s.state || "unknown";
  const classes = ["station", state];
  if (s.stale) classes.push("stale");
  if (s.unattended) classes.push("unattended");
  if (alerting.has(`${line.line}/${s.station}`)) classes.push("alerting");
  // "down" and, beside it, "fault · 12 min": the reason and how long the state has lasted.
  const during = [];
  if (s.reason) during.push((T[lang].reasons || {})[s.reason] ?? s.reason);  // device codes, named where known
  if (s.state_for_s !== null && s.state_for_s !== undefined) during.push(span(s.state_for_s));
  const card = el("article", { class: classes.join(" "), "data-station": s.station },
    el("h3", {}, el("span", { class: "name" }, s.station),
      el("span", { class: "status-text" }, s.stale ? el("span", { class: "stale-label" }, t("stale")) : "",
        el("span", { class: "state" }, t(state)), el("span", { class: "during" }, during.join(" · ")))),
    el("div", { class: "asof" }, s.as_of_local ? `${t("asOf")} ${s.as_of_local} · ${ago(s.age_s)}` : `${t("asOf")} –`));
  if (s.unattended) card.append(el("div", { class: "flag" }, t("unattended")));
  const eff = s.efficiency != null
    ? el("b", { class: lvl(s.levels, "efficiency") }, pct(s.efficiency))
    : el("b", {}, s.units_per_hour != null ? `${s.units_per_hour} ${t("uph")}` : "–");
  card.append(el("div", { class: "figures" },
    el("span", { class: "eff" }, `${s.efficiency != null ? t("eff") : t("uph")} `, eff),
    el("span", { class: "defect" }, `${t("defect")} `, el("b", { class: lvl(s.levels, "defect_rate") }, pct(s.defect_rate)))));
  if (!s.workers.length && !s.unattended) card.append(el("div", { class: "nobody" }, t("noWorker")));
  for (const w of s.workers) {
    card.append(el("div", { class: "worker", "data-worker": w.worker },
      el("span", { class: "name" }, w.worker,
        el("span", { class: "login" }, w.login_local ? ` · ${t("since")} ${w.login_local}` : "")),
      el("span", {}, `${w.efficiency != null ? t("eff") : t("uph")} `,
        el("span", { class: `eff ${lvl(w.levels, "efficiency")}` }, w.efficiency != null ? pct(w.efficiency) : (w.units_per_hour ?? "–")),
        ` · ${t("defect")} `,
        el("span", { class: `defect ${lvl(w.levels, "defect_rate")}` }, pct(w.defect_rate))),
      trendSvg(w.trend)));
  }
  return card;
}

function render() {
  if (!snapshot) return;
  const list = $("alerts");
  list.replaceChildren(...snapshot.alerts.map(alertCard));
  $("no-alerts").hidden = snapshot.alerts.length > 0;
  $("window").textContent = t("lastMin", { n: snapshot.window_minutes });
  const alerting = new Set(snapshot.alerts.map((a) => `${a.line}/${a.station}`));
  const lines = $("lines");
  lines.replaceChildren();
  for (const line of snapshot.lines) {
    const stations = el("div", { class: "stations" });
    for (const s of line.stations) stations.append(stationCard(line, s, alerting));
    lines.append(el("section", { class: "line", "data-line": line.line },
      el("h2", {}, `${t("line")} ${line.line}`, el("span", { class: "clock" }, line.event_time_local ?? "")), stations));
  }
}

async function acknowledge(id, button) {
  button.disabled = true;
  const response = await fetch(new URL(`${encodeURIComponent(id)}/ack`, ALERTS), {
    method: "POST", headers: { Authorization: `Bearer ${key}` },
  });
  if (response.ok) {
    const alert = await response.json();
    snapshot.alerts = snapshot.alerts.map((a) => (a.id === id ? { ...a, ...alert } : a));
    render();
  } else {
    button.disabled = false;
  }
}

function onTransition(tr) {
  if (!snapshot) return;
  const others = snapshot.alerts.filter((a) => a.id !== tr.alert.id);
  snapshot.alerts = tr.kind === "cleared" ? others : [tr.alert, ...others];
  render();
}

async function connect() {
  if (abort) abort.abort();
  abort = new AbortController();
  const signal = abort.signal;
  try {
    const response = await fetch(new URL("stream", ALERTS), { headers: { Authorization: `Bearer ${key}`, Accept: "text/event-stream" }, signal });
    if (response.status === 401 || response.status === 403) { logout(t("badKey")); return; }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    setOnline(true);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message", data = "";
        for (const row of block.split("\n")) {
          if (row.startsWith("event: ")) event = row.slice(7);
          else if (row.startsWith("data: ")) data += row.slice(6);
        }
        if (event === "snapshot") { snapshot = JSON.parse(data); render(); }
        else if (event === "transition") onTransition(JSON.parse(data));
      }
    }
  } catch (err) {
    if (signal.aborted) return;
  }
  setOnline(false);
  if (!signal.aborted && key) setTimeout(connect, 2000);
}

/** Show "Pair a tablet" only to a key that may issue codes (supervisor or admin). */
async function offerPairing() {
  $("pair").hidden = true;
  if (wall || !key) return;
  const response = await fetch(new URL("me", API), { headers: { Authorization: `Bearer ${key}` } });
  if (!response.ok) return;
  const me = await response.json();
  $("pair").hidden = !me.scopes.some((s) => s === "supervisor" || s === "admin");
}

function showBoard(on) {
  $("login").hidden = on;
  $("pair-form").hidden = on;
  $("logout").hidden = !on || wall;
  if (on) offerPairing(); else $("pair").hidden = true;
  $("alerts-section").hidden = !on;
  $("lines").hidden = !on;
}

function logout(message = "") {
  key = "";
  sessionStorage.removeItem("takt-key");
  localStorage.removeItem("takt-board-key");
  if (abort) abort.abort();
  snapshot = null;
  $("lines").replaceChildren();  // nothing of the last key's data stays in the page
  $("alerts").replaceChildren();
  showBoard(false);
  $("login-error").textContent = message;
  setOnline(false);
}

async function redeem(code) {
  const response = await fetch(new URL("board/pairings/redeem", API), {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ code }),
  });
  if (!response.ok) {
    $("login-error").textContent = t(response.status === 429 ? "tooMany" : "badCode");
    return;
  }
  const paired = await response.json();
  key = paired.key;
  localStorage.setItem("takt-board-key", key);  // a paired tablet keeps its key
  showBoard(true);
  connect();
}

async function issuePairing() {
  const response = await fetch(new URL("board/pairings", API), {
    method: "POST", headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" }, body: "{}",
  });
  const box = $("pairing");
  if (!response.ok) { box.hidden = false; box.replaceChildren(el("p", { class: "error" }, t("badKey"))); return; }
  const issued = await response.json();
  const minutes = Math.round((Date.parse(issued.expires_at) - Date.parse(issued.created_at)) / 60000);
  const close = el("button", { type: "button" }, t("close"));
  close.addEventListener("click", () => { box.hidden = true; });
  const tablets = el("div", { class: "tablets" });
  box.replaceChildren(el("b", { class: "code" }, issued.code), el("img", { src: issued.qr_svg, alt: issued.code }),
    el("p", {}, t("pairHint", { min: minutes })), close, tablets);
  box.hidden = false;
  listTablets(tablets);
}

/** The pairings of the supervisor's lines, each with its key's state and a revoke button. */
async function listTablets(box) {
  const response = await fetch(new URL("board/pairings", API), { headers: { Authorization: `Bearer ${key}` } });
  if (!response.ok) return;
  const rows = (await response.json()).map((p) => {
    const row = el("li", { class: `tablet ${p.status}`, "data-pairing": p.id },
      el("span", { class: "label" }, p.label), ` ${[p.lines.join(", "), p.key_name].filter(Boolean).join(" · ")} · `,
      el("span", { class: "state" }, t(`pairing_${p.status}`)));
    if (p.status === "active" || p.status === "waiting") {
      const button = el("button", { type: "button", class: "revoke" }, t("revoke"));
      button.addEventListener("click", async () => {
        button.disabled = true;
        await fetch(new URL(`board/pairings/${p.id}/revoke`, API), { method: "POST", headers: { Authorization: `Bearer ${key}` } });
        listTablets(box);
      });
      row.append(button);
    }
    return row;
  });
  box.replaceChildren(el("h3", {}, t("tablets")), el("ul", {}, ...rows));
}

document.addEventListener("DOMContentLoaded", () => {
  if (wall) document.body.classList.add("wall");
  $("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("takt-lang", lang); applyLanguage(); });
  $("logout").addEventListener("click", () => logout());
  $("pair").addEventListener("click", () => issuePairing());
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    key = $("key").value.trim();
    sessionStorage.setItem("takt-key", key);
    $("login-error").textContent = "";
    showBoard(true);
    connect();
  });
  $("pair-form").addEventListener("submit", (e) => { e.preventDefault(); redeem($("code").value.trim()); });
  applyLanguage();
  window.addEventListener("hashchange", pairFromLink);
  if (!pairFromLink()) { if (key) { showBoard(true); connect(); } else showBoard(false); }
});

/** A QR code's link carries the code in the fragment: redeem it, and drop it from the address. */
function pairFromLink() {
  const code = new URLSearchParams(location.hash.slice(1)).get("pair");
  if (!code) return false;
  history.replaceState(null, "", location.pathname + location.search);  // the code is used once
  redeem(code);
  return true;
}
