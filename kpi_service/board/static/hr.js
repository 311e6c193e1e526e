// Takt HR charts: a worker's trend, their place among comparable workers, and down time
// by reason per line and station, from the HR API (an hr:read or admin key). The key can
// arrive in the link's fragment (#key=…, never sent to a server); it is kept for this
// browser session only and removed from the address bar.
"use strict";

const API = new URL("../", document.baseURI);
const T = {
  en: { title: "HR charts", key: "HR key", connect: "Open", logout: "Log out", worker: "Worker",
        start: "From", end: "To", show: "Show", trend: "Trend per day",
        pct: "% of standard", defects: "Defect rate (%)", hours: "Effective hours",
        distribution: "% of standard among comparable workers", pareto: "Down time by reason (Pareto)",
        of: "Of", minutes: "min", line: "line", station: "station", badKey: "Invalid or revoked key",
        noData: "No data for this period", workers: "workers", marked: "marked: ", comparable:
        "Comparable: workers at stations with a standard time, same period; bars count workers per 10-point band.",
        fewer: "Fewer than 5 comparable workers: no distribution is shown." },
  zh: { title: "人事图表", key: "人事密钥", connect: "打开", logout: "退出", worker: "员工",
        start: "从", end: "到", show: "显示", trend: "每日趋势", pct: "标准效率（%）",
        defects: "不良率（%）", hours: "有效工时", distribution: "可比员工的标准效率分布",
        pareto: "停机原因（帕累托）", of: "范围", minutes: "分钟", line: "产线", station: "工位",
        badKey: "密钥无效或已撤销", noData: "该期间无数据", workers: "名员工", marked: "标记：",
        comparable: "可比：有标准工时的工位上的员工，同一期间；柱为每10个百分点的人数。",
        fewer: "可比员工少于5名：不显示分布。" },
};
const MIN_COMPARABLE = 5;
const params = new URLSearchParams(location.search);
let lang = T[params.get("lang")] ? params.get("lang") : (navigator.language.startsWith("zh") ? "zh" : "en");
let key = sessionStorage.getItem("takt-hr-key") || "";
let entities = [];
const $ = (id) => document.getElementById(id);
const t = (k) => T[lang][k] ?? k;

function translate() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("lang").textContent = lang === "zh" ? "EN" : "中文";
}

async function api(path, query) {
  const url = new URL(path, API);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const response = await fetch(url, { headers: { Authorization: `Bearer ${key}` } });
  if (response.status === 401 || response.status === 403) throw new Error(t("badKey"));
  if (!response.ok) throw new Error(`${response.status}: ${(await response.text()).slice(0, 200)}`);
  return response.json();
}

function trend(rows) {
  const points = rows.map((r) => ({ label: r.bucket, short: r.bucket.slice(5), row: r }));
  const { lineChart, barChart } = window.TaktCharts;
  lineChart($("chart-pct"), t("pct"), points.map((p) => ({ ...p, value: p.row.pct_of_standard })), { unit: "%", decimals: 1 });
  lineChart($("chart-defects"), t("defects"), points.map((p) => ({ ...p, value: p.row.defect_rate == null ? null : 100 * p.row.defect_rate })), { unit: "%", decimals: 2, color: "#c62828" });
  barChart($("chart-hours"), t("hours"), points.map((p) => ({ ...p, value: p.row.effective_s / 3600 })), { unit: "h", decimals: 2 });
}

