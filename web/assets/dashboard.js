// dashboard.js: the admin dashboard. Product ledger and restock, failed jobs with retry,
// cancel (refund) and redrive, orders by status. Drops: the sale window and the waiting
// room's rate per product, and each queue (joined, serving, admitted, sold out). Refreshes
// every two seconds.
import { api, ApiError, el, loadConfig, money, say, state } from "./api.js";
import { initAuth, signIn, signOut, user } from "./auth.js";

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

function renderProducts(list) {
  $("products").replaceChildren(...list.map((p) => {
    const id = "delta-" + p.id;
    return el("tr", { "data-product": p.id },
      el("th", { scope: "row" }, p.name, " ", el("small", {}, "(" + p.id + ")")),
      el("td", { "data-col": "stock" }, String(p.stock)),
      el("td", { "data-col": "held" }, String(p.held)),
      el("td", { "data-col": "sold" }, String(p.sold)),
      el("td", { "data-col": "available" }, String(p.available)),
      el("td", { "data-col": "window" }, windowText(p)),
      el("td", { "data-col": "queue" }, queueText(p)),
      el("td", {}, el("span", { class: "row" },
        el("label", { for: id, class: "visually-hidden" }, "Units to add to " + p.name),
        el("input", { id, type: "number", value: "5" }),
        el("button", { type: "button", onclick: () => act("Restocked " + p.id + ".", () => api("POST", `/admin/products/${p.id}/restock`, { delta: Number($(id).value) })) }, "Restock"))));
  }));
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
    el("td", {}, o.items.map((i) => `${i.quantity} × ${i.product_id}`).join(", ")),
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
  $("signout").addEventListener("click", signOut);
  $("create").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("p-id").value;
    act("Saved " + id + ".", () => api("PUT", "/admin/products/" + id, {
      name: $("p-name").value, price_cents: Number($("p-price").value), currency: "usd",
      stock: Number($("p-stock").value), max_per_user: Number($("p-max").value),
      opens_at: isoOrNull($("p-opens").value), closes_at: isoOrNull($("p-closes").value), queue_rate: Number($("p-rate").value),
    }));
  });
  $("redrive").addEventListener("click", () => act("Redriven.", async () => {
    const r = await api("POST", "/admin/failed-jobs/redrive");
    say($("msg"), `Moved ${r.moved} job(s) back to the queue.`, "good");
  }));
  $("status").addEventListener("change", refresh);
  await refresh();
  setInterval(refresh, 2000);
}

main().catch(fail);
