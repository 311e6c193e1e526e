// Takt worker page: the calling worker's own figures from /api/v1/me/summary. The key
// arrives once in the link's fragment (#key=…, never sent to a server), is kept on this
// device and removed from the address bar.
"use strict";

const API = new URL("../", document.baseURI);
const T = {
  zh: { title: "我的绩效", key: "个人密钥", connect: "打开", logout: "退出",
        howto: "请扫描班组长提供的二维码，或输入个人密钥。", today: "今天", month: "本月至今",
        units_good: "合格件数", defect_rate: "不良率", pct_of_standard: "标准效率",
        effective_hours: "有效工时", score: "得分", band: "等级", target: "目标",
        progress: "目标进度", projected: "预计", on: "达标中", off: "未达标", down: "停机（分钟）",
        shares: "本线等级分布（匿名）", insufficient_data: "数据不足", noData: "暂无数据",
        asOf: "数据截至", badKey: "密钥无效或已撤销", excellent: "优秀", qualified: "合格",
        to_improve: "待改进", closed: "已结算", alerts: "给我的提醒", warning: "警告",
        critical: "严重", efficiency: "效率", no_output: "无产出", threshold: "阈值",
        since: "自", cleared: "已解除", cases: "我的申诉", newCase: "报告问题", kind: "类型",
        line: "产线", station: "工位", from: "开始", to: "结束", toWorker: "实际操作人",
        what: "发生了什么", evidence: "证据（可选：工单号、链接）", send: "提交",
        equipment_not_signalled: "设备故障未上报", material_shortage: "缺料", training: "培训",
        wrong_attribution: "计件记错人", other: "其他", open: "待处理", approved: "已批准",
        rejected: "已驳回", noCases: "暂无申诉", sent: "已提交" },
  en: { title: "My figures", key: "Personal key", connect: "Open", logout: "Log out",
        howto: "Scan the QR code from your supervisor, or enter your personal key.",
        today: "Today", month: "This month so far", units_good: "Good units",
        defect_rate: "Defect rate", pct_of_standard: "% of standard",
        effective_hours: "Effective hours", score: "Score", band: "Band", target: "Target",
        progress: "Targets", projected: "projected", on: "on track", off: "behind",
        down: "Down time (min)", shares: "Band shares on the line (anonymous)",
        insufficient_data: "Not enough data yet", noData: "No data yet", asOf: "As of",
        badKey: "Invalid or revoked key", excellent: "excellent", qualified: "qualified",
        to_improve: "to improve", closed: "closed", alerts: "Warnings for me",
        warning: "warning", critical: "critical", efficiency: "efficiency",
        no_output: "no output", threshold: "threshold", since: "since", cleared: "cleared",
        cases: "My cases", newCase: "Report a problem", kind: "Kind", line: "Line",
        station: "Station", from: "From", to: "To", toWorker: "Who really made the units",
        what: "What happened", evidence: "Evidence (optional: ticket, link)", send: "Send",
        equipment_not_signalled: "Equipment problem not signalled",
        material_shortage: "Material shortage", training: "Training",
        wrong_attribution: "Units counted on the wrong person", other: "Other",
        open: "open", approved: "approved", rejected: "rejected", noCases: "No cases yet",
        sent: "Sent" },
};
const asked = new URLSearchParams(location.search).get("lang");
let lang = T[asked] ? asked : localStorage.getItem("takt-lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
let key = localStorage.getItem("takt-self-key") || "";
let data = null;
let alerts = [];
let cases = [];
let myLines = null;
const $ = (id) => document.getElementById(id);
const t = (k) => (T[lang][k] ?? k);
const num = (v, d = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function figures(id, title, f) {
  const card = $(id);
  card.replaceChildren(el("h2", {}, t(title)));
  if (!f) { card.append(el("p", { class: "note" }, t("noData"))); return; }
  card.append(el("div", { class: "kv" },
    t("units_good"), el("b", { "data-k": "units_good" }, f.units_good ?? 0),
    t("defect_rate"), el("b", { "data-k": "defect_rate" }, f.defect_rate == null ? "–" : `${num(100 * f.defect_rate, 2)}%`),
    t("pct_of_standard"), el("b", { "data-k": "pct_of_standard" }, f.pct_of_standard == null ? "–" : `${num(f.pct_of_standard)}%`),
    t("effective_hours"), el("b", { "data-k": "effective_hours" }, num(f.effective_hours))));
}

function renderAlerts() {
  // Warnings of the alert rules that route to the worker concerned (notify_worker).
  const box = $("alerts");
  box.replaceChildren();
  if (!alerts.length) return;
  const card = el("article", { class: "card alerts" }, el("h2", {}, t("alerts")));
  const zone = data ? data.timezone : undefined;
  for (const a of alerts) {
    const when = new Date(a.raised_event_ts * 1000).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: zone });
    card.append(el("p", { class: `alert ${a.severity}`, "data-alert": a.id },
      el("b", {}, `${t(a.severity)} · ${t(a.metric)}`), " ",
      `${num(a.value)}${a.unit} (${t("threshold")} ${a.threshold}${a.unit}) · ${a.station || a.line} · ${t("since")} ${when}`,
      a.status === "cleared" ? ` · ${t("cleared")}` : ""));
  }
  box.append(card);
}

