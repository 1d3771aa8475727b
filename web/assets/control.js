// control.js: the dashboard's control room (API.md, "The control room"). For the product
// picked: five live charts drawn with uPlot (vendored: uPlot.iife.min.js, uPlot-VERSION.txt),
// fetched every second from GET /admin/products/{id}/live?seconds=N; the window's totals under
// each chart; refusals by code; the sale's report from GET /admin/products/{id}/report every five
// seconds (the funnel, the facts) and its per-minute CSV (Accept: text/csv). Its own section of
// dashboard.html (#control-room) and its own styles (control.css); it shares only the API
// client and the session with dashboard.js.
import { api, ApiError, el, say, state } from "./api.js";
import { accessToken, user } from "./auth.js";

const $ = (id) => document.getElementById(id);
const KEY = "lastunit.control"; // sessionStorage: the product and window picked
const LIVE_EVERY = 1000, REPORT_EVERY = 5000, PRODUCTS_EVERY = 5000;
// Every second the page asks for the last TAIL seconds only and merges them into the window it
// holds (a second's counts may still grow after it ends: a latency recorded with the next call);
// the whole window every FULL_EVERY, and when the product or the window changes.
const TAIL = 5, FULL_EVERY = 30000;

// The refusal codes, as the report names them, and their field in a live point.
const REFUSALS = ["out_of_stock", "limit_exceeded", "not_admitted", "not_open", "rate_limited"];

// CHARTS: what each chart draws. A series is a live point's field (or a function of the
// points), counted ("sum": events per second, totalled over the window) or read ("last": a
// value at the end of each second, shown as the latest; "latency": the same, null in a second
// without a reserve).
const CHARTS = [
  { id: "reserves", title: "Reserves by outcome (answers per second)", series: [
    { field: "reserve_ok", label: "reserved", color: "#0a6b2e", kind: "sum" },
    { field: "out_of_stock", label: "out of stock", color: "#a40000", kind: "sum" },
    { field: "limit_exceeded", label: "limit exceeded", color: "#b35c00", kind: "sum" },
    { field: "not_admitted", label: "not admitted", color: "#6a3d9a", kind: "sum" },
    { field: "not_open", label: "not open", color: "#4a4a4a", kind: "sum" },
    { field: "rate_limited", label: "rate limited", color: "#0b5fff", kind: "sum" },
  ] },
  { id: "stock", title: "Available and held (units)", series: [
    { field: "available", label: "available", color: "#0b5fff", kind: "last" },
    { field: "held", label: "held", color: "#b35c00", kind: "last" },
  ] },
  { id: "queue", title: "The queue: joined against serving", series: [
    { field: "joined_total", label: "joined", color: "#6a3d9a", kind: "last" },
    { field: "serving", label: "serving", color: "#0a6b2e", kind: "last" },
  ] },
  { id: "payments", title: "Holds into payments (per second)", series: [
    { field: "checked_out", label: "checked out", color: "#0b5fff", kind: "sum" },
    { field: "paid", label: "paid", color: "#0a6b2e", kind: "sum" },
    { field: "released", label: "released", color: "#4a4a4a", kind: "sum" },
    { field: "expired", label: "expired", color: "#a40000", kind: "sum" },
  ] },
  { id: "latency", title: "Reserve latency (ms)", series: [
    { field: "reserve_ms_p50", label: "p50", color: "#0b5fff", kind: "latency", points: true },
    { field: "reserve_ms_p99", label: "p99", color: "#a40000", kind: "latency", dash: [6, 4], points: true },
  ] },
];

const FUNNEL = [["queue_joined", "joined the queue"], ["admitted", "admitted"], ["entered", "entered the draw"],
  ["held", "held a unit"], ["checked_out", "checked out"], ["paid", "paid"], ["fulfilled", "fulfilled"]];

const charts = {}; // id → uPlot
let product = "", seconds = 300;
let kept = [], keptFor = "", fullAt = 0; // the window's raw points, for which product and window, when read whole
let queueJoined = null; // the product's queue.joined from GET /admin/products (the queue chart's anchor)
let inFlight = false;
let reportedAt = 0; // when the report was last asked for (0: ask at the next tick)

function saved() {
  try { return JSON.parse(sessionStorage.getItem(KEY) || "{}"); } catch (_) { return {}; }
}
function save() { sessionStorage.setItem(KEY, JSON.stringify({ product, seconds })); }

function problem(err) {
  if (err instanceof ApiError && (err.code === "unauthenticated" || err.code === "forbidden" || err.code === "session_ended")) {
    say($("cr-msg"), "", ""); // dashboard.js says it for the whole page
    return;
  }
  say($("cr-msg"), err.message, "bad");
}

// clock is a second (Unix time) as the admin's local time of day, to the second.
function clock(t) { return new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }); }

