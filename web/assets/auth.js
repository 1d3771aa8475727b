// auth.js: signing in with the OAuth 2.0 authorization code flow and PKCE (S256): against
// Cognito's managed login in AWS and against the local runner's OpenID provider, with the same
// code. config.json's `auth` (storefront) or `admin_auth` (dashboard) names the provider's
// authorize, token and logout URLs (relative ones are on the pages' origin), the app client and
// the redirect and sign-out URIs. Tokens live in sessionStorage (this tab only); the access
// token is refreshed a minute before it expires, and when that fails the page shows its
// sign-in prompt again.

let cfg = null;
let key = "";
let changed = () => {};
let refreshing = null;

const EARLY_MS = 60 * 1000; // refresh this long before the access token expires

// What a failed sign-in says: a fixed message per OAuth 2.0 error code, never the words of the
// address bar (anyone can link to the page with an error_description of their own).
const SIGN_IN_ERRORS = {
  access_denied: "Sign-in cancelled.",
  invalid_request: "Sign-in failed: the sign-in request was refused. Sign in again.",
  unauthorized_client: "Sign-in failed: this page may not sign in there.",
  unsupported_response_type: "Sign-in failed: the sign-in request was refused. Sign in again.",
  invalid_scope: "Sign-in failed: the sign-in request was refused. Sign in again.",
  server_error: "Sign-in failed: the sign-in service had a problem. Try again.",
  temporarily_unavailable: "Sign-in failed: the sign-in service is busy. Try again in a moment.",
};

function abs(u) { return new URL(u, location.origin).href; }

function b64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(n) {
  const a = new Uint8Array(n);
  crypto.getRandomValues(a);
  return b64url(a);
}

// claims reads a JWT's payload without checking it: for display only (the API checks tokens).
function claims(jwt) {
  try {
    const p = atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(p, (c) => c.charCodeAt(0))));
  } catch (_) { return {}; }
}

function session() {
  try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch (_) { return null; }
}

function forget() {
  sessionStorage.removeItem(key);
}

// user is who is signed in ({name, groups}), or null.
export function user() {
  const s = session();
  return s && s.access_token ? { name: s.user, groups: s.groups || [] } : null;
}

export function signedIn() { return user() !== null; }

// initAuth sets the page's provider and storage key, finishes a sign-in the provider just
// redirected back from (?code=…&state=…), and returns "" or what went wrong. onChange is
// called with user() whenever it changes later (refresh failed, sign-out).
export async function initAuth(authConfig, storageKey, onChange) {
  cfg = authConfig;
  key = storageKey;
  changed = onChange || changed;
  if (!cfg || !cfg.authorize_url) return "Sign-in is not configured (config.json has no auth).";
  const q = new URLSearchParams(location.search);
  if (!q.has("code") && !q.has("error")) return "";
  let pending = null;
  try { pending = JSON.parse(sessionStorage.getItem(key + ".pending") || "null"); } catch (_) { /* none */ }
  sessionStorage.removeItem(key + ".pending");
  history.replaceState(null, "", location.pathname); // the code is single use: off the address bar
  if (q.has("error")) return SIGN_IN_ERRORS[q.get("error")] || "Sign-in failed. Sign in again.";
  if (!pending || pending.state !== q.get("state")) return "Sign-in failed: the answer does not match this tab's request. Sign in again.";
  try {
    await tokenRequest({ grant_type: "authorization_code", code: q.get("code"), redirect_uri: abs(cfg.redirect_uri), code_verifier: pending.verifier });
  } catch (err) { return "Sign-in failed: " + err.message; }
  return "";
}

async function tokenRequest(params) {
  const body = new URLSearchParams(Object.assign({ client_id: cfg.client_id }, params));
  const r = await fetch(abs(cfg.token_url), { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body });
  let data = {};
  try { data = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok || !data.access_token) throw new Error(data.error_description || data.error || ("HTTP " + r.status));
  const id = claims(data.id_token || "");
  const access = claims(data.access_token);
  const prev = session() || {};
  sessionStorage.setItem(key, JSON.stringify({
    access_token: data.access_token,
    id_token: data.id_token || "",
    // Cognito does not send a new refresh token on refresh: keep the one we have.
    refresh_token: data.refresh_token || prev.refresh_token || "",
    expires_at: Date.now() + (Number(data.expires_in) || 3600) * 1000,
    user: id.email || id["cognito:username"] || access.username || access.sub,
    groups: access["cognito:groups"] || id["cognito:groups"] || [],
  }));
}

// signIn sends the browser to the provider's sign-in page; it comes back to the page with a
// code, which initAuth exchanges.
export async function signIn() {
  if (!crypto.subtle) throw new Error("signing in needs a secure page: open it at localhost, 127.0.0.1 or over HTTPS");
  const verifier = random(32);
  const st = random(16);
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(key + ".pending", JSON.stringify({ state: st, verifier }));
  const u = new URL(abs(cfg.authorize_url));
  u.search = new URLSearchParams({
    response_type: "code", client_id: cfg.client_id, redirect_uri: abs(cfg.redirect_uri),
    scope: cfg.scope || "openid", state: st, code_challenge: challenge, code_challenge_method: "S256",
  }).toString();
  location.assign(u.href);
}

// revokeURL is the provider's revocation endpoint: /oauth2/revoke beside its token URL, where
// Cognito and the runner's provider have it.
function revokeURL() {
  return abs(cfg.token_url.replace(/\/oauth2\/token$/, "/oauth2/revoke"));
}

// signOut forgets the tokens, revokes the refresh token (so that a copy of it is worth nothing:
// Cognito's /oauth2/revoke, the runner's provider forgets it), and lets the provider end its
// session (Cognito's managed login keeps one), which comes back to the page. The access token
// stays valid until it expires (API Gateway's authorizer checks signatures, not revocations).
export async function signOut() {
  const s = session();
  forget();
  if (s && s.refresh_token) {
    const revoke = fetch(revokeURL(), {
      method: "POST", keepalive: true,
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: s.refresh_token, client_id: cfg.client_id }),
    }).catch(() => { /* signed out here all the same */ });
    await Promise.race([revoke, new Promise((done) => setTimeout(done, 3000))]);
  }
  const u = new URL(abs(cfg.logout_url));
  u.search = new URLSearchParams({ client_id: cfg.client_id, logout_uri: abs(cfg.logout_uri) }).toString();
  location.assign(u.href);
}

// signedOut forgets the tokens without leaving the page (expired, refused) and tells the page.
export function signedOut() {
  if (!session()) return;
  forget();
  changed(null);
}

// accessToken is the access token to send, refreshed when it is about to expire; "" when
// signed out (after telling the page when the session just ended).
export async function accessToken() {
  const s = session();
  if (!s || !s.access_token) return "";
  if (Date.now() < s.expires_at - EARLY_MS) return s.access_token;
  if (!s.refresh_token) { signedOut(); return ""; }
  if (!refreshing) {
    refreshing = tokenRequest({ grant_type: "refresh_token", refresh_token: s.refresh_token })
      .then(() => true, () => false)
      .finally(() => { refreshing = null; });
  }
  if (!(await refreshing)) { signedOut(); return ""; }
  return session().access_token;
}

// Refresh in the background too, so a page left open stays signed in (or says it is not).
setInterval(() => { if (session()) accessToken(); }, 30 * 1000);
