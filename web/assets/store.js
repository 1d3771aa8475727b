// store.js: the storefront. Products with live stock over the WebSocket, holds with a
// countdown, checkout, and payment (Stripe's Payment Element, or "Pay (test)" locally).
// Drops: a countdown to the opening, the waiting room (join, place in line live from the
// room's "queue" messages and the ticket's number, the admission timer, sold out).
// Variants: a product sold in sizes gets a size picker with each size's count live (sold-out
// sizes disabled); the cart and the order name the size. A product with one variant,
// "default", looks as it did before variants: no picker.
// Draws: a product with allocation "draw" has no Reserve button; draws.js gives its card the
// entry (sizes in order of preference), the countdowns, the result and the won offer's timer.
import { api, ApiError, el, loadConfig, money, say, state } from "./api.js";
import { initAuth, signIn, signOut, signedIn, user } from "./auth.js";
import * as draws from "./draws.js";

const KEY = "lastunit.shopper";
const $ = (id) => document.getElementById(id);
const products = new Map(); // id → {product, version, node}
const chosen = new Map(); // product id → the variant id the shopper picked (kept across re-renders)
let cart = [];
let order = null;
let socket = null;

function explain(err) {
  if (!(err instanceof ApiError)) return "Something went wrong: " + err.message;
  switch (err.code) {
    case "out_of_stock": return err.details.available > 0 ? `Only ${err.details.available} left.` : "Sold out.";
    case "limit_exceeded": return `Limit reached: at most ${err.details.limit} per shopper.`;
    case "reservation_expired": return "Your hold expired before checkout. Reserve again.";
    case "unauthenticated": return "Please sign in first.";
    case "payment_provider_error": return "The payment provider failed; your holds are kept. Try again.";
    case "not_open": return err.details.opens_at ? "The sale opens at " + new Date(err.details.opens_at).toLocaleString() + "." : "The sale has closed.";
    case "not_admitted": return err.details.ahead == null ? "Join the queue: places are drawn at the opening." : `Not your turn yet: ${err.details.ahead} ahead of you.`;
    case "rate_limited": return "Too many requests: wait a moment and try again.";
    default: return err.message;
  }
}

// variantsOf is a product's variants; an answer without them is one variant, "default".
function variantsOf(pr) {
  return Array.isArray(pr.variants) && pr.variants.length ? pr.variants
    : [{ id: "default", name: pr.name, price_cents: pr.price_cents, available: pr.available }];
}

// sized: the shopper chooses between variants (a size picker). A product whose only variant
// is "default" is sold as one thing, as before variants.
function sized(pr) {
  const v = variantsOf(pr);
  return v.length > 1 || v[0].id !== "default";
}

// variantMap is a Product answer's variants as the stock message carries them ({id: available}).
function variantMap(pr) {
  return Array.isArray(pr.variants) ? Object.fromEntries(pr.variants.map((v) => [v.id, v.available])) : undefined;
}

// itemName is "Sneaker (US 9)" for a sized product's variant, "Hoodie" otherwise.
function itemName(productID, variantID) {
  const p = products.get(productID);
  if (!p) return productID + (variantID && variantID !== "default" ? ` (${variantID})` : "");
  if (!sized(p.product)) return p.product.name;
  const v = variantsOf(p.product).find((x) => x.id === variantID);
  return `${p.product.name} (${v ? v.name : variantID})`;
}

// setAvailable applies a product's count, and its variants' counts when given ({id: available}).
function setAvailable(id, available, version, variants) {
  const p = products.get(id);
  if (!p) return;
  if (version !== undefined) {
    if (p.version !== undefined && version <= p.version) return; // stale or repeated
    p.version = version;
  }
  p.product.available = available;
  if (variants) {
    const vs = variantsOf(p.product);
    // A size added or removed since the page drew the card: draw the products again.
    if (vs.length !== Object.keys(variants).length || vs.some((v) => !(v.id in variants))) reloadSoon();
    for (const v of vs) if (v.id in variants) v.available = variants[v.id];
    if (!sized(p.product)) vs[0].available = available;
  }
  if (draws.isDraw(p.product)) { draws.render(id); return; }
  const n = p.node.querySelector(".available");
  n.textContent = available > 0 ? `${available} available` : "Sold out";
  n.classList.toggle("zero", available <= 0);
  renderSizes(id);
  renderDrop(id);
}