// makeChart draws an empty chart into its figure's plot box, as wide as the box.
function makeChart(def) {
  const box = document.querySelector(`[data-chart="${def.id}"] .cr-plot`);
  const opts = {
    width: Math.max(box.clientWidth, 240), height: 180,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [{ stroke: "#4a4a4a", grid: { stroke: "#e4e4e0" }, space: 80, values: (u, splits) => splits.map(clock) },
      { stroke: "#4a4a4a", grid: { stroke: "#e4e4e0" }, size: 48 }],
    legend: { show: false }, // the totals under the chart name the series, with their colours
    // A latency second between two seconds without a reserve is a lone point: draw points there.
    series: [{}].concat(def.series.map((s) => ({ label: s.label, stroke: s.color, width: 2, dash: s.dash, spanGaps: false,
      points: s.points ? { show: true, size: 6, fill: s.color } : {},
      value: (u, v) => (v == null ? "–" : String(Math.round(v * 10) / 10)) }))),
  };
  const u = new uPlot(opts, [[], ...def.series.map(() => [])], box);
  new ResizeObserver(() => u.setSize({ width: Math.max(box.clientWidth, 240), height: 180 })).observe(box);
  charts[def.id] = u;
}

// withJoinedTotal adds joined_total to each point: the queue's joined count at the end of that
// second, anchored on the total the products list reports now (the live series counts joins
// per second, the queue's serving is a position). Without a queue it counts from the window's
// start.
function withJoinedTotal(points) {
  const inWindow = points.reduce((n, p) => n + (p.queue_joined || 0), 0);
  let total = queueJoined != null && queueJoined >= inWindow ? queueJoined - inWindow : 0;
  return points.map((p) => { total += p.queue_joined || 0; return Object.assign({ joined_total: total }, p); });
}

// swatch is a series' colour, set through the CSSOM (the policy allows no style attribute).
function swatch(s) {
  const i = el("i", { class: "cr-swatch" + (s.dash ? " dashed" : ""), "aria-hidden": "true" });
  i.style.borderColor = s.color;
  return i;
}

function totals(def, points) {
  return def.series.map((s) => {
    const values = points.map((p) => p[s.field]).filter((v) => v != null);
    if (s.kind === "sum") return [s, values.reduce((a, b) => a + b, 0)];
    return [s, values.length ? values[values.length - 1] : null]; // "last", "latency": the latest value
  });
}

// merge puts fresh points (the last few seconds) over the kept ones and keeps the window.
function merge(fresh) {
  if (fresh.length === 0) return;
  const from = Date.parse(fresh[0].t);
  const newest = Date.parse(fresh[fresh.length - 1].t);
  // Seconds missed (a tab whose timers the browser slowed): read the whole window next time.
  if (kept.length && from > Date.parse(kept[kept.length - 1].t) + 1000) fullAt = 0;
  kept = kept.filter((p) => Date.parse(p.t) < from && Date.parse(p.t) > newest - seconds * 1000).concat(fresh);
}

function drawLive() {
  const points = withJoinedTotal(kept);
  const xs = points.map((p) => Date.parse(p.t) / 1000);
  for (const def of CHARTS) {
    charts[def.id].setData([xs, ...def.series.map((s) => points.map((p) => (p[s.field] == null ? null : p[s.field])))]);
    const sum = totals(def, points);
    const fig = document.querySelector(`[data-chart="${def.id}"] .cr-totals`);
    const word = { sum: "in the window", last: "now", latency: "the last second with reserves" };
    fig.replaceChildren(...sum.map(([s, v]) => el("span", { "data-series": s.field, "data-value": v == null ? "" : String(v) },
      swatch(s), el("b", {}, v == null ? "–" : String(Math.round(v * 10) / 10)), " " + s.label)), el("small", {}, "(" + word[def.series[0].kind] + ")"));
  }
  const refused = {};
  for (const code of REFUSALS) refused[code] = points.reduce((n, p) => n + (p[code] || 0), 0);
  for (const code of REFUSALS) {
    const cell = document.querySelector(`[data-refusal="${code}"] [data-col="live"]`);
    if (cell) cell.textContent = String(refused[code]);
  }
  $("cr-window-label").textContent = `last ${seconds} s`;
  $("cr-updated").textContent = points.length ? "Updated " + new Date(xs[xs.length - 1] * 1000).toLocaleTimeString() : "";
}

async function refreshLive() {
  if (!product || !user() || inFlight) return;
  inFlight = true;
  try {
    const id = product, key = product + "|" + seconds;
    const whole = key !== keptFor || Date.now() - fullAt >= FULL_EVERY;
    const live = await api("GET", `/admin/products/${encodeURIComponent(id)}/live?seconds=${whole ? seconds : Math.min(TAIL, seconds)}`);
    if (id !== product) return; // the admin picked another product meanwhile
    if (whole) { kept = live.points || []; keptFor = key; fullAt = Date.now(); } else merge(live.points || []);
    drawLive();
    if ($("cr-msg").classList.contains("bad")) say($("cr-msg"), "", "");
  } catch (err) { problem(err); } finally { inFlight = false; }
}

function when(t) { return t ? new Date(t).toLocaleString() : "–"; }