function renderCases() {
  // The worker's own cases (filed by them or by a supervisor about them) and their decision.
  const list = $("case-list");
  list.replaceChildren();
  if (!cases.length) { list.append(el("li", { class: "note" }, t("noCases"))); return; }
  const fmt = (iso) => new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: data ? data.timezone : undefined });
  for (const c of [...cases].reverse()) {
    list.append(el("li", { class: `case ${c.status}`, "data-case": c.id },
      el("b", {}, `#${c.id} ${t(c.kind)}`), ` · ${c.line}/${c.station} · ${fmt(c.start)} – ${fmt(c.end)} · `,
      el("span", { class: `status ${c.status}` }, t(c.status)),
      c.decision_reason ? ` · ${c.decision_reason}` : ""));
  }
}

async function fileCase(event) {
  event.preventDefault();
  const value = (id) => $(id).value.trim();
  const kind = value("case-kind");
  const body = { kind, line: value("case-line"), station: value("case-station"),
    start: new Date(value("case-start")).toISOString(), end: new Date(value("case-end")).toISOString(),
    text: value("case-text"), evidence: value("case-evidence") };
  if (kind === "wrong_attribution") body.to_worker = value("case-to");
  const response = await fetch(new URL("cases", API), { method: "POST", body: JSON.stringify(body),
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" } });
  if (!response.ok) {
    const detail = (await response.json().catch(() => ({}))).detail;
    $("case-error").textContent = Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : String(detail ?? response.status);
    return;
  }
  $("case-error").textContent = t("sent");
  $("case-form").reset();
  if (myLines && myLines.length === 1) $("case-line").value = myLines[0];
  await loadCases();
}

function toggleTo() {
  const on = $("case-kind").value === "wrong_attribution";
  for (const id of ["case-to"]) { $(id).hidden = !on; $(id).required = on; }
  document.querySelector('label[for="case-to"]').hidden = !on;
}

async function loadCases() {
  const response = await fetch(new URL("cases", API), { headers: { Authorization: `Bearer ${key}` } });
  cases = response.ok ? await response.json() : [];
  renderCases();
}

function render() {
  if (!data) return;
  renderAlerts();
  renderCases();
  $("who").textContent = data.worker;
  $("asof").textContent = `${t("asOf")} ${new Date(data.as_of).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: data.timezone })}`;
  figures("today", "today", data.today);
  figures("month", "month", data.month);
  const scores = $("scores");
  scores.replaceChildren();
  for (const s of data.scores) {
    const card = el("article", { class: "card", "data-scheme": s.scheme },
      el("h2", {}, `${s.scheme} · ${s.period}${s.closed ? ` · ${t("closed")}` : ""}`));
    if (s.score === null) card.append(el("p", { class: "note" }, `${t("insufficient_data")}: ${s.reasons.join("; ")}`));
    else card.append(el("div", { class: "score" }, el("span", { class: "big", "data-k": "score" }, num(s.score)),
      el("span", { class: `band ${s.band}` }, t(s.band))));
    for (const m of s.metrics) {
      const meter = el("meter", { min: 0, max: 100, value: m.points ?? 0 });
      card.append(el("div", { class: "metric" }, el("span", {}, m.name),
        el("span", {}, `${num(m.value, 3)} / ${t("target")} ${m.target}`), meter));
    }
    if (s.band_shares) {
      card.append(el("p", { class: "note" }, `${t("shares")}: ` +
        s.band_shares.map((b) => `${t(b.band)} ${Math.round(100 * b.share)}%`).join(" · ")));
    }
    scores.append(card);
  }
  const prog = $("progress");
  prog.replaceChildren();
  if (data.progress.length) {
    const card = el("article", { class: "card" }, el("h2", {}, t("progress")));
    for (const p of data.progress) {
      const bar = el("progress", { max: 1, value: Math.min(1, (p.value ?? 0) / (p.target || 1)) });
      card.append(el("div", { class: "metric" }, el("span", {}, `${t(p.metric)} (${p.period})`),
        el("span", { class: p.on_track ? "on" : "off" }, `${num(p.value, 2)} / ${p.target} · ${t("projected")} ${num(p.projected, 2)} · ${t(p.on_track ? "on" : "off")}`), bar));
    }
    prog.append(card);
  }
  const down = $("down");
  down.replaceChildren();
  const reasons = Object.entries((data.month && data.month.down_minutes_by_reason) || {});
  if (reasons.length) {
    const card = el("article", { class: "card" }, el("h2", {}, t("down")));
    const kv = el("div", { class: "kv" });
    for (const [reason, minutes] of reasons.sort((a, b) => b[1] - a[1])) kv.append(reason, el("b", {}, num(minutes)));
    card.append(kv);
    down.append(card);
  }
}

function applyLanguage() {
  document.documentElement.lang = lang;
  $("lang").textContent = lang === "zh" ? "EN" : "中文";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  render();
}

function show(on) {
  $("login").hidden = on;
  $("logout").hidden = !on;
  $("content").hidden = !on;
}

function logout(message = "") {
  key = "";
  data = null;
  localStorage.removeItem("takt-self-key");
  show(false);
  $("login-error").textContent = message;
}

async function load() {
  const url = new URL("me/summary", API);
  const at = new URLSearchParams(location.search).get("at");  // "as of" (replays, kiosks)
  if (at) url.searchParams.set("at", at);
  const response = await fetch(url, { headers: { Authorization: `Bearer ${key}` } });
  if (response.status === 401 || response.status === 403) { logout(t("badKey")); return; }
  if (!response.ok) { $("asof").textContent = `HTTP ${response.status}`; return; }
  data = await response.json();
  const mine = await fetch(new URL("me/alerts", API), { headers: { Authorization: `Bearer ${key}` } });
  alerts = mine.ok ? (await mine.json()).alerts : [];
  const who = await fetch(new URL("me", API), { headers: { Authorization: `Bearer ${key}` } });
  myLines = who.ok ? (await who.json()).lines : null;
  if (myLines && myLines.length === 1 && !$("case-line").value) $("case-line").value = myLines[0];
  await loadCases();
  show(true);
  render();
  document.body.dataset.loaded = "1";
}

document.addEventListener("DOMContentLoaded", () => {
  const fragment = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fragment) {
    key = fragment;
    localStorage.setItem("takt-self-key", key);
    history.replaceState(null, "", location.pathname + location.search);
  }
  $("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("takt-lang", lang); applyLanguage(); });
  $("logout").addEventListener("click", () => logout());
  $("case-form").addEventListener("submit", fileCase);
  $("case-kind").addEventListener("change", toggleTo);
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    key = $("key").value.trim();
    localStorage.setItem("takt-self-key", key);
    load();
  });
  applyLanguage();
  if (key) { load(); setInterval(() => key && load(), 120000); } else show(false);
});
