// store.js: the storefront. Products with live stock over the WebSocket, holds with a
// countdown, checkout, and payment (Stripe's Payment Element, or "Pay (test)" locally).
import { api, ApiError, el, loadConfig, money, say, state } from "./api.js";
import { accessToken, initAuth, signIn, signOut, signedIn, user } from "./auth.js";

const KEY = "lastunit.shopper";
const $ = (id) => document.getElementById(id);
const products = new Map(); // id → {product, version, node}
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
    default: return err.message;
  }
}

function setAvailable(id, available, version) {
  const p = products.get(id);
  if (!p) return;
  if (version !== undefined) {
    if (p.version !== undefined && version <= p.version) return; // stale or repeated
    p.version = version;
  }
  p.product.available = available;
  const n = p.node.querySelector(".available");
  n.textContent = available > 0 ? `${available} available` : "Sold out";
  n.classList.toggle("zero", available <= 0);
  p.node.querySelector("button").disabled = available <= 0 || !signedIn();
}

function renderProducts(list) {
  const root = $("products");
  root.replaceChildren();
  products.clear();
  for (const p of list) {
    const qid = "qty-" + p.id;
    const node = el("article", { class: "card", "data-product": p.id, "aria-labelledby": "name-" + p.id },
      el("h3", { id: "name-" + p.id }, p.name),
      el("div", {}, money(p.price_cents, p.currency), " · max ", String(p.max_per_user), " per shopper"),
      el("div", { class: "available", "data-available": p.id, "aria-live": "polite" }),
      el("div", { class: "row" },
        el("label", { for: qid }, "Quantity"),
        el("input", { id: qid, type: "number", min: "1", max: String(Math.min(p.max_per_user, 1000)), value: "1", inputmode: "numeric" }),
        el("button", { type: "button", onclick: () => reserve(p.id, Number($(qid).value)) }, "Reserve")));
    products.set(p.id, { product: p, version: undefined, node });
    root.append(node);
    setAvailable(p.id, p.available);
  }
  if (list.length === 0) {
    root.append(el("p", { id: "empty", class: "hint" }, "No products yet. An admin adds them on the ",
      el("a", { href: "/dashboard" }, "dashboard"), " (or with the README's curl walkthrough, PUT /admin/products/{id}); they show up here."));
  }
  subscribeAll();
}

async function loadProducts() {
  const res = await api("GET", "/products");
  renderProducts(res.products);
}

// Live stock: subscribe to every product shown; re-subscribe as a heartbeat so that a room
// membership lost on the server heals, and reconnect when the socket closes.
async function connect() {
  const url = state.config.websocket_url || ((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  const token = await accessToken();
  socket = new WebSocket(token ? url + "?token=" + encodeURIComponent(token) : url);
  socket.onopen = () => { $("live").textContent = "Live stock: on"; subscribeAll(); };
  socket.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch (_) { return; }
    if (m.type === "stock") setAvailable(m.product_id, m.available, m.version);
  };
  socket.onclose = () => { $("live").textContent = "Live stock: reconnecting…"; setTimeout(connect, 1000); };
}

function subscribeAll() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  for (const id of products.keys()) socket.send(JSON.stringify({ action: "subscribe", product_id: id }));
}
setInterval(subscribeAll, 5 * 60 * 1000);

async function reserve(productID, quantity) {
  try {
    const r = await api("POST", "/reservations", { product_id: productID, quantity }, { "Idempotency-Key": crypto.randomUUID() });
    setAvailable(productID, r.available);
    say($("msg"), `Held ${r.quantity} × ${products.get(productID).product.name}.`, "good");
    await loadCart();
  } catch (err) {
    say($("msg"), explain(err), "bad");
    if (err.code === "out_of_stock") setAvailable(productID, err.details.available);
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
    const p = products.get(r.product_id);
    const name = p ? p.product.name : r.product_id;
    root.append(el("li", { "data-reservation": r.id },
      el("div", {}, `${r.quantity} × ${name} `, el("span", { class: "status" }, r.status.replace("_", " "))),
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
}

// The session ended without the shopper asking (expired, refused): back to the prompt.
function sessionEnded() {
  showUser();
  say($("msg"), "Your session ended. Sign in again to reserve.", "bad");
  loadCart();
  if (socket) socket.close(); // reconnects as a viewer
}

async function main() {
  await loadConfig();
  const problem = await initAuth(state.config.auth, KEY, sessionEnded);
  showUser();
  if (problem) say($("msg"), problem, "bad");
  $("signin-button").addEventListener("click", () => signIn().catch((err) => say($("msg"), "Could not start sign-in: " + err.message, "bad")));
  $("signout").addEventListener("click", signOut);
  $("checkout").addEventListener("click", checkout);
  $("pay-test").addEventListener("click", payTest);
  await loadProducts();
  await loadCart();
  connect();
}

main().catch((err) => say($("msg"), "Could not load the store: " + err.message, "bad"));
