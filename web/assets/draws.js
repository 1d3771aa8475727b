// draws.js: the storefront's part for products sold by draw (API.md, "Draws"). A draw's card
// has no Reserve button: the shopper enters with sizes in order of preference and a quantity,
// may replace or withdraw the entry until the entries close, and sees the countdowns to the
// close and to the draw, then the result (won with the offer's timer, waitlisted with the rank,
// expired, lost). A won offer is a hold like any other: it is in the cart and is checked out
// and paid there. Live: the room's "draw" messages (the counts) make the page read the
// shopper's entry again; while the socket is down the page's polling does (store.js).
import { api, ApiError, el, money, say, state } from "./api.js";
import { signedIn } from "./auth.js";

const $ = (id) => document.getElementById(id);
const MAX_PREFS = 5; // API.md: 1..5 variants in order of preference
const SPREAD_MS = 2000; // reads after a draw message are spread over this long
const AFTER_OFFER_MS = 3000; // how often a winner whose offer ran out reads the entry again
// A won entry whose offer ran out unpaid becomes "expired" within one expiry sweep (at most a
// minute); one still "won" well after that was checked out in time.
const GRACE_MS = 2 * 60 * 1000;

let hooks = null; // from store.js: {products, cart, loadCart, explain, variantsOf, sized, itemName, clock}

// setup wires this module to the storefront's state (store.js calls it once).
export function setup(h) { hooks = h; }

// isDraw: the product is sold by draw, never first come.
export function isDraw(pr) { return pr && pr.allocation === "draw"; }

// setText changes a node's text only when it differs (a live region re-announces a rewrite).
function setText(node, text) { if (node.textContent !== text) node.textContent = text; }

const at = (t) => (t ? new Date(t).getTime() : 0);
const ordinal = (n) => n + (n === 1 ? "st" : n === 2 ? "nd" : n === 3 ? "rd" : "th");

// phase is where the draw stands: upcoming (entries not open yet), open, closed (waiting for
// the draw), drawing (draw_at passed, not drawn yet) or drawn.
function phase(p, now) {
  const pr = p.product;
  if (pr.draw_seed || (p.drawMsg && p.drawMsg.state === "drawn") || (p.entry && p.entry.state !== "entered")) return "drawn";
  if (pr.opens_at && now < at(pr.opens_at)) return "upcoming";
  if (pr.closes_at && now < at(pr.closes_at)) return "open";
  if (pr.draw_at && now < at(pr.draw_at)) return "closed";
  return "drawing";
}

// card is the draw's part of a product card: the phase line, the entry form, the entry's
// state, the live counts and the public record.
export function card(pr) {
  const id = pr.id;
  const vs = hooks.variantsOf(pr);
  const sized = hooks.sized(pr);
  const prefs = sized ? Math.min(MAX_PREFS, vs.length) : 0;
  const select = (i) => {
    const sid = `pref-${id}-${i}`;
    return el("p", { class: "pref" },
      el("label", { for: sid }, `${ordinal(i + 1)} choice`),
      el("select", { id: sid, "data-pref": String(i) },
        el("option", { value: "" }, i === 0 ? "Pick a size" : "—"),
        ...vs.map((v) => el("option", { value: v.id }, v.name + (v.price_cents !== pr.price_cents ? " · " + money(v.price_cents, pr.currency) : "")))));
  };
  const qid = `entry-qty-${id}`;
  const form = el("form", { class: "enter", "data-enter": id, onsubmit: (e) => { e.preventDefault(); enter(id); } },
    sized ? el("fieldset", { class: "prefs" }, el("legend", {}, "Sizes, in order of preference"), ...Array.from({ length: prefs }, (_, i) => select(i))) : "",
    el("p", { class: "row" },
      el("label", { for: qid }, "Quantity"),
      el("input", { id: qid, type: "number", min: "1", max: String(Math.min(pr.max_per_user || 1, 1000)), value: "1", inputmode: "numeric" }),
      el("button", { type: "submit", class: "enter" }, "Enter the draw"),
      el("button", { type: "button", class: "withdraw secondary", hidden: true, onclick: () => withdraw(id) }, "Withdraw")));
  return el("div", { class: "draw", "data-draw": id },
    el("div", { class: "phase countdown", "aria-live": "off" }),
    form,
    el("div", { class: "entry", "aria-live": "polite" }),
    el("div", { class: "offer countdown", "aria-live": "off", hidden: true }),
    el("div", { class: "counts hint" }),
    el("div", { class: "proof hint" }));
}

