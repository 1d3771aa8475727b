package handler_test

import (
	"context"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/shop"
)

// inSizes makes the case's product a product in three sizes (s, m, l; 5 each, max 3), with a
// hold of size m by another shopper, so that m was held.
func inSizes(t *testing.T, c *caseEnv) {
	t.Helper()
	ctx := context.Background()
	_, err := c.env.Shop.UpsertProduct(ctx, c.product, shop.ProductInput{Name: "Shoe", PriceCents: 1000, Currency: "usd", MaxPerUser: 3,
		Variants: []shop.VariantInput{{ID: "s", Name: "S", Stock: 5}, {ID: "m", Name: "M", Stock: 5}, {ID: "l", Name: "L", Stock: 5}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: c.other, ProductID: c.product, VariantID: "m", Quantity: 2}); err != nil {
		t.Fatal(err)
	}
}

// TestVariantsBadInput: API.md, "Variants": each bad request gets its 4xx naming the field,
// and changes nothing in Postgres (products, variants, slots, holds) or Redis.
func TestVariantsBadInput(t *testing.T) {
	t.Parallel()
	const put, restock, reserve = "admin_put_product.json", "admin_restock.json", "reserve.json"
	putBody := func(rest string) func(*caseEnv, *events.APIGatewayV2HTTPRequest) {
		return body(`{"name":"Shoe","price_cents":1000,"currency":"usd","max_per_user":3,` + rest + `}`)
	}
	three := `{"id":"s","name":"S","stock":5},{"id":"m","name":"M","stock":5},{"id":"l","name":"L","stock":5}`
	cases := []badCase{
		// PUT /admin/products/{id}
		{name: "stock and variants", event: put, mod: putBody(`"stock":5,"variants":[` + three + `]`), status: 400, code: shop.CodeInvalidRequest, field: "variants"},
		{name: "neither stock nor variants", event: put, mod: putBody(`"queue_rate":0`), status: 400, code: shop.CodeInvalidRequest, field: "stock"},
		{name: "no variants", event: put, mod: putBody(`"variants":[]`), status: 400, code: shop.CodeInvalidRequest, field: "variants"},
		{name: "variants not a list", event: put, mod: putBody(`"variants":{"id":"s"}`), status: 400, code: shop.CodeInvalidRequest, field: "variants"},
		{name: "variant without id", event: put, mod: putBody(`"variants":[{"name":"S","stock":5}]`), status: 400, code: shop.CodeInvalidRequest, field: "variants[0].id"},
		{name: "variant without name", event: put, mod: putBody(`"variants":[{"id":"s","stock":5}]`), status: 400, code: shop.CodeInvalidRequest, field: "variants[0].name"},
		{name: "variant without stock", event: put, mod: putBody(`"variants":[{"id":"s","name":"S"}]`), status: 400, code: shop.CodeInvalidRequest, field: "variants[0].stock"},
		{name: "variant id uppercase", event: put, mod: putBody(`"variants":[{"id":"S","name":"S","stock":5}]`), status: 400, code: shop.CodeInvalidRequest, field: "variants[0].id"},
		{name: "variant id 33 chars", event: put, mod: putBody(`"variants":[{"id":"abcdefghijklmnopqrstuvwxyz0123456","name":"S","stock":5}]`), status: 400, code: shop.CodeInvalidRequest, field: "variants[0].id"},
		{name: "variant id twice", event: put, mod: putBody(`"variants":[{"id":"s","name":"S","stock":5},{"id":"s","name":"S2","stock":1}]`), status: 400, code: shop.CodeInvalidRequest, field: "variants[1].id"},
		{name: "variant name empty", event: put, mod: putBody(`"variants":[{"id":"s","name":"","stock":5}]`), status: 400, code: shop.CodeInvalidRequest, field: "variants[0].name"},
		{name: "variant name with NUL", event: put, mod: putBody(`"variants":[{"id":"s","name":"S\u0000","stock":5}]`), status: 400, code: shop.CodeInvalidRequest, field: "variants[0].name"},
		{name: "variant name with a newline", event: put, mod: putBody(`"variants":[{"id":"s","name":"S\nM","stock":5}]`), status: 400, code: shop.CodeInvalidRequest, field: "variants[0].name"},
		{name: "variant stock negative", event: put, mod: putBody(`"variants":[{"id":"s","name":"S","stock":-1}]`), status: 400, code: shop.CodeInvalidRequest, field: "variants[0].stock"},
		{name: "variant stock as string", event: put, mod: putBody(`"variants":[{"id":"s","name":"S","stock":"5"}]`), status: 400, code: shop.CodeInvalidRequest, field: "variants.stock"},
		{name: "variant price negative", event: put, mod: putBody(`"variants":[{"id":"s","name":"S","stock":5,"price_cents":-1}]`), status: 400, code: shop.CodeInvalidRequest, field: "variants[0].price_cents"},
		{name: "variant unknown field", event: put, mod: putBody(`"variants":[{"id":"s","name":"S","stock":5,"color":"red"}]`), status: 400, code: shop.CodeInvalidRequest, field: "color"},
		{name: "stock on a product in sizes", event: put, setup: inSizes, mod: putBody(`"stock":5`), status: 400, code: shop.CodeInvalidRequest, field: "stock"},
		{name: "a size below its held units", event: put, setup: inSizes, mod: putBody(`"variants":[{"id":"s","name":"S","stock":5},{"id":"m","name":"M","stock":1},{"id":"l","name":"L","stock":5}]`),
			status: 409, code: shop.CodeInvalidState},
		{name: "removing a size that was held", event: put, setup: inSizes, mod: putBody(`"variants":[{"id":"s","name":"S","stock":5},{"id":"l","name":"L","stock":5}]`),
			status: 409, code: shop.CodeInvalidState},
		// POST /admin/products/{id}/restock
		{name: "restock of a product in sizes without variant_id", event: restock, setup: inSizes, mod: body(`{"delta":1}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_id"},
		{name: "restock of an unknown size", event: restock, setup: inSizes, mod: body(`{"delta":1,"variant_id":"xl"}`), status: 404, code: shop.CodeNotFound},
		{name: "restock variant_id bad", event: restock, setup: inSizes, mod: body(`{"delta":1,"variant_id":"X L"}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_id"},
		{name: "restock variant_id empty", event: restock, mod: body(`{"delta":1,"variant_id":""}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_id"},
		{name: "restock variant_id a number", event: restock, mod: body(`{"delta":1,"variant_id":9}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_id"},
		{name: "restock a size below its held units", event: restock, setup: inSizes, mod: body(`{"delta":-4,"variant_id":"m"}`), status: 409, code: shop.CodeInvalidState},
		{name: "restock another size of a one-variant product", event: restock, mod: body(`{"delta":1,"variant_id":"us-9"}`), status: 404, code: shop.CodeNotFound},
		// POST /reservations
		{name: "reserve a product in sizes without variant_id", event: reserve, setup: inSizes, mod: body(`{"product_id":"{P}","quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_id"},
		{name: "reserve an unknown size", event: reserve, setup: inSizes, mod: body(`{"product_id":"{P}","variant_id":"xl","quantity":1}`), status: 404, code: shop.CodeNotFound},
		{name: "reserve variant_id bad", event: reserve, setup: inSizes, mod: body(`{"product_id":"{P}","variant_id":"X L","quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_id"},
		{name: "reserve variant_id empty", event: reserve, mod: body(`{"product_id":"{P}","variant_id":"","quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_id"},
		{name: "reserve variant_id null is left out", event: reserve, setup: inSizes, mod: body(`{"product_id":"{P}","variant_id":null,"quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_id"},
		{name: "reserve variant_id a number", event: reserve, mod: body(`{"product_id":"{P}","variant_id":9,"quantity":1}`), status: 400, code: shop.CodeInvalidRequest, field: "variant_id"},
		{name: "reserve a size sold out", event: reserve, setup: func(t *testing.T, c *caseEnv) {
			inSizes(t, c)
			if _, err := c.env.Shop.Reserve(context.Background(), shop.ReserveRequest{UserID: c.other, ProductID: c.product, VariantID: "m", Quantity: 1}); err != nil {
				t.Fatal(err)
			}
		}, mod: body(`{"product_id":"{P}","variant_id":"m","quantity":3}`), status: 409, code: shop.CodeOutOfStock, details: map[string]any{"available": float64(2)}},
		{name: "reserve past the limit over sizes", event: reserve, setup: func(t *testing.T, c *caseEnv) {
			inSizes(t, c)
			if _, err := c.env.Shop.Reserve(context.Background(), shop.ReserveRequest{UserID: c.user, ProductID: c.product, VariantID: "s", Quantity: 2}); err != nil {
				t.Fatal(err)
			}
		}, mod: body(`{"product_id":"{P}","variant_id":"l","quantity":2}`), status: 409, code: shop.CodeLimitExceeded, details: map[string]any{"limit": float64(3)}},
	}
	runBadInput(t, cases)
}
