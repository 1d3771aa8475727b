// api.js: the shared client for the storefront and the dashboard.
export const state = { config: { local: false, api_base: "", websocket_url: "", stripe_publishable_key: "" }, token: "" };

export async function loadConfig() {
  try {
    const r = await fetch("/config.json");
    if (r.ok) state.config = Object.assign(state.config, await r.json());
  } catch (_) { /* defaults */ }
  return state.config;
}

// ApiError carries API.md's error shape.
export class ApiError extends Error {
  constructor(status, err) {
    super((err && err.message) || ("HTTP " + status));
    this.status = status;
    this.code = err && err.code;
    this.details = (err && err.details) || {};
  }
}

export async function api(method, path, body, headers) {
  const h = Object.assign({}, headers || {});
  if (state.token) h["Authorization"] = "Bearer " + state.token;
  if (body !== undefined) h["Content-Type"] = "application/json";
  const r = await fetch(state.config.api_base + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!r.ok) throw new ApiError(r.status, data && data.error);
  return data;
}

// signIn mints a dev token from the local runner (local mode only).
export async function signIn(sub, admin, storageKey) {
  const body = { sub, ttl: "8h" };
  if (admin) body.groups = ["admin"];
  const res = await api("POST", "/_local/token", body);
  state.token = res.token;
  sessionStorage.setItem(storageKey, JSON.stringify({ sub, token: res.token }));
  return res.token;
}

export function restore(storageKey) {
  try {
    const s = JSON.parse(sessionStorage.getItem(storageKey) || "null");
    if (s && s.token) { state.token = s.token; return s.sub; }
  } catch (_) { /* none */ }
  return "";
}

export function money(cents, currency) {
  return new Intl.NumberFormat(undefined, { style: "currency", currency: (currency || "usd").toUpperCase() }).format(cents / 100);
}

export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) e.append(c === null || c === undefined ? "" : c);
  return e;
}

export function say(node, text, kind) {
  node.textContent = text;
  node.className = "msg" + (kind ? " " + kind : "");
}