// render draws a draw card from what the page knows: the product, the caller's entry, the
// last draw message and the cart (a won offer's hold).
export function render(id) {
  const p = hooks.products.get(id);
  if (!p || !isDraw(p.product)) return;
  const pr = p.product, now = Date.now(), ph = phase(p, now), e = p.entry;
  const d = p.node.querySelector(".draw");
  d.dataset.phase = ph;
  const line = d.querySelector(".phase");
  const drawIn = pr.draw_at ? " · draw in " + hooks.clock(at(pr.draw_at) - now) : "";
  setText(line, ph === "upcoming" ? "Entries open in " + hooks.clock(at(pr.opens_at) - now)
    : ph === "open" ? "Entries close in " + hooks.clock(at(pr.closes_at) - now) + drawIn
    : ph === "closed" ? "Entries closed" + drawIn
    : ph === "drawing" ? "Entries closed · drawing now…"
    : "Drawn" + (pr.draw_at ? " at " + new Date(pr.draw_at).toLocaleTimeString() : ""));
  // The count line: units in the draw before it, the counts from the live messages after it.
  const n = p.node.querySelector(".available");
  setText(n, ph === "drawn" ? "Draw results" : `${pr.available} in the draw`);
  n.classList.toggle("zero", false);
  const counts = d.querySelector(".counts");
  const m = p.drawMsg;
  setText(counts, m ? `${m.won} won · ${m.waitlisted} on the waitlist` : "");

  // The form: only while entries are open, for a signed-in shopper.
  const form = d.querySelector("form.enter");
  form.hidden = ph !== "open" || !signedIn();
  form.querySelector("button.enter").textContent = e && e.state === "entered" ? "Update entry" : "Enter the draw";
  form.querySelector("button.withdraw").hidden = !(e && e.state === "entered");

  const line2 = d.querySelector(".entry");
  line2.dataset.state = e ? e.state : "none";
  line2.dataset.rank = e && e.rank != null ? String(e.rank) : "";
  // The state's words are a live region; the offer's timer beside it is not (it would be read
  // out every second).
  const [words, timer] = entryText(p, ph, now);
  setText(line2, words);
  const offer = d.querySelector(".offer");
  setText(offer, timer || "");
  offer.hidden = !timer;

  const proof = d.querySelector(".proof");
  const link = el("a", { href: state.config.api_base + "/products/" + encodeURIComponent(id) + "/draw", "data-record": id }, "public record");
  proof.replaceChildren(pr.draw_commitment ? `Commitment ${pr.draw_commitment.slice(0, 12)}… · ` : "", link,
    pr.draw_seed ? " (seed shown: anyone can check the ranks)" : "");
}

