package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"lastunit/shared/testenv"
)

// watchSockets records, in every page the tab loads, the URL of every WebSocket the page
// opens (window.__ws); DevTools' own script runs before the page's and is not subject to its
// Content-Security-Policy.
func watchSockets() chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(`window.__ws = [];
window.WebSocket = class extends window.WebSocket {
  constructor(u, p) { super(u, p); window.__ws.push(String(u)); }
};`).Do(ctx)
		return err
	})
}

// TestSignInSessionInABrowser: what the storefront does with a session in real Chromium.
//   - A failed sign-in shows a fixed message for its error code, never the error_description
//     from the address bar (anyone can link to the page with words of their own).
//   - The live-stock socket carries only public data and is opened without a token, signed in
//     or not.
//   - Signing out revokes the refresh token: a copy of it no longer gets tokens.
func TestSignInSessionInABrowser(t *testing.T) {
	env := testenv.NewEnv(t).WithPayments(t)
	srv := startFullServer(t, env)
	call(t, srv, "PUT", "/admin/products/cap", bearer(t, "ada", "admin"), `{"name":"Cap","price_cents":900,"currency":"usd","stock":9,"max_per_user":9}`)
	b := browser(t)
	do(t, b, "watch sockets and the policy", watchSockets(), watchCSP())

	const words = "Your account is locked: call 555-0100 now"
	for _, tc := range []struct{ code, want string }{
		{"invalid_request", "the sign-in request was refused"},
		{"server_error", "the sign-in service had a problem"},
		{"made_up_code", "Sign-in failed. Sign in again."},
		{"access_denied", "Sign-in cancelled."},
	} {
		do(t, b, "failed sign-in "+tc.code, chromedp.Navigate(srv.URL+"/?"+url.Values{"error": {tc.code}, "error_description": {words}, "state": {"x"}}.Encode()))
		waitText(t, b, "#msg", tc.want, 5*time.Second)
		var body string
		do(t, b, "read the page", chromedp.Evaluate(`document.body.innerText`, &body))
		if strings.Contains(body, "555-0100") || strings.Contains(body, "locked") {
			t.Fatalf("error %s: the page shows the error_description's words:\n%s", tc.code, body)
		}
	}

	signInAs(t, b, srv.URL+"/", "alice", false)
	waitText(t, b, "#live", "Live stock: on", 10*time.Second)
	var session struct {
		Access  string `json:"access_token"`
		Refresh string `json:"refresh_token"`
	}
	var sockets []string
	do(t, b, "read the session and the sockets",
		chromedp.Evaluate(`JSON.parse(sessionStorage.getItem("lastunit.shopper"))`, &session),
		chromedp.Evaluate(`window.__ws || ["the watcher is missing"]`, &sockets))
	if session.Access == "" || session.Refresh == "" {
		t.Fatalf("signed in without tokens: %+v", session)
	}
	if len(sockets) == 0 {
		t.Fatal("the storefront opened no WebSocket")
	}
	for _, u := range sockets {
		if strings.Contains(u, "token") || strings.Contains(u, session.Access) || strings.Contains(u, "?") {
			t.Fatalf("the storefront's WebSocket URL carries the token: %s", u)
		}
	}
	// The refresh token works until the shopper signs out.
	if r := postToken(t, srv, url.Values{"grant_type": {"refresh_token"}, "client_id": {StoreClientID}, "refresh_token": {session.Refresh}}); r.status != 200 {
		t.Fatalf("refresh before signing out: %d %s", r.status, r.Error)
	}
	do(t, b, "sign out", chromedp.Click("#signout", chromedp.ByQuery), chromedp.WaitVisible("#signin-button", chromedp.ByQuery))
	var left string
	do(t, b, "the tab forgot the session", chromedp.Evaluate(`sessionStorage.getItem("lastunit.shopper") || ""`, &left))
	if left != "" {
		t.Fatalf("after signing out the tab still holds %s", left)
	}
	if r := postToken(t, srv, url.Values{"grant_type": {"refresh_token"}, "client_id": {StoreClientID}, "refresh_token": {session.Refresh}}); r.status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("refresh after signing out: %d %q, want 400 invalid_grant (the refresh token was not revoked)", r.status, r.Error)
	}
	if v := cspViolations(t, b); len(v) != 0 {
		t.Fatalf("the Content-Security-Policy blocked %v", v)
	}
}