function distribution(rows, worker) {
  const values = rows.filter((r) => r.pct_of_standard !== null && r.pct_of_standard !== undefined);
  const note = $("dist-note");
  if (values.length < MIN_COMPARABLE) {
    $("chart-dist").replaceChildren();
    note.textContent = t("fewer");
    return;
  }
  const mine = values.find((r) => r.worker === worker);
  const band = (v) => Math.floor(v / 10) * 10;
  const lo = band(Math.min(...values.map((r) => r.pct_of_standard)));
  const hi = band(Math.max(...values.map((r) => r.pct_of_standard)));
  const bins = [];
  for (let b = lo; b <= hi; b += 10) {
    const n = values.filter((r) => band(r.pct_of_standard) === b).length;
    bins.push({ label: `${b}-${b + 10}%`, short: `${b}`, value: n, count: n, mark: mine !== undefined && band(mine.pct_of_standard) === b });
  }
  window.TaktCharts.barChart($("chart-dist"), `${values.length} ${t("workers")}`, bins, { decimals: 0 });
  const marker = document.createElement("span");
  if (mine) {
    marker.dataset.worker = worker;
    marker.dataset.value = mine.pct_of_standard.toFixed(1);
    marker.textContent = `${t("marked")}${worker} ${mine.pct_of_standard.toFixed(1)}%. `;
  }
  note.replaceChildren(marker, t("comparable"));
}

function pareto() {
  const chosen = entities[Number($("pareto-of").value)] ?? entities[0];
  if (!chosen) { $("chart-pareto").replaceChildren(); return; }
  const entries = Object.entries(chosen.down_by_reason || {}).map(([reason, s]) => ({ label: reason, value: s / 60 }));
  window.TaktCharts.paretoChart($("chart-pareto"), `${t(chosen.kind)} ${chosen.name} (${t("minutes")})`, entries, { decimals: 1 });
}

async function show() {
  const worker = $("worker").value.trim();
  const query = { start: $("start").value, end: $("end").value };
  $("query-error").textContent = "";
  document.body.dataset.ready = "0";
  try {
    const [mine, all, lines, stations] = await Promise.all([
      api(`workers/${encodeURIComponent(worker)}/kpis`, { ...query, group: "day", fpy: "false" }),
      api("kpis", { ...query, entity: "worker", limit: "10000" }),
      api("kpis", { ...query, entity: "line", limit: "10000" }),
      api("kpis", { ...query, entity: "station", limit: "10000" }),
    ]);
    $("login").hidden = true;
    $("query").hidden = false;
    $("logout").hidden = false;
    $("content").hidden = false;
    if (!mine.items.length) $("query-error").textContent = t("noData");
    trend(mine.items);
    distribution(all.items, worker);
    entities = [
      ...lines.items.map((r) => ({ kind: "line", name: r.line, down_by_reason: r.down_by_reason })),
      ...stations.items.map((r) => ({ kind: "station", name: r.station, down_by_reason: r.down_by_reason })),
    ];
    const select = $("pareto-of");
    const wanted = params.get("pareto");
    select.replaceChildren(...entities.map((e, i) => new Option(`${t(e.kind)} ${e.name}`, String(i), false, `${e.kind}:${e.name}` === wanted)));
    pareto();
    document.body.dataset.ready = "1";
  } catch (err) {
    if (String(err.message) === t("badKey")) {
      sessionStorage.removeItem("takt-hr-key");
      key = "";
      $("login").hidden = false;
      $("login-error").textContent = err.message;
      return;
    }
    $("query-error").textContent = err.message;
  }
}

function init() {
  translate();
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("key")) {
    key = fragment.get("key");
    sessionStorage.setItem("takt-hr-key", key);
    history.replaceState(null, "", location.pathname + location.search);
  }
  const today = new Date().toISOString().slice(0, 10);
  $("worker").value = params.get("worker") || "";
  $("start").value = params.get("start") || `${today.slice(0, 8)}01`;
  $("end").value = params.get("end") || today;
  $("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; translate(); if (key && $("worker").value) show(); });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem("takt-hr-key"); key = ""; location.reload(); });
  $("login").addEventListener("submit", (e) => { e.preventDefault(); key = $("key").value.trim(); sessionStorage.setItem("takt-hr-key", key); $("login").hidden = true; $("query").hidden = false; });
  $("query").addEventListener("submit", (e) => { e.preventDefault(); show(); });
  $("pareto-of").addEventListener("change", pareto);
  if (key) {
    $("login").hidden = true;
    $("query").hidden = false;
    if ($("worker").value) show();
  }
}

init();
