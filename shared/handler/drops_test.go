package handler_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/apigw"
	"lastunit/shared/handler"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// queueEvent is the sample reserve event turned into a queue call for product id.
func queueEvent(t *testing.T, method, id, user string) events.APIGatewayV2HTTPRequest {
	ev := loadEvent(t, "reserve.json")
	ev.RouteKey = method + " /products/{id}/queue"
	ev.RequestContext.RouteKey = ev.RouteKey
	ev.RawPath = "/products/" + id + "/queue"
	ev.RequestContext.HTTP.Method, ev.RequestContext.HTTP.Path = method, ev.RawPath
	ev.PathParameters = map[string]string{"id": id}
	ev.RequestContext.Authorizer.JWT.Claims["sub"] = user
	setBody(&ev, "")
	return ev
}

// TestQueueRoutesAndRateLimit: the queue routes answer API.md's Ticket, 404 without a ticket
// and 409 invalid_state without a waiting room; a reserve without an admitted ticket is
// 409 not_admitted (ahead null before the opening); past the shopper's rate the answer is
// 429 rate_limited with a Retry-After header in seconds.
func TestQueueRoutesAndRateLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t)
	env.Shop.ShopperRate, env.Shop.ShopperBurst = 1, 3
	env.Product(t, "plain", 5, 5)
	opens := testenv.Start.Add(time.Minute)
	if _, err := env.Shop.UpsertProduct(ctx, "drop", shop.ProductInput{Name: "Drop", PriceCents: 100, Currency: "usd", Stock: 5, MaxPerUser: 1, OpensAt: &opens, QueueRate: 1}); err != nil {
		t.Fatal(err)
	}
	h := handler.Reserve(env.Shop, discard)
	serve := func(ev events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
		resp, err := h.Serve(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	checkError(t, serve(queueEvent(t, "GET", "drop", "ann")), 404, shop.CodeNotFound, "", nil)
	checkError(t, serve(queueEvent(t, "POST", "plain", "ann")), 409, shop.CodeInvalidState, "", nil)
	checkError(t, serve(queueEvent(t, "GET", "plain", "ann")), 409, shop.CodeInvalidState, "", nil)
	resp := serve(queueEvent(t, "POST", "drop", "ann"))
	var tk map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &tk); resp.StatusCode != 200 || err != nil {
		t.Fatalf("join: %d %s", resp.StatusCode, resp.Body)
	}
	for _, k := range []string{"product_id", "state", "number", "serving", "ahead", "opens_at", "admitted_until"} {
		if _, ok := tk[k]; !ok {
			t.Fatalf("ticket lacks %s: %s", k, resp.Body)
		}
	}
	if tk["state"] != "waiting" || tk["number"] != nil || tk["ahead"] != nil || tk["opens_at"] != "2026-11-25T12:01:00Z" {
		t.Fatalf("ticket before the opening: %s", resp.Body)
	}
	env.Clock.Advance(time.Minute)
	res := loadEvent(t, "reserve.json")
	retarget(&res, "drop", "bob")
	setBody(&res, `{"product_id":"drop"}`)
	checkError(t, serve(res), 409, shop.CodeNotAdmitted, "", map[string]any{"ahead": float64(1)})
	// bob has used 1 of his 3 tokens; two more pass, the next is limited.
	for i := 0; i < 2; i++ {
		serve(res)
	}
	resp = serve(res)
	checkError(t, resp, 429, shop.CodeRateLimited, "", nil)
	if ra := apigw.Header(resp.Headers, "Retry-After"); ra != "1" {
		t.Fatalf("Retry-After %q, want 1", ra)
	}
	env.CheckLedger(t, "drop", 5)
}