// entryText says where the caller's entry stands: [words, the offer's timer or undefined].
function entryText(p, ph, now) {
  const e = p.entry, pr = p.product;
  if (!signedIn()) return [ph === "open" || ph === "upcoming" ? "Sign in to enter the draw." : ""];
  if (!e) {
    if (ph === "upcoming") return ["Entries open at " + new Date(pr.opens_at).toLocaleString() + "."];
    if (ph === "open") return [hooks.sized(pr) ? "Not entered. Name up to five sizes, best first: you are offered the first one with a unit left for you." : "Not entered."];
    return ["You did not enter this draw."];
  }
  // A one-variant product's entry names its one variant ("default"): nothing to list.
  const sizes = hooks.sized(pr) ? (e.variant_ids || []).map((v) => sizeName(pr, v)) : [];
  const what = (sizes.length ? sizes.join(", then ") + " · " : "") + "quantity " + e.quantity;
  const rank = e.rank != null ? ` (rank ${e.rank})` : "";
  switch (e.state) {
    case "entered":
      return ["You are in the draw: " + what + ". " +
        (ph === "open" ? "You can change or withdraw your entry until the entries close." : "The result comes at the draw; speed made no difference.")];
    case "won": {
      const hold = hooks.cart().find((r) => r.id === e.reservation_id);
      if (hold && hold.status === "checked_out") p.checkedOut = e.reservation_id;
      const size = " " + hooks.itemName(pr.id, e.variant_id);
      const head = `You won${rank}!`;
      if (hold && hold.status === "checked_out") return [head + ` Your${size} is checked out: pay for your order to keep it.`];
      const left = at(e.offer_expires_at) - now;
      if (p.checkedOut === e.reservation_id) return [head + ` You got your${size}: see your order.`];
      if (left > 0) return [head + ` Your${size} is held for you: check out before the offer runs out.`, "Check out within " + hooks.clock(left)];
      if (-left < GRACE_MS) return [head + " But the time to check out is up: the offer goes to the next in line."];
      return [head + ` You got your${size}.`];
    }
    case "waitlisted":
      return [`On the waitlist${rank}. If a winner's offer runs out and a unit in your sizes comes back, it goes to the best-ranked entry it fits: you could be next.`];
    case "expired":
      return [`Your offer ran out${rank} before checkout; it passed to the waitlist.`];
    case "lost":
      return [`Not this time${rank}: every size you named is sold.`];
  }
  return [""];
}

function sizeName(pr, vid) {
  const v = hooks.variantsOf(pr).find((x) => x.id === vid);
  return v ? v.name : vid;
}

// fill puts the caller's entry into the form (its sizes in order, its quantity).
function fill(id) {
  const p = hooks.products.get(id);
  if (!p || !p.entry) return;
  const sel = [...p.node.querySelectorAll("select[data-pref]")];
  sel.forEach((s, i) => { s.value = p.entry.variant_ids && p.entry.variant_ids[i] ? p.entry.variant_ids[i] : ""; });
  const q = $(`entry-qty-${id}`);
  if (q) q.value = String(p.entry.quantity || 1);
}

// refreshEntry reads the caller's entry (at most one read per product in flight).
export async function refreshEntry(id) {
  const p = hooks.products.get(id);
  if (!p || !isDraw(p.product) || !signedIn() || p.entryLoading) return;
  p.entryLoading = true;
  const before = p.entry ? p.entry.state + ":" + p.entry.reservation_id : "";
  try {
    p.entry = await api("GET", `/products/${encodeURIComponent(id)}/entry`);
  } catch (err) {
    if (err instanceof ApiError && err.code === "not_found") p.entry = null;
  } finally { p.entryLoading = false; }
  const after = p.entry ? p.entry.state + ":" + p.entry.reservation_id : "";
  if (before === "" && p.entry) fill(id);
  // An offer made or ended: the cart changes with it.
  if (before !== after && (before.startsWith("won") || after.startsWith("won"))) await hooks.loadCart();
  render(id);
}

// loadEntries reads every shown draw's entry (after the products are drawn, or a sign-in).
export function loadEntries() {
  for (const [id, p] of hooks.products) {
    if (!isDraw(p.product)) continue;
    p.entry = null;
    if (signedIn()) refreshEntry(id); else render(id);
  }
}

