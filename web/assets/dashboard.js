// dashboard.js: the admin dashboard. Product ledger and restock, failed jobs with retry,
// cancel (refund) and redrive, orders by status. Drops: the sale window and the waiting
// room's rate per product, and each queue (joined, serving, admitted, sold out). Refreshes
// every two seconds. Variants: a product sold in sizes shows a row per size (its stock, held,
// sold, available, and its own restock); the form edits a product's sizes (add, change, remove
// rows: PUT /admin/products/{id} with "variants"), and "Edit" loads a product into it.
// Draws: dashboard-draws.js (the form's allocation and draw time, a row of counts under each
// draw, the beacon).
import { api, ApiError, el, loadConfig, money, say, state } from "./api.js";
import { initAuth, signIn, signOut, user } from "./auth.js";
import * as draws from "./dashboard-draws.js";

const KEY = "lastunit.admin";
const $ = (id) => document.getElementById(id);

let failing = false; // the last refresh failed: its message is on the page

// tools enables or disables every admin tool at once (the fieldset) and says why in its
// legend, which screen readers read out with the first tool.
function tools(enabled, why) {
  $("admin-area").disabled = !enabled;
  $("admin-legend").textContent = "Admin tools" + (why ? " (" + why + ")" : "");
}

function fail(err) {
  const u = user();
  if (err instanceof ApiError && err.code === "forbidden" && u) {
    say($("msg"), `Signed in as ${u.name}, who is not in the admin group. Sign out and sign in as an admin.`, "bad");
    tools(false, `signed in as ${u.name}, who is not an admin`);
  } else if (err instanceof ApiError && err.code === "unauthenticated") {
    say($("msg"), "Sign in as an admin first.", "bad");
  } else {
    say($("msg"), err.message, "bad");
  }
}

async function act(what, fn) {
  try {
    await fn();
    say($("msg"), what, "good");
  } catch (err) { fail(err); }
  await refresh();
}

let shown = []; // the products last shown, for "Edit"

// sized: a product sold in variants (sizes); one variant named "default" is a plain product.
function sized(p) {
  const v = p.variants || [];
  return v.length > 1 || (v.length === 1 && v[0].id !== "default");
}

// restockCell is a number input and a Restock button, for the product or one of its variants.
function restockCell(id, what, body) {
  return el("td", {}, el("span", { class: "row" },
    el("label", { for: id, class: "visually-hidden" }, "Units to add to " + what),
    el("input", { id, type: "number", value: "5" }),
    el("button", { type: "button", onclick: () => act("Restocked " + what + ".", () => api("POST", body.path, Object.assign({ delta: Number($(id).value) }, body.extra))) }, "Restock")));
}

function renderProducts(list) {
  shown = list;
  const rows = [];
  list.forEach((p) => {
    const path = `/admin/products/${p.id}/restock`;
    rows.push(el("tr", { "data-product": p.id },
      el("th", { scope: "row" }, p.name, " ", el("small", {}, "(" + p.id + ")"), " ",
        el("button", { type: "button", class: "secondary small", "data-edit": p.id, onclick: () => edit(p.id) }, "Edit")),
      el("td", { "data-col": "stock" }, String(p.stock)),
      el("td", { "data-col": "held" }, String(p.held)),
      el("td", { "data-col": "sold" }, String(p.sold)),
      el("td", { "data-col": "available" }, String(p.available)),
      el("td", { "data-col": "window" }, windowText(p)),
      el("td", { "data-col": "queue" }, queueText(p)),
      sized(p) ? el("td", { class: "hint" }, "per size") : restockCell("delta-" + p.id, p.id, { path })));
    if (sized(p)) p.variants.forEach((v) => rows.push(el("tr", { class: "variant", "data-product": p.id, "data-variant": v.id },
      el("th", { scope: "row" }, el("span", { class: "visually-hidden" }, p.name + ", "), v.name, " ", el("small", {}, "(" + v.id + ")")),
      el("td", { "data-col": "stock" }, String(v.stock)),
      el("td", { "data-col": "held" }, String(v.held)),
      el("td", { "data-col": "sold" }, String(v.sold)),
      el("td", { "data-col": "available" }, String(v.available)),
      el("td", { colspan: "2", class: "hint" }, v.price_cents !== p.price_cents ? money(v.price_cents, p.currency) : ""),
      restockCell(`delta-${p.id}--${v.id}`, `${p.id} ${v.id}`, { path, extra: { variant_id: v.id } }))));
    rows.push(...draws.rows(p, act));
  });
  // The table is drawn again every two seconds: keep what the admin typed into the restock
  // fields, and the focus, across it.
  const typed = [...$("products").querySelectorAll("input")].map((i) => [i.id, i.value]);
  const focused = document.activeElement && $("products").contains(document.activeElement) ? document.activeElement.id : "";
  $("products").replaceChildren(...rows);
  for (const [id, value] of typed) if ($(id)) $(id).value = value;
  if (focused && $(focused)) $(focused).focus();
}