// renderSizes shows each size's count; a sold-out size is disabled, and the shopper's pick
// of it is dropped with a word.
function renderSizes(id) {
  const p = products.get(id);
  if (!p || !sized(p.product)) return;
  for (const v of variantsOf(p.product)) {
    const input = p.node.querySelector(`input[data-variant="${CSS.escape(v.id)}"]`);
    if (!input) continue;
    const out = !(v.available > 0);
    input.disabled = out;
    input.closest(".size").dataset.state = out ? "sold_out" : "available";
    input.closest(".size").querySelector(".left").textContent = out ? "sold out" : `${v.available} left`;
    if (out && input.checked) {
      input.checked = false;
      chosen.delete(id);
      // Sold out by someone else: say so. By the shopper's own hold: nothing to say.
      if (p.held !== v.id) say($("msg"), `${itemName(id, v.id)} just sold out. Pick another size.`, "bad");
    }
  }
}

// picked is the variant the shopper chose on a sized product (null if none, or sold out).
function picked(p) {
  const input = p.node.querySelector(".sizes input:checked");
  if (!input) return null;
  const v = variantsOf(p.product).find((x) => x.id === input.value);
  return v && v.available > 0 ? v : null;
}

let reloading = null;
function reloadSoon() {
  if (!reloading) reloading = setTimeout(() => { reloading = null; loadProducts().catch(() => {}); }, 500);
}

// canReserve: in stock, signed in, inside the sale window, and admitted where there is a queue.
function canReserve(p) {
  const pr = p.product, now = Date.now();
  if (pr.available <= 0 || !signedIn()) return false;
  if (sized(pr) && !picked(p)) return false;
  if (pr.opens_at && now < new Date(pr.opens_at).getTime()) return false;
  if (pr.closes_at && now >= new Date(pr.closes_at).getTime()) return false;
  return !(pr.queue_rate > 0) || (p.ticket && p.ticket.state === "admitted");
}

function clock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(s % 60).padStart(2, "0");
}

// renderDrop shows a product's sale window and the caller's place in its waiting room.
function renderDrop(id) {
  const p = products.get(id);
  if (!p) return;
  if (draws.isDraw(p.product)) { draws.render(id); return; }
  const button = p.node.querySelector("button.reserve");
  button.disabled = !canReserve(p);
  button.textContent = sized(p.product) && !picked(p) && p.product.available > 0 ? "Pick a size" : "Reserve";
  const d = p.node.querySelector(".drop");
  if (!d) return;
  const pr = p.product, now = Date.now();
  const opens = pr.opens_at ? new Date(pr.opens_at).getTime() : 0;
  const closes = pr.closes_at ? new Date(pr.closes_at).getTime() : 0;
  const when = d.querySelector(".opens");
  // Open and nothing left: the sale reads sold out, not "On sale" (units may still come back
  // from a released or expired hold; the count and the queue follow them live).
  const soldOut = opens <= now && !(closes && closes <= now) && pr.available <= 0;
  when.textContent = opens > now ? "Opens in " + clock(opens - now) : closes && closes <= now ? "Sale closed" : soldOut ? "Sold out" : closes ? "Closes in " + clock(closes - now) : "On sale";
  when.dataset.open = opens > now ? "no" : closes && closes <= now ? "closed" : soldOut ? "sold_out" : "yes";
  if (!(pr.queue_rate > 0)) return;
  const t = p.ticket, line = d.querySelector(".ticket"), join = d.querySelector("button.join");
  // Sold out, a shopper without a ticket is not invited to queue for nothing.
  join.hidden = !signedIn() || (t && t.state !== "expired") || soldOut;
  join.textContent = t && t.state === "expired" ? "Join again" : "Join the queue";
  line.dataset.state = t ? t.state : soldOut ? "sold_out" : "none";
  line.dataset.number = t && t.number != null ? String(t.number) : "";
  if (!t || (soldOut && t.state === "expired")) {
    line.textContent = soldOut ? "Sold out." : signedIn() ? "Join the queue to buy." : "Sign in to join the queue.";
    return;
  }
  const serving = Math.max(t.serving || 0, p.serving || 0);
  switch (t.state) {
    case "waiting":
      if (t.number == null) { line.textContent = "You are in the queue. Places are drawn at random at the opening."; break; }
      line.textContent = `Place ${t.number} in line · ${Math.max(0, t.number - serving)} ahead of you`;
      if (t.number <= serving) refreshTicket(id);
      break;
    case "sold_out": line.textContent = `Sold out for now · place ${t.number}; you keep it in case units come back`; break;
    case "admitted": line.textContent = soldOut ? "Sold out. Your turn lasts " + clock(new Date(t.admitted_until).getTime() - now) + " in case units come back."
      : "Your turn! Reserve within " + clock(new Date(t.admitted_until).getTime() - now); break;
    case "expired": line.textContent = "Your turn has passed."; break;
  }
  if (t.state === "admitted" && new Date(t.admitted_until).getTime() <= now) refreshTicket(id);
}

