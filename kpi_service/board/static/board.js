// Takt supervisor board: reads /alerts/stream (server-sent events over fetch, so the API
// key travels in a header, never in a URL) and acknowledges through /alerts/{id}/ack.
"use strict";

const API = new URL("../alerts/", document.baseURI);
const T = {
  zh: { title: "班组看板", key: "API 密钥", connect: "连接", logout: "退出", alerts: "当前报警",
        noAlerts: "无报警", online: "在线", offline: "离线", ack: "确认", acked: "已确认",
        defect: "不良率", eff: "效率", uph: "件/时", running: "运行", idle: "空闲", down: "停机",
        unknown: "未知", defect_rate: "不良率", efficiency: "效率", no_output: "无产出",
        down_time: "停机时间", warning: "警告", critical: "严重", line: "产线",
        badKey: "密钥无效或无权限" },
  en: { title: "Supervisor board", key: "API key", connect: "Connect", logout: "Log out",
        alerts: "Active alerts", noAlerts: "No alerts", online: "online", offline: "offline",
        ack: "Acknowledge", acked: "Acknowledged", defect: "Defects", eff: "Efficiency",
        uph: "units/h", running: "running", idle: "idle", down: "down", unknown: "unknown",
        defect_rate: "Defect rate", efficiency: "Efficiency", no_output: "No output",
        down_time: "Down time", warning: "warning", critical: "critical", line: "Line",
        badKey: "Invalid key or no access" },
};
const asked = new URLSearchParams(location.search).get("lang");
let lang = T[asked] ? asked : localStorage.getItem("takt-lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
let key = sessionStorage.getItem("takt-key") || "";
let snapshot = null;
let abort = null;
const $ = (id) => document.getElementById(id);
const t = (k) => (T[lang][k] ?? k);

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

const pct = (v) => (v === null || v === undefined ? "–" : `${v.toFixed(1)}%`);

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

function alertText(a) {
  const where = [a.line, a.station, a.worker].filter(Boolean).join(" / ");
  const value = `${a.value.toFixed(1)}${a.unit} (≥ ${a.threshold}${a.unit})`.replace("≥", a.metric === "efficiency" ? "≤" : "≥");
  return `${t(a.severity)} · ${t(a.metric)} ${value} — ${where}`;
}

function render() {
  if (!snapshot) return;
  const list = $("alerts");
  list.replaceChildren();
  for (const a of snapshot.alerts) {
    const button = el("button", { type: "button", class: "ack", "data-id": a.id }, t(a.status === "acknowledged" ? "acked" : "ack"));
    if (a.status === "acknowledged") button.disabled = true;
    button.addEventListener("click", () => acknowledge(a.id, button));
    list.append(el("li", { class: `alert ${a.severity} ${a.status}`, "data-id": a.id },
      el("span", { class: "what" }, alertText(a)),
      el("span", { class: "when" }, new Date(a.raised_at * 1000).toLocaleTimeString()),
      button));
  }
  $("no-alerts").hidden = snapshot.alerts.length > 0;
  const alerting = new Set(snapshot.alerts.map((a) => `${a.line}/${a.station}`));
  const lines = $("lines");
  lines.replaceChildren();
  for (const line of snapshot.lines) {
    const stations = el("div", { class: "stations" });
    for (const s of line.stations) {
      const state = s.state || "unknown";
      const card = el("article", { class: `station ${state}${alerting.has(`${line.line}/${s.station}`) ? " alerting" : ""}`, "data-station": s.station },
        el("h3", {}, s.station, el("span", { class: "state" }, t(state))),
        el("div", { class: "figures" },
          el("span", {}, `${t("eff")} `, el("b", {}, s.efficiency != null ? pct(s.efficiency) : (s.units_per_hour != null ? `${s.units_per_hour} ${t("uph")}` : "–"))),
          el("span", {}, `${t("defect")} `, el("b", {}, pct(s.defect_rate)))));
      for (const w of s.workers || []) {
        card.append(el("div", { class: "worker", "data-worker": w.worker },
          el("span", { class: "name" }, w.worker),
          el("span", {}, `${t("eff")} ${w.efficiency != null ? pct(w.efficiency) : (w.units_per_hour ?? "–")} · ${t("defect")} `,
            el("span", { class: w.defect_rate > 5 ? "bad" : "" }, pct(w.defect_rate))),
          trendSvg(w.trend)));
      }
      stations.append(card);
    }
    lines.append(el("section", { class: "line" }, el("h2", {}, `${t("line")} ${line.line}`), stations));
  }
}

async function acknowledge(id, button) {
  button.disabled = true;
  const response = await fetch(new URL(`${encodeURIComponent(id)}/ack`, API), {
    method: "POST", headers: { Authorization: `Bearer ${key}` },
  });
  if (response.ok) {
    const alert = await response.json();
    snapshot.alerts = snapshot.alerts.map((a) => (a.id === id ? alert : a));
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
    const response = await fetch(new URL("stream", API), { headers: { Authorization: `Bearer ${key}`, Accept: "text/event-stream" }, signal });
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

function showBoard(on) {
  $("login").hidden = on;
  $("logout").hidden = !on;
  $("alerts-section").hidden = !on;
  $("lines").hidden = !on;
}

function logout(message = "") {
  key = "";
  sessionStorage.removeItem("takt-key");
  if (abort) abort.abort();
  snapshot = null;
  showBoard(false);
  $("login-error").textContent = message;
  setOnline(false);
}

document.addEventListener("DOMContentLoaded", () => {
  $("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("takt-lang", lang); applyLanguage(); });
  $("logout").addEventListener("click", () => logout());
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    key = $("key").value.trim();
    sessionStorage.setItem("takt-key", key);
    $("login-error").textContent = "";
    showBoard(true);
    connect();
  });
  applyLanguage();
  if (key) { showBoard(true); connect(); } else showBoard(false);
});