// The form's size rows: id, name, stock and an optional price, each removable.
function sizeRow(v) {
  const n = $("v-rows").children.length;
  const cell = (cls, label, attrs) => el("td", {}, el("label", { class: "visually-hidden", for: `v-${cls}-${n}` }, label),
    el("input", Object.assign({ id: `v-${cls}-${n}`, class: "v-" + cls }, attrs)));
  const row = el("tr", { "data-size-row": String(n) },
    cell("id", "Size id", { required: true, pattern: "[a-z0-9][a-z0-9._-]{0,31}", placeholder: "us-9", value: v.id || "" }),
    cell("name", "Size name", { required: true, maxlength: "100", placeholder: "US 9", value: v.name || "" }),
    cell("stock", "Size stock", { type: "number", min: "0", required: true, value: v.stock != null ? String(v.stock) : "0" }),
    cell("price", "Size price in cents (empty: the product's)", { type: "number", min: "0", placeholder: "product's", value: v.price_cents != null ? String(v.price_cents) : "" }),
    el("td", {}, el("button", { type: "button", class: "secondary", onclick: () => { row.remove(); sizesChanged(); } }, "Remove")));
  $("v-rows").append(row);
  sizesChanged();
}

// sizesChanged: with size rows the product's stock is theirs, so the Stock field is off.
function sizesChanged() {
  const any = $("v-rows").children.length > 0;
  $("v-table").hidden = !any;
  $("p-stock").disabled = any;
  $("p-stock").required = !any;
}

function sizesFromForm() {
  return [...$("v-rows").children].map((r) => {
    const v = { id: r.querySelector(".v-id").value, name: r.querySelector(".v-name").value, stock: Number(r.querySelector(".v-stock").value) };
    const price = r.querySelector(".v-price").value;
    if (price !== "") v.price_cents = Number(price);
    return v;
  });
}

// localInput turns RFC 3339 into a datetime-local value (the admin's local time), null into "".
function localInput(t) {
  if (!t) return "";
  const d = new Date(t);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
}

// edit loads a product into the form, its sizes as rows (none for a one-variant product).
function edit(id) {
  const p = shown.find((x) => x.id === id);
  if (!p) return;
  $("p-id").value = p.id;
  $("p-name").value = p.name;
  $("p-price").value = String(p.price_cents);
  $("p-stock").value = String(p.stock);
  $("p-max").value = String(p.max_per_user);
  $("p-opens").value = localInput(p.opens_at);
  $("p-closes").value = localInput(p.closes_at);
  $("p-rate").value = String(p.queue_rate || 0);
  draws.edit(p);
  $("v-rows").replaceChildren();
  // A size at the product's price is left blank, so that it follows the product's price.
  if (sized(p)) for (const v of p.variants) sizeRow(v.price_cents === p.price_cents ? Object.assign({}, v, { price_cents: null }) : v);
  sizesChanged();
  $("p-name").focus();
  say($("msg"), `Editing ${p.id}: change it and save.`, "");
}

function windowText(p) {
  const f = (t) => new Date(t).toLocaleString();
  if (!p.opens_at && !p.closes_at) return "always";
  return (p.opens_at ? "from " + f(p.opens_at) : "") + (p.opens_at && p.closes_at ? " " : "") + (p.closes_at ? "until " + f(p.closes_at) : "");
}

function queueText(p) {
  if (!(p.queue_rate > 0)) return "none";
  const q = p.queue;
  const head = p.queue_rate + "/s";
  if (!q) return head;
  if (!q.opened) return `${head} · ${q.joined} waiting for the opening`;
  return `${head} · joined ${q.joined} · serving ${q.serving} · admitted ${q.admitted}` + (q.sold_out ? " · sold out" : "");
}

// isoOrNull turns a datetime-local value (the admin's local time) into RFC 3339, "" into null.
function isoOrNull(v) { return v ? new Date(v).toISOString() : null; }