// refreshTicket reads the caller's ticket (at most one request per product in flight).
async function refreshTicket(id) {
  const p = products.get(id);
  if (!p || !signedIn() || p.loading) return;
  p.loading = true;
  try {
    p.ticket = await api("GET", `/products/${id}/queue`);
    p.product.opens_at = p.ticket.opens_at; // the operator may have moved the opening
  } catch (err) {
    if (err.code === "not_found") p.ticket = null;
  } finally { p.loading = false; }
  renderDrop(id);
}

async function joinQueue(id) {
  try {
    const p = products.get(id);
    p.ticket = await api("POST", `/products/${id}/queue`);
    p.product.opens_at = p.ticket.opens_at;
    say($("msg"), "You joined the queue.", "good");
  } catch (err) { say($("msg"), explain(err), "bad"); }
  renderDrop(id);
}

function loadTickets() {
  for (const [id, p] of products) {
    p.ticket = null;
    if (draws.isDraw(p.product)) continue;
    if (p.product.queue_rate > 0 && signedIn()) refreshTicket(id); else renderDrop(id);
  }
  draws.loadEntries();
}

function renderProducts(list) {
  const root = $("products");
  root.replaceChildren();
  products.clear();
  for (const p of list) {
    const qid = "qty-" + p.id;
    p.variants = variantsOf(p);
    const draw = draws.isDraw(p);
    const node = el("article", { class: "card", "data-product": p.id, "aria-labelledby": "name-" + p.id },
      el("h3", { id: "name-" + p.id }, p.name),
      el("div", {}, money(p.price_cents, p.currency), " · max ", String(p.max_per_user), " per shopper"),
      el("div", { class: "available", "data-available": p.id, "aria-live": "polite" }),
      // A draw is entered, never reserved: no size picker, quantity or Reserve button.
      draw ? draws.card(p) : "",
      draw || !sized(p) ? "" : sizePicker(p),
      draw ? "" : el("div", { class: "row" },
        el("label", { for: qid }, "Quantity"),
        el("input", { id: qid, type: "number", min: "1", max: String(Math.min(p.max_per_user, 1000)), value: "1", inputmode: "numeric" }),
        el("button", { type: "button", class: "reserve", onclick: () => reserve(p.id, Number($(qid).value)) }, "Reserve")));
    if (!draw && (p.opens_at || p.closes_at || p.queue_rate > 0)) {
      node.append(el("div", { class: "drop", "data-drop": p.id },
        el("div", { class: "opens countdown", "aria-live": "off" }),
        p.queue_rate > 0 ? el("div", { class: "ticket", "aria-live": "polite" }) : "",
        p.queue_rate > 0 ? el("button", { type: "button", class: "join secondary", onclick: () => joinQueue(p.id) }, "Join the queue") : ""));
    }
    products.set(p.id, { product: p, version: undefined, node, ticket: null, serving: 0, entry: null, drawMsg: null });
    root.append(node);
    const keep = chosen.get(p.id) && node.querySelector(`.sizes input[value="${CSS.escape(chosen.get(p.id))}"]`);
    if (keep) keep.checked = true;
    setAvailable(p.id, p.available);
  }
  if (list.length === 0) {
    root.append(el("p", { id: "empty", class: "hint" }, "No products yet. An admin adds them on the ",
      el("a", { href: "/dashboard" }, "dashboard"), " (or with the README's curl walkthrough, PUT /admin/products/{id}); they show up here."));
  }
  subscribeAll();
}

