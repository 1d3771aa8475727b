// dashboard-draws.js: the dashboard's part for draws (API.md, "Draws"), kept apart from the
// rest of the dashboard. The form's allocation and draw time (a draw's entry period is the
// form's Opens at / Closes at; its queue rate is 0), a row under each draw's product with the
// entries in each state now (AdminProduct.draw), the draw time, the commitment, a link to the
// public record, and the beacon between the close and the draw.
import { api, el, state } from "./api.js";

const $ = (id) => document.getElementById(id);

// localInput turns RFC 3339 into a datetime-local value (the admin's local time), null into "".
function localInput(t) {
  if (!t) return "";
  const d = new Date(t);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
}

// setupForm wires the form's draw fields: choosing "draw" enables Draw at and sets the queue
// rate to 0 (API.md refuses a draw with a waiting room).
export function setupForm() {
  $("p-alloc").addEventListener("change", allocationChanged);
  allocationChanged();
}

function allocationChanged() {
  const draw = $("p-alloc").value === "draw";
  $("p-draw-at").disabled = !draw;
  $("p-draw-at").required = draw;
  $("p-opens").required = draw;
  $("p-closes").required = draw;
  if (draw) $("p-rate").value = "0";
  $("p-rate").disabled = draw;
}

// formBody adds the draw fields to the PUT body the form sends.
export function formBody(body) {
  body.allocation = $("p-alloc").value;
  if (body.allocation === "draw") {
    body.draw_at = $("p-draw-at").value ? new Date($("p-draw-at").value).toISOString() : null;
    body.queue_rate = 0;
  }
  return body;
}

// edit loads a product's draw fields into the form.
export function edit(p) {
  $("p-alloc").value = p.allocation === "draw" ? "draw" : "first_come";
  $("p-draw-at").value = localInput(p.draw_at);
  allocationChanged();
}

// rows is the row under a draw's product in the products table (none for first come).
// act(what, fn) runs an admin action and refreshes the table, as the dashboard's other tools.
export function rows(p, act) {
  if (p.allocation !== "draw") return [];
  const now = Date.now();
  const d = p.draw || {};
  const count = (k, label) => el("span", { "data-count": k }, `${label} ${d[k] != null ? d[k] : 0}`);
  const closes = p.closes_at ? new Date(p.closes_at).getTime() : 0;
  const drawAt = p.draw_at ? new Date(p.draw_at).getTime() : 0;
  const stage = p.draw_seed ? "drawn" : drawAt && now >= drawAt ? "drawing" : closes && now >= closes ? "entries closed" : "entries open or upcoming";
  const bid = "beacon-" + p.id;
  // The beacon is taken once, between the close and the draw (the API says when it is not).
  const beacon = closes && now >= closes && !p.draw_seed && (!drawAt || now < drawAt)
    ? el("span", { class: "row" },
      el("label", { for: bid, class: "visually-hidden" }, "Beacon for " + p.id),
      el("input", { id: bid, maxlength: "256", placeholder: "beacon (e.g. drand round)" }),
      el("button", { type: "button", class: "small", "data-beacon": p.id,
        onclick: () => act(`Beacon set for ${p.id}.`, () => api("POST", `/admin/products/${p.id}/draw-beacon`, { beacon: $(bid).value })) }, "Set beacon"))
    : "";
  return [el("tr", { class: "draw-row", "data-draw": p.id },
    el("th", { scope: "row" }, el("span", { class: "visually-hidden" }, p.name + ", "), "Draw"),
    el("td", { colspan: "7" },
      el("p", { class: "counts", "data-draw-counts": p.id },
        count("entries", "entries"), " · ", count("won", "won"), " · ", count("waitlisted", "waitlisted"), " · ",
        count("expired", "expired"), " · ", count("lost", "lost"), " · ", count("paid", "paid")),
      el("p", { class: "hint" },
        el("span", { "data-col": "draw-stage" }, stage),
        p.draw_at ? " · draw at " + new Date(p.draw_at).toLocaleString() : "",
        p.draw_commitment ? el("span", { title: p.draw_commitment }, " · commitment " + p.draw_commitment.slice(0, 12) + "…") : "",
        " · ", el("a", { href: state.config.api_base + "/products/" + encodeURIComponent(p.id) + "/draw", "data-record": p.id }, "public record")),
      beacon))];
}
