// api.js: the shared client for the storefront and the dashboard.
import { accessToken, signedIn, signedOut } from "./auth.js";

export const state = { config: { local: false, api_base: "", websocket_url: "", stripe_publishable_key: "", auth: null, admin_auth: null } };

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
  const had = signedIn();
  const token = await accessToken();
  // The session ended just now (the refresh was refused): say so rather than call anonymously.
  if (had && !token) throw new ApiError(401, { code: "session_ended", message: "Your session ended. Sign in again." });
  if (token) h["Authorization"] = "Bearer " + token;
  if (body !== undefined) h["Content-Type"] = "application/json";
  const r = await fetch(state.config.api_base + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (r.status === 401 && token) signedOut(); // expired or revoked: the page asks to sign in again
  if (!r.ok) throw new ApiError(r.status, data && data.error);
  return data;
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