// sizePicker is a radio group of the product's variants, each with its count (renderSizes).
function sizePicker(p) {
  return el("fieldset", { class: "sizes", "data-sizes": p.id },
    el("legend", {}, "Size"),
    ...p.variants.map((v, i) => {
      const rid = `size-${p.id}-${i}`;
      return el("span", { class: "size" },
        el("input", { type: "radio", id: rid, name: "size-" + p.id, value: v.id, "data-variant": v.id,
          onchange: () => { chosen.set(p.id, v.id); products.get(p.id).held = null; renderDrop(p.id); } }),
        el("label", { for: rid }, el("span", { class: "name" }, v.name,
          v.price_cents !== p.price_cents ? " · " + money(v.price_cents, p.currency) : ""),
          el("small", { class: "left" })));
    }));
}

async function loadProducts() {
  const res = await api("GET", "/products");
  renderProducts(res.products);
  loadTickets();
}

// Drops tick every second (countdowns); a ticket that waits is read again every 5 s, in case
// a live message was missed, and at the opening (when the numbers are drawn).
let ticks = 0;
setInterval(() => {
  ticks++;
  for (const [id, p] of products) {
    const t = p.ticket, pr = p.product;
    const opened = pr.opens_at && Math.abs(Date.now() - new Date(pr.opens_at).getTime()) < 1000;
    if (t && (opened || (ticks % 5 === 0 && (t.state === "waiting" || t.state === "sold_out")))) refreshTicket(id);
    if (!draws.isDraw(pr)) renderDrop(id);
  }
  draws.tick();
}, 1000);

// Live stock: subscribe to every product shown; re-subscribe as a heartbeat so that a room
// membership lost on the server heals, and reconnect when the socket closes. When the socket
// cannot connect (a network or proxy that blocks WebSockets, or a handshake that hangs), the
// page reads GET /products/{id} every POLL_MS instead, says so, and keeps trying the socket
// (after 1, 2, 4, 8, then every 10 s); the first socket that opens stops the polling.
const POLL_MS = 3000;
const CONNECT_TIMEOUT_MS = 5000;
const RETRY_MAX_MS = 10000;
let live = false; // the socket is open and subscribed
let failures = 0; // connection attempts in a row that never opened
let pollTimer = null;
let polling = false; // a round of reads is in flight

function showLive() {
  const n = $("live");
  const mode = live ? "socket" : failures > 0 ? "polling" : "connecting";
  n.dataset.mode = mode;
  n.textContent = mode === "socket" ? "Live stock: on"
    : mode === "polling" ? `Live stock: the live connection is blocked on this network; updating every ${POLL_MS / 1000} s instead.`
    : "Live stock: connecting…";
}

