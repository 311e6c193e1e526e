// Takt charts: small SVG charts drawn without a library (the pages' CSP allows only
// their own scripts). Every mark carries data-label and data-value (the figure as
// shown), so a test — or a screen reader — can read the chart, not only see it.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const W = 640, H = 220, PAD = { l: 48, r: 44, t: 12, b: 40 };

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function frame(container, title, max, unit) {
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  const h3 = document.createElement("h3");
  h3.textContent = title;
  container.replaceChildren(h3, svg);
  const y = (v) => PAD.t + (H - PAD.t - PAD.b) * (1 - (max > 0 ? v / max : 0));
  for (const f of [0, 0.5, 1]) {
    const v = max * f;
    svg.append(svgEl("line", { class: "grid", x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v) }));
    svg.append(svgEl("text", { x: PAD.l - 4, y: y(v) + 4, "text-anchor": "end" }, `${+v.toFixed(1)}${unit}`));
  }
  svg.append(svgEl("line", { class: "axis", x1: PAD.l, x2: W - PAD.r, y1: y(0), y2: y(0) }));
  return { svg, y };
}

function niceMax(values) {
  const top = Math.max(0, ...values.filter((v) => v !== null && Number.isFinite(v)));
  if (top <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(top));
  return Math.ceil(top / step) * step;
}

function xLabels(svg, points, x) {
  const every = Math.max(1, Math.ceil(points.length / 10));
  points.forEach((p, i) => {
    if (i % every === 0) svg.append(svgEl("text", { x: x(i), y: H - PAD.b + 14, "text-anchor": "middle" }, p.short ?? p.label));
  });
}

/** Bars, one per point ({label, value, mark?}); value null draws nothing for that point. */
function barChart(container, title, points, { unit = "", decimals = 1, color = "#1976d2", markColor = "#e65100" } = {}) {
  const max = niceMax(points.map((p) => p.value));
  const { svg, y } = frame(container, title, max, unit);
  const slot = (W - PAD.l - PAD.r) / Math.max(1, points.length);
  const x = (i) => PAD.l + slot * (i + 0.5);
  points.forEach((p, i) => {
    if (p.value === null || p.value === undefined) return;
    const shown = Number(p.value).toFixed(decimals);
    const bar = svgEl("rect", {
      x: x(i) - slot * 0.35, width: slot * 0.7, y: y(p.value), height: Math.max(0, y(0) - y(p.value)),
      fill: p.mark ? markColor : color, "data-label": p.label, "data-value": shown,
    });
    bar.append(svgEl("title", {}, `${p.label}: ${shown}${unit}`));
    svg.append(bar);
    if (p.count !== undefined) svg.append(svgEl("text", { x: x(i), y: y(p.value) - 3, "text-anchor": "middle" }, p.count));
  });
  xLabels(svg, points, x);
  return svg;
}

/** A line through the points that have a value, a dot on each. */
function lineChart(container, title, points, { unit = "", decimals = 1, color = "#2e7d32" } = {}) {
  const max = niceMax(points.map((p) => p.value));
  const { svg, y } = frame(container, title, max, unit);
  const slot = (W - PAD.l - PAD.r) / Math.max(1, points.length);
  const x = (i) => PAD.l + slot * (i + 0.5);
  const drawn = points.map((p, i) => [p, i]).filter(([p]) => p.value !== null && p.value !== undefined);
  if (drawn.length > 1) {
    const d = drawn.map(([p, i], k) => `${k ? "L" : "M"}${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ");
    svg.append(svgEl("path", { d, fill: "none", stroke: color, "stroke-width": 2 }));
  }
  for (const [p, i] of drawn) {
    const shown = Number(p.value).toFixed(decimals);
    const dot = svgEl("circle", { cx: x(i), cy: y(p.value), r: 3.5, fill: color, "data-label": p.label, "data-value": shown });
    dot.append(svgEl("title", {}, `${p.label}: ${shown}${unit}`));
    svg.append(dot);
  }
  xLabels(svg, points, x);
  return svg;
}

/** Pareto: bars sorted by value, descending, and the cumulative share as a line (right axis). */
function paretoChart(container, title, entries, { unit = "", decimals = 0 } = {}) {
  const sorted = [...entries].filter((e) => e.value > 0).sort((a, b) => b.value - a.value || a.label.localeCompare(b.label));
  const svg = barChart(container, title, sorted, { unit, decimals, color: "#c62828" });
  const total = sorted.reduce((s, e) => s + e.value, 0);
  if (!total) return svg;
  const slot = (W - PAD.l - PAD.r) / sorted.length;
  const yc = (share) => PAD.t + (H - PAD.t - PAD.b) * (1 - share);
  let cumulative = 0;
  const pts = sorted.map((e, i) => {
    cumulative += e.value;
    return [PAD.l + slot * (i + 0.5), yc(cumulative / total), (100 * cumulative) / total, e.label];
  });
  svg.append(svgEl("path", { d: pts.map(([x, y], k) => `${k ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join(" "), fill: "none", stroke: "#333", "stroke-width": 1.5 }));
  for (const [x, y, pct, label] of pts) {
    svg.append(svgEl("circle", { cx: x, cy: y, r: 3, fill: "#333", "data-cumulative": pct.toFixed(1), "data-label": label }));
  }
  svg.append(svgEl("text", { x: W - PAD.r + 4, y: yc(1) + 4 }, "100%"));
  svg.append(svgEl("text", { x: W - PAD.r + 4, y: yc(0.5) + 4 }, "50%"));
  return svg;
}

window.TaktCharts = { barChart, lineChart, paretoChart };