async function enter(id) {
  const p = hooks.products.get(id);
  const body = { quantity: Number($(`entry-qty-${id}`).value) || 1 };
  if (hooks.sized(p.product)) {
    const ids = [...p.node.querySelectorAll("select[data-pref]")].map((s) => s.value).filter((v) => v !== "");
    if (ids.length === 0) { say($("msg"), "Pick at least one size.", "bad"); return; }
    if (new Set(ids).size !== ids.length) { say($("msg"), "Name each size once.", "bad"); return; }
    body.variant_ids = ids;
  }
  const had = p.entry && p.entry.state === "entered";
  try {
    p.entry = await api("POST", `/products/${encodeURIComponent(id)}/entry`, body);
    say($("msg"), had ? `Entry updated for ${p.product.name}.` : `You entered the draw for ${p.product.name}.`, "good");
    fill(id);
  } catch (err) { say($("msg"), explainEntry(err), "bad"); }
  render(id);
}

async function withdraw(id) {
  const p = hooks.products.get(id);
  try {
    await api("DELETE", `/products/${encodeURIComponent(id)}/entry`);
    p.entry = null;
    say($("msg"), `You withdrew from the draw for ${p.product.name}.`, "good");
  } catch (err) { say($("msg"), explainEntry(err), "bad"); refreshEntry(id); }
  render(id);
}

function explainEntry(err) {
  if (err instanceof ApiError) {
    if (err.code === "not_open") return err.details.opens_at ? "Entries open at " + new Date(err.details.opens_at).toLocaleString() + "." : "The entries have closed.";
    if (err.code === "invalid_state") return "The entries have closed: your entry can no longer change.";
    if (err.code === "not_found") return "That size is not sold here any more. Reload the page.";
  }
  return hooks.explain(err);
}

// message takes the room's "draw" message: the counts, and a nudge to read the entry again.
// Every subscriber gets it at once, so the reads are spread over SPREAD_MS.
export function message(m) {
  const p = hooks.products.get(m.product_id);
  if (!p || !isDraw(p.product)) return;
  p.drawMsg = m;
  render(m.product_id);
  if (!signedIn()) return;
  const e = p.entry;
  if (e && (e.state === "entered" || e.state === "waitlisted" || e.state === "won")) {
    setTimeout(() => refreshEntry(m.product_id), Math.random() * SPREAD_MS);
  }
}

// polled takes a product read by the polling fallback (the socket is down): its draw fields,
// and the entry read again while its outcome can still change.
export function polled(id, pr) {
  const p = hooks.products.get(id);
  if (!p || !isDraw(p.product)) return;
  for (const k of ["opens_at", "closes_at", "draw_at", "draw_commitment", "draw_entries_digest", "draw_seed"]) p.product[k] = pr[k];
  const e = p.entry;
  if (signedIn() && e && (e.state === "waitlisted" || e.state === "won" || (e.state === "entered" && pr.draw_seed))) refreshEntry(id);
  render(id);
}

// tick runs every second: the countdowns, and the reads a clock calls for (at the draw, and
// when a won offer runs out, until the sweep has ended it).
export function tick() {
  const now = Date.now();
  for (const [id, p] of hooks.products) {
    if (!isDraw(p.product)) continue;
    const e = p.entry, pr = p.product;
    if (e && e.state === "entered" && pr.draw_at && Math.abs(now - at(pr.draw_at)) < 1000) refreshEntry(id);
    const since = e && e.state === "won" && e.offer_expires_at ? now - at(e.offer_expires_at) : -1;
    if (since > 0 && since < GRACE_MS && p.checkedOut !== e.reservation_id && (!p.lastOfferRead || now - p.lastOfferRead >= AFTER_OFFER_MS)) {
      p.lastOfferRead = now;
      refreshEntry(id);
    }
    render(id);
  }
}

// holdLabel marks a cart line that is a won draw's offer.
export function holdLabel(r) {
  for (const p of hooks.products.values()) {
    if (p.entry && p.entry.state === "won" && p.entry.reservation_id === r.id) return "won in the draw";
  }
  return "";
}