// The socket carries only public data, so it is opened without a token (a token in a URL ends
// up in logs).
function connect() {
  const url = state.config.websocket_url || ((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  const ws = new WebSocket(url);
  socket = ws;
  let opened = false;
  // A handshake a proxy swallows may hang for minutes before it fails: give up on it sooner.
  const timeout = setTimeout(() => { if (!opened) ws.close(); }, CONNECT_TIMEOUT_MS);
  ws.onopen = () => {
    opened = true;
    clearTimeout(timeout);
    live = true;
    failures = 0;
    stopPolling();
    showLive();
    subscribeAll();
  };
  ws.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch (_) { return; }
    if (m.type === "stock") setAvailable(m.product_id, m.available, m.version, m.variants);
    if (m.type === "draw") draws.message(m);
    if (m.type === "queue" && products.has(m.product_id)) {
      const p = products.get(m.product_id);
      p.serving = m.serving;
      if (p.ticket && (p.ticket.state === "sold_out") !== m.sold_out) refreshTicket(m.product_id);
      renderDrop(m.product_id);
    }
  };
  ws.onclose = () => {
    clearTimeout(timeout);
    live = false;
    if (!opened) failures++;
    // A socket that was open and dropped gets one quick try before the page falls back.
    if (failures > 0) startPolling();
    showLive();
    setTimeout(connect, failures === 0 ? 1000 : Math.min(1000 * 2 ** (failures - 1), RETRY_MAX_MS));
  };
}

function startPolling() {
  if (pollTimer) return;
  pollTimer = setInterval(pollOnce, POLL_MS);
  pollOnce();
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

// pollOnce reads every product shown once (GET /products/{id}, the cached public route). An
// answer that arrives after the socket came back is dropped: the socket's versioned value is
// newer than a possibly cached read.
async function pollOnce() {
  if (polling) return;
  polling = true;
  try {
    await Promise.all([...products.keys()].map(async (id) => {
      let pr;
      try { pr = await api("GET", "/products/" + encodeURIComponent(id)); } catch (_) { return; }
      if (live) return;
      setAvailable(id, pr.available, undefined, variantMap(pr));
      draws.polled(id, pr);
    }));
  } finally { polling = false; }
}

function subscribeAll() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  for (const id of products.keys()) socket.send(JSON.stringify({ action: "subscribe", product_id: id }));
}
setInterval(subscribeAll, 5 * 60 * 1000);

async function reserve(productID, quantity) {
  const p = products.get(productID);
  const v = sized(p.product) ? picked(p) : null;
  if (sized(p.product) && !v) { say($("msg"), "Pick a size first.", "bad"); return; }
  const body = v ? { product_id: productID, variant_id: v.id, quantity } : { product_id: productID, quantity };
  try {
    const r = await api("POST", "/reservations", body, { "Idempotency-Key": crypto.randomUUID() });
    p.held = v ? v.id : null;
    // The answer's count is the product's (all sizes); each size's count follows live.
    setAvailable(productID, r.available);
    say($("msg"), `Held ${r.quantity} × ${itemName(productID, r.variant_id || (v && v.id))}.`, "good");
    await loadCart();
  } catch (err) {
    say($("msg"), err.code === "limit_exceeded" && v ? `Limit reached: at most ${err.details.limit} per shopper, all sizes together.` : explain(err), "bad");
    if (err.code === "out_of_stock" && !v) setAvailable(productID, err.details.available);
    if (err.code === "out_of_stock" && v) { v.available = err.details.available; renderSizes(productID); renderDrop(productID); }
    if (err.code === "not_admitted") refreshTicket(productID);
  }
}

function left(at) {
  const ms = new Date(at).getTime() - Date.now();
  if (ms <= 0) return null;
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")} left`;
}

function renderCart() {
  const root = $("cart");
  root.replaceChildren();
  for (const r of cart) {
    root.append(el("li", { "data-reservation": r.id, "data-variant": r.variant_id || "" },
      el("div", {}, `${r.quantity} × ${itemName(r.product_id, r.variant_id)} `, el("span", { class: "status" }, r.status.replace("_", " ")),
        draws.holdLabel(r) ? el("small", { class: "won" }, " · " + draws.holdLabel(r)) : ""),
      el("div", { class: "countdown", "data-expires": r.expires_at }, left(r.expires_at) || ""),
      r.status === "reserved" ? el("button", { type: "button", class: "secondary", onclick: () => release(r.id) }, "Release") : ""));
  }
  if (cart.length === 0) root.append(el("li", {}, signedIn() ? "No holds yet." : "Sign in to reserve."));
  $("checkout").disabled = !cart.some((r) => r.status === "reserved");
}

async function loadCart() {
  if (!signedIn()) { cart = []; renderCart(); return; }
  try {
    cart = (await api("GET", "/reservations")).reservations;
  } catch (err) { say($("msg"), explain(err), "bad"); }
  renderCart();
  for (const [id, p] of products) if (draws.isDraw(p.product)) draws.render(id);
}

// Countdown: tick every second; a hold that runs out leaves the cart.
setInterval(() => {
  let expired = false;
  for (const n of document.querySelectorAll("[data-expires]")) {
    const t = left(n.dataset.expires);
    if (t === null) expired = true; else n.textContent = t;
  }
  if (expired) {
    cart = cart.filter((r) => r.status !== "reserved" || left(r.expires_at) !== null);
    renderCart();
    say($("msg"), "A hold expired and left your cart.", "bad");
  }
  if (order) $("order-deadline").textContent = order.status === "payment_pending" ? "Pay within " + (left(order.payment_expires_at) || "0:00") : "";
}, 1000);

async function release(id) {
  try {
    await api("DELETE", "/reservations/" + id);
    say($("msg"), "Released.", "good");
  } catch (err) { say($("msg"), explain(err), "bad"); }
  await loadCart();
}

async function checkout() {
  $("checkout").disabled = true;
  try {
    order = await api("POST", "/checkout", {}, { "Idempotency-Key": crypto.randomUUID() });
    say($("msg"), "Checked out. Pay to complete your order.", "good");
    showOrder();
    if (state.config.stripe_publishable_key && order.client_secret) await mountStripe(order.client_secret);
  } catch (err) { say($("msg"), explain(err), "bad"); }
  await loadCart();
}

function showOrder() {
  $("order").hidden = false;
  $("order-id").textContent = order.id;
  $("order-amount").textContent = money(order.amount_cents, order.currency);
  $("order-items").replaceChildren(...(order.items || []).map((i) => el("li", { "data-variant": i.variant_id || "" },
    `${i.quantity} × ${itemName(i.product_id, i.variant_id)} · ${money(i.unit_price_cents, order.currency)} each`)));
  $("order-status").textContent = order.status.replace("_", " ");
  $("order-status").dataset.status = order.status;
  $("pay-test").hidden = !(state.config.local && order.status === "payment_pending");
}

// followOrder polls the order until it ends; it stops when another order takes its place.
async function followOrder() {
  const id = order.id;
  for (let i = 0; i < 600 && order && order.id === id; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    let o;
    try { o = await api("GET", "/orders/" + id); } catch (_) { continue; }
    if (!order || order.id !== id) return;
    order = o;
    showOrder();
    if (["fulfilled", "expired", "cancelled", "refunded"].includes(order.status)) {
      say($("msg"), order.status === "fulfilled" ? "Your order is fulfilled." : "Your order is " + order.status + ".", order.status === "fulfilled" ? "good" : "bad");
      await loadCart();
      return;
    }
  }
}

async function payTest() {
  $("pay-test").disabled = true;
  try {
    await api("POST", "/_local/pay/" + order.id);
    say($("msg"), "Payment sent (test mode). Waiting for fulfillment…", "good");
    followOrder();
  } catch (err) { say($("msg"), explain(err), "bad"); }
  $("pay-test").disabled = false;
}

// Stripe.js is loaded only when a publishable key is configured: card details then go from
// the browser to Stripe, never to us.
async function mountStripe(clientSecret) {
  await new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = "https://js.stripe.com/v3/";
    s.onload = resolve; s.onerror = reject;
    document.head.append(s);
  });
  const stripe = window.Stripe(state.config.stripe_publishable_key);
  const elements = stripe.elements({ clientSecret });
  elements.create("payment").mount("#payment-element");
  $("pay-stripe").hidden = false;
  $("pay-stripe").onclick = async () => {
    const { error } = await stripe.confirmPayment({ elements, redirect: "if_required" });
    if (error) say($("msg"), error.message, "bad"); else followOrder();
  };
}