function drawReport(r) {
  const facts = [["opened_at", "Opened", when(r.opened_at)], ["first_hold_at", "First hold", when(r.first_hold_at)],
    ["sold_out_at", "Sold out", r.sold_out_at ? when(r.sold_out_at) : "not sold out"],
    ["units_sold", "Units sold", String(r.units_sold)], ["units_refunded", "Units refunded", String(r.units_refunded)],
    ["peak_reserves_per_s", "Peak reserves per second", String(r.peak_reserves_per_s)], ["shoppers", "Shoppers who held", String(r.shoppers)]];
  $("cr-facts").replaceChildren(...facts.flatMap(([k, label, v]) => [el("dt", {}, label), el("dd", { "data-fact": k }, v)]));
  const f = r.funnel || {};
  const top = Math.max(1, ...FUNNEL.map(([k]) => f[k] || 0));
  $("cr-funnel").replaceChildren(...FUNNEL.map(([k, label]) => el("li", { "data-stage": k },
    el("span", { class: "cr-stage" }, label),
    el("meter", { min: "0", max: String(top), value: String(f[k] || 0), "aria-label": label }),
    el("b", {}, String(f[k] || 0)))));
  for (const code of REFUSALS) {
    const cell = document.querySelector(`[data-refusal="${code}"] [data-col="sale"]`);
    if (cell) cell.textContent = String((r.refusals || {})[code] || 0);
  }
  $("cr-csv").disabled = false;
}

async function refreshReport() {
  if (!product || !user()) return;
  try { drawReport(await api("GET", `/admin/products/${encodeURIComponent(product)}/report`)); } catch (err) { problem(err); }
}

// refreshProducts keeps the picker's list current, and the queue's joined total for the
// queue chart.
async function refreshProducts() {
  if (!user()) return;
  let list;
  try { list = (await api("GET", "/admin/products")).products; } catch (err) { problem(err); return; }
  const pick = $("cr-product");
  const ids = list.map((p) => p.id);
  if (ids.join("\n") !== [...pick.options].map((o) => o.value).join("\n")) {
    pick.replaceChildren(...list.map((p) => el("option", { value: p.id }, `${p.name} (${p.id})`)));
  }
  if (!ids.includes(product)) {
    const want = saved().product;
    choose(ids.includes(want) ? want : (ids[0] || ""));
  }
  pick.value = product;
  const p = list.find((x) => x.id === product);
  queueJoined = p && p.queue ? p.queue.joined : null;
}

function choose(id) {
  if (id === product) return;
  product = id;
  save();
  $("cr-csv").disabled = true;
  reportedAt = 0;
  for (const u of Object.values(charts)) u.setData([[], ...u.series.slice(1).map(() => [])]);
}

// downloadCSV fetches the report's per-minute CSV with the session's token and saves it as
// <product>-report.csv.
async function downloadCSV() {
  if (!product) return;
  try {
    const token = await accessToken();
    const r = await fetch(`${state.config.api_base}/admin/products/${encodeURIComponent(product)}/report`,
      { headers: Object.assign({ Accept: "text/csv" }, token ? { Authorization: "Bearer " + token } : {}) });
    if (!r.ok) {
      let e = null;
      try { e = (await r.json()).error; } catch (_) { /* not JSON */ }
      throw new ApiError(r.status, e);
    }
    const url = URL.createObjectURL(new Blob([await r.text()], { type: "text/csv" }));
    const a = el("a", { href: url, download: `${product}-report.csv`, class: "visually-hidden" }, "CSV");
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    say($("cr-msg"), `Downloaded ${product}-report.csv.`, "good");
  } catch (err) { problem(err); }
}

function main() {
  if (!$("control-room") || typeof uPlot === "undefined") return;
  const s = saved();
  if ([60, 300, 900].includes(s.seconds)) seconds = s.seconds;
  $("cr-seconds").value = String(seconds);
  $("cr-refusals").replaceChildren(...REFUSALS.map((code) => el("tr", { "data-refusal": code },
    el("th", { scope: "row" }, el("code", {}, code)), el("td", { "data-col": "live" }, "–"), el("td", { "data-col": "sale" }, "–"))));
  for (const def of CHARTS) makeChart(def);
  $("cr-product").addEventListener("change", (e) => { choose(e.target.value); tick(); });
  $("cr-seconds").addEventListener("change", (e) => { seconds = Number(e.target.value); save(); refreshLive(); });
  $("cr-csv").addEventListener("click", downloadCSV);
  // One tick a second: the products list first when there is no product yet (the session
  // starts after this module runs) and every five seconds, then the live series; the report
  // every five seconds.
  let listed = 0;
  async function tick() {
    if (!user()) return;
    const now = Date.now();
    if (!product || now - listed >= PRODUCTS_EVERY) { listed = now; await refreshProducts(); }
    refreshLive();
    if (now - reportedAt >= REPORT_EVERY) { reportedAt = now; refreshReport(); }
  }
  tick();
  setInterval(tick, LIVE_EVERY);
}

main();
