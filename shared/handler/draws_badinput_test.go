package handler_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// asDraw makes the case's product a draw in three sizes (s, m, l; 5 each, max 3) whose entry
// period runs from an hour before the clock to an hour after it, with an entry by another
// shopper.
func asDraw(t *testing.T, c *caseEnv) { drawAround(t, c, -time.Hour, time.Hour) }

// drawAround makes the case's product a draw whose entry period is [now+opens, now+closes).
func drawAround(t *testing.T, c *caseEnv, opens, closes time.Duration) {
	t.Helper()
	ctx := context.Background()
	o, cl := testenv.Start.Add(opens), testenv.Start.Add(closes)
	at := cl.Add(time.Hour)
	_, err := c.env.Shop.UpsertProduct(ctx, c.product, shop.ProductInput{Name: "Shoe", PriceCents: 1000, Currency: "usd", MaxPerUser: 3,
		Variants:   []shop.VariantInput{{ID: "s", Name: "S", Stock: 5}, {ID: "m", Name: "M", Stock: 5}, {ID: "l", Name: "L", Stock: 5}},
		Allocation: shop.AllocationDraw, OpensAt: &o, ClosesAt: &cl, DrawAt: &at})
	if err != nil {
		t.Fatal(err)
	}
	if opens < 0 && closes > 0 {
		if _, err := c.env.Shop.Enter(ctx, shop.EntryRequest{UserID: c.other, ProductID: c.product, VariantIDs: []string{"m"}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDrawsBadInput: API.md, "Draws": each bad request gets its 4xx naming the field, and
// changes nothing in Postgres (products, draws, entries, holds) or Redis.
func TestDrawsBadInput(t *testing.T) {
	t.Parallel()
	const put, enter, beacon, reserve = "admin_put_product.json", "draw_entry.json", "draw_beacon.json", "reserve.json"
	window := func(allocation, rest string) func(*caseEnv, *events.APIGatewayV2HTTPRequest) {
		return body(`{"name":"Shoe","price_cents":1000,"currency":"usd","max_per_user":3,"stock":5` + allocation + rest + `}`)
	}
	const period = `,"opens_at":"2026-11-25T13:00:00Z","closes_at":"2026-11-25T14:00:00Z"`
	const started = `,"opens_at":"2026-11-25T11:00:00Z","closes_at":"2026-11-25T13:00:00Z"`
	sizes := func(rest string) func(*caseEnv, *events.APIGatewayV2HTTPRequest) {
		return body(`{"name":"Shoe","price_cents":1000,"currency":"usd","max_per_user":3,` +
			`"variants":[{"id":"s","name":"S","stock":5},{"id":"m","name":"M","stock":5},{"id":"l","name":"L","stock":5}]` + rest + `}`)
	}
	cases := []badCase{
		// PUT /admin/products/{id}
		{name: "allocation unknown", event: put, mod: window(`,"allocation":"lottery"`, period), status: 400, code: shop.CodeInvalidRequest, field: "allocation"},
		{name: "allocation empty", event: put, mod: window(`,"allocation":""`, period), status: 400, code: shop.CodeInvalidRequest, field: "allocation"},
		{name: "allocation a number", event: put, mod: window(`,"allocation":1`, period), status: 400, code: shop.CodeInvalidRequest, field: "allocation"},
		{name: "draw without opens_at", event: put, mod: window(`,"allocation":"draw","draw_at":"2026-11-25T15:00:00Z"`, `,"closes_at":"2026-11-25T14:00:00Z"`), status: 400, code: shop.CodeInvalidRequest, field: "opens_at"},
		{name: "draw without closes_at", event: put, mod: window(`,"allocation":"draw","draw_at":"2026-11-25T15:00:00Z"`, `,"opens_at":"2026-11-25T13:00:00Z"`), status: 400, code: shop.CodeInvalidRequest, field: "closes_at"},
		{name: "draw without draw_at", event: put, mod: window(`,"allocation":"draw"`, period), status: 400, code: shop.CodeInvalidRequest, field: "draw_at"},
		{name: "draw_at before closes_at", event: put, mod: window(`,"allocation":"draw","draw_at":"2026-11-25T13:30:00Z"`, period), status: 400, code: shop.CodeInvalidRequest, field: "draw_at"},
		{name: "draw_at not a time", event: put, mod: window(`,"allocation":"draw","draw_at":"tomorrow"`, period), status: 400, code: shop.CodeInvalidRequest, field: "draw_at"},
		{name: "draw with a waiting room", event: put, mod: window(`,"allocation":"draw","draw_at":"2026-11-25T15:00:00Z","queue_rate":5`, period), status: 400, code: shop.CodeInvalidRequest, field: "queue_rate"},
		{name: "draw_at on a first-come product", event: put, mod: window(`,"draw_at":"2026-11-25T15:00:00Z"`, period), status: 400, code: shop.CodeInvalidRequest, field: "draw_at"},
		{name: "a held first-come product becomes a draw", event: put, setup: func(t *testing.T, c *caseEnv) { c.reserve(t, c.other, 1) },
			mod: window(`,"allocation":"draw","draw_at":"2026-11-25T15:00:00Z"`, period), status: 409, code: shop.CodeInvalidState, field: "allocation"},
		{name: "a started draw goes first come", event: put, setup: asDraw, mod: sizes(started), status: 409, code: shop.CodeInvalidState, field: "allocation"},
		{name: "a started draw moves draw_at", event: put, setup: asDraw, mod: sizes(`,"allocation":"draw","draw_at":"2026-11-25T16:00:00Z"` + started), status: 409, code: shop.CodeInvalidState, field: "draw_at"},
		{name: "a started draw moves opens_at", event: put, setup: asDraw, mod: sizes(`,"allocation":"draw","draw_at":"2026-11-25T14:00:00Z","opens_at":"2026-11-25T11:30:00Z","closes_at":"2026-11-25T13:00:00Z"`), status: 409, code: shop.CodeInvalidState, field: "opens_at"},

		// POST /products/{id}/entry
		{name: "entry unknown field", event: enter, setup: asDraw, mod: body(`{"variant_ids":["s"],"size":"s"}`), status: 400, code: shop.CodeInvalidRequest, field: "size"},
		{name: "entry variant_ids not a list", event: enter, setup: asDraw, mod: body(`{"variant_ids":"s"}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_ids"},
		{name: "entry variant_ids empty", event: enter, setup: asDraw, mod: body(`{"variant_ids":[]}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_ids"},
		{name: "entry variant_ids left out in sizes", event: enter, setup: asDraw, mod: body(`{"quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_ids"},
		{name: "entry variant named twice", event: enter, setup: asDraw, mod: body(`{"variant_ids":["s","s"]}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_ids"},
		{name: "entry six variants", event: enter, setup: asDraw, mod: body(`{"variant_ids":["s","m","l","a","b","c"]}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_ids"},
		{name: "entry variant id bad", event: enter, setup: asDraw, mod: body(`{"variant_ids":["S M"]}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_ids"},
		{name: "entry variant id a number", event: enter, setup: asDraw, mod: body(`{"variant_ids":[9]}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_ids"},
		{name: "entry quantity 0", event: enter, setup: asDraw, mod: body(`{"variant_ids":["s"],"quantity":0}`), status: 400, code: shop.CodeInvalidRequest, field: "quantity"},
		{name: "entry quantity over max_per_user", event: enter, setup: asDraw, mod: body(`{"variant_ids":["s"],"quantity":4}`), status: 400, code: shop.CodeInvalidRequest, field: "quantity"},
		{name: "entry quantity a string", event: enter, setup: asDraw, mod: body(`{"variant_ids":["s"],"quantity":"1"}`), status: 400, code: shop.CodeInvalidRequest, field: "quantity"},
		{name: "entry unknown size", event: enter, setup: asDraw, mod: body(`{"variant_ids":["s","xl"]}`), status: 404, code: shop.CodeNotFound},
		{name: "entry of a first-come product", event: enter, mod: body(`{"quantity":1}`), status: 409, code: shop.CodeInvalidState},
		{name: "entry of an unknown product", event: enter, noProduct: true, mod: body(`{"quantity":1}`), status: 404, code: shop.CodeNotFound},
		{name: "entry product id bad", event: enter, mod: both(body(`{"quantity":1}`), pathID("Bad Id")), status: 400, code: shop.CodeInvalidRequest, field: "id"},
		{name: "entry before the opening", event: enter, setup: func(t *testing.T, c *caseEnv) { drawAround(t, c, time.Hour, 2*time.Hour) },
			mod: body(`{"variant_ids":["s"]}`), status: 409, code: shop.CodeNotOpen},
		{name: "entry after the close", event: enter, setup: func(t *testing.T, c *caseEnv) { drawAround(t, c, -2*time.Hour, -time.Hour) },
			mod: body(`{"variant_ids":["s"]}`), status: 409, code: shop.CodeNotOpen},
		{name: "reserve a draw", event: reserve, setup: asDraw, mod: body(`{"product_id":"{P}","variant_id":"s","quantity":1}`), status: 409, code: shop.CodeNotAdmitted, details: map[string]any{"ahead": nil}},

		// POST /admin/products/{id}/draw-beacon
		{name: "beacon missing", event: beacon, setup: asDraw, mod: body(`{}`), status: 400, code: shop.CodeInvalidRequest, field: "beacon"},
		{name: "beacon empty", event: beacon, setup: asDraw, mod: body(`{"beacon":""}`), status: 400, code: shop.CodeInvalidRequest, field: "beacon"},
		{name: "beacon with a space", event: beacon, setup: asDraw, mod: body(`{"beacon":"round 42"}`), status: 400, code: shop.CodeInvalidRequest, field: "beacon"},
		{name: "beacon of 257 characters", event: beacon, setup: asDraw, mod: body(`{"beacon":"` + strings.Repeat("b", 257) + `"}`), status: 400, code: shop.CodeInvalidRequest, field: "beacon"},
		{name: "beacon a number", event: beacon, setup: asDraw, mod: body(`{"beacon":42}`), status: 400, code: shop.CodeInvalidRequest, field: "beacon"},
		{name: "beacon during the entry period", event: beacon, setup: asDraw, mod: body(`{"beacon":"drand-1"}`), status: 409, code: shop.CodeInvalidState},
		{name: "beacon of a first-come product", event: beacon, mod: body(`{"beacon":"drand-1"}`), status: 409, code: shop.CodeInvalidState},
		{name: "beacon of an unknown product", event: beacon, noProduct: true, mod: body(`{"beacon":"drand-1"}`), status: 404, code: shop.CodeNotFound},
		{name: "beacon without the admin group", event: beacon, setup: asDraw, mod: groups("[shopper]"), status: 403, code: shop.CodeForbidden},
	}
	runBadInput(t, cases)
}