function showUser() {
  const u = user();
  $("signin").hidden = !!u;
  $("whoami").hidden = !u;
  $("who").textContent = u ? "Signed in as " + u.name : "";
  for (const p of products.values()) setAvailable(p.product.id, p.product.available);
  loadTickets();
}

// The session ended without the shopper asking (expired, refused): back to the prompt.
function sessionEnded() {
  showUser();
  say($("msg"), "Your session ended. Sign in again to reserve.", "bad");
  loadCart();
}

async function main() {
  await loadConfig();
  const problem = await initAuth(state.config.auth, KEY, sessionEnded);
  showUser();
  if (problem) say($("msg"), problem, "bad");
  $("signin-button").addEventListener("click", () => signIn().catch((err) => say($("msg"), "Could not start sign-in: " + err.message, "bad")));
  document.body.dataset.signin = "ready"; // Sign in works from now on (the browser tests wait for it)
  $("signout").addEventListener("click", signOut);
  $("checkout").addEventListener("click", checkout);
  $("pay-test").addEventListener("click", payTest);
  await loadProducts();
  await loadCart();
  connect();
}

draws.setup({ products, cart: () => cart, loadCart, explain, variantsOf, sized, itemName, clock });
main().catch((err) => say($("msg"), "Could not load the store: " + err.message, "bad"));