function renderJobs(jobs) {
  $("jobs").replaceChildren(...jobs.map((j) => el("tr", { "data-job": j.order_id },
    el("th", { scope: "row" }, j.order_id),
    el("td", {}, String(j.attempts)),
    el("td", {}, j.last_error),
    el("td", {}, new Date(j.failed_at).toLocaleString()),
    el("td", {}, el("span", { class: "row" },
      el("button", { type: "button", onclick: () => act("Queued " + j.order_id + " again.", () => api("POST", `/admin/failed-jobs/${j.order_id}/retry`)) }, "Retry"),
      el("button", { type: "button", class: "secondary", onclick: () => act("Cancelled and refunded " + j.order_id + ".", () => api("POST", `/admin/failed-jobs/${j.order_id}/cancel`)) }, "Cancel (refund)"))))));
  if (jobs.length === 0) $("jobs").append(el("tr", {}, el("td", { colspan: "5" }, "No failed jobs.")));
  $("redrive").disabled = jobs.length === 0;
}

function renderOrders(orders) {
  $("orders").replaceChildren(...orders.map((o) => el("tr", { "data-order": o.id },
    el("th", { scope: "row" }, o.id),
    el("td", { class: "status" }, o.status.replace("_", " ")),
    el("td", {}, money(o.amount_cents, o.currency)),
    el("td", {}, o.items.map((i) => `${i.quantity} × ${i.product_id}` + (i.variant_id && i.variant_id !== "default" ? ` (${i.variant_id})` : "")).join(", ")),
    el("td", {}, new Date(o.updated_at).toLocaleString()))));
}

async function refresh() {
  if (!user()) return;
  try {
    const [p, j, o] = await Promise.all([
      api("GET", "/admin/products"),
      api("GET", "/admin/failed-jobs"),
      api("GET", "/admin/orders" + ($("status").value ? "?status=" + $("status").value : "")),
    ]);
    renderProducts(p.products);
    renderJobs(j.failed_jobs);
    renderOrders(o.orders);
    tools(true, "");
    if (failing) say($("msg"), "", ""); // the error it replaces is over
    failing = false;
  } catch (err) { fail(err); failing = true; }
}

function showUser() {
  const u = user();
  $("signin").hidden = !!u;
  $("whoami").hidden = !u;
  $("who").textContent = u ? "Signed in as " + u.name + (u.groups.includes("admin") ? " (admin)" : "") : "";
  // Signed out, every tool is disabled; signed in, they are enabled once the admin routes answer.
  if (!u) tools(false, "sign in as an admin to use them");
  else if (!$("admin-area").disabled) tools(true, "");
  else tools(false, "loading");
}

// The session ended without the admin asking (expired, refused): back to the prompt.
function sessionEnded() {
  showUser();
  say($("msg"), "Your session ended. Sign in again.", "bad");
}

async function main() {
  await loadConfig();
  const problem = await initAuth(state.config.admin_auth, KEY, sessionEnded);
  showUser();
  if (problem) say($("msg"), problem, "bad");
  $("signin-button").addEventListener("click", () => signIn().catch((err) => say($("msg"), "Could not start sign-in: " + err.message, "bad")));
  document.body.dataset.signin = "ready"; // Sign in works from now on (the browser tests wait for it)
  $("signout").addEventListener("click", signOut);
  $("create").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("p-id").value;
    const body = {
      name: $("p-name").value, price_cents: Number($("p-price").value), currency: "usd",
      max_per_user: Number($("p-max").value),
      opens_at: isoOrNull($("p-opens").value), closes_at: isoOrNull($("p-closes").value), queue_rate: Number($("p-rate").value),
    };
    // Either the sizes (each with its stock) or one stock: API.md refuses both.
    if ($("v-rows").children.length > 0) body.variants = sizesFromForm(); else body.stock = Number($("p-stock").value);
    draws.formBody(body);
    act("Saved " + id + ".", () => api("PUT", "/admin/products/" + id, body));
  });
  draws.setupForm();
  $("v-add").addEventListener("click", () => { sizeRow({}); $("v-rows").lastElementChild.querySelector(".v-id").focus(); });
  $("redrive").addEventListener("click", () => act("Redriven.", async () => {
    const r = await api("POST", "/admin/failed-jobs/redrive");
    say($("msg"), `Moved ${r.moved} job(s) back to the queue.`, "good");
  }));
  $("status").addEventListener("change", refresh);
  await refresh();
  setInterval(refresh, 2000);
}

main().catch(fail);
