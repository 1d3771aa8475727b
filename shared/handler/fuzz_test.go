package handler_test

import (
	"context"
	"encoding/base64"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/apigw"
	"lastunit/shared/handler"
	"lastunit/shared/shop"
)

// The fuzz targets drive the real decoders and the real shop rules, but with a store and a
// gate that only record what reached them: whatever reaches them must already be valid.

// fakeGate answers every reserve with out_of_stock and records it. Methods it does not
// override panic (the embedded interface is nil), which the mux turns into a 500.
type fakeGate struct {
	shop.Gate
	reserves []shop.GateReserve
}

func (g *fakeGate) Reserve(_ context.Context, a shop.GateReserve) (shop.GateResult, error) {
	g.reserves = append(g.reserves, a)
	return shop.GateResult{Outcome: shop.GateOutOfStock, Available: 0}, nil
}

func (g *fakeGate) Invalidate(context.Context, string, int64) error { return nil }

func (g *fakeGate) PutCatalog(context.Context, []shop.CatalogEntry, bool) error { return nil }

// fakeStore records upserts; it has no idempotency records.
type fakeStore struct {
	shop.Store
	upserts []upsert
}

type upsert struct {
	id string
	in shop.ProductInput
}

func (s *fakeStore) Idem(context.Context, string, string) (shop.IdemRecord, error) {
	return shop.IdemRecord{}, shop.ErrNotFound
}

func (s *fakeStore) UpsertProduct(_ context.Context, id string, in shop.ProductInput, _ time.Time) (shop.ProductRow, error) {
	s.upserts = append(s.upserts, upsert{id, in})
	return shop.ProductRow{ID: id, Name: in.Name, PriceCents: in.PriceCents, Currency: in.Currency, Stock: in.Stock, MaxPerUser: in.MaxPerUser, Gen: 1}, nil
}

func (s *fakeStore) RebuildGate(context.Context, string, func(shop.GateState) (bool, error)) error {
	return nil
}

func fakeService() (*shop.Service, *fakeStore, *fakeGate) {
	st, g := &fakeStore{}, &fakeGate{}
	svc := shop.NewService(st, g)
	svc.Log = discard
	return svc, st, g
}

// setRawBody puts b in an event as API Gateway would: as text when it is UTF-8, else base64.
func setRawBody(ev *events.APIGatewayV2HTTPRequest, b []byte) {
	if utf8.Valid(b) {
		ev.Body, ev.IsBase64Encoded = string(b), false
	} else {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(b), true
	}
}

// bodyError checks that a decode error is a client error a body can cause.
func bodyError(t *testing.T, err error) shop.Code {
	t.Helper()
	var e *shop.Error
	if !errors.As(err, &e) {
		t.Fatalf("decode error is not a *shop.Error: %T %v", err, err)
	}
	switch e.Code {
	case shop.CodeInvalidRequest, shop.CodePayloadTooLarge, shop.CodeUnsupportedMediaType:
	default:
		t.Fatalf("decode error has code %q: %v", e.Code, err)
	}
	return e.Code
}

// FuzzReserveBody: any body and Idempotency-Key for POST /reservations decodes without a
// panic, and what reaches the gate is a quantity in 1..1000 of a valid product id for the
// caller, with a valid key or none. Everything else is a 4xx in the error shape.
func FuzzReserveBody(f *testing.F) {
	for _, s := range []struct{ body, key string }{
		{`{"product_id":"p1","quantity":2}`, ""},
		{`{"product_id":"p1"}`, "key-1"},
		{`{"product_id":"p1","quantity":1000}`, strings.Repeat("k", 255)},
		{`{"product_id":"p1","quantity":1001}`, ""},
		{`{"product_id":"p1","quantity":0}`, ""},
		{`{"product_id":"p1","quantity":-1}`, ""},
		{`{"product_id":"p1","quantity":2.5}`, ""},
		{`{"product_id":"p1","quantity":"2"}`, ""},
		{`{"product_id":"p1","quantity":1e400}`, ""},
		{`{"product_id":5}`, ""},
		{`{"product_id":"P1"}`, ""},
		{`{"product_id":"-p1"}`, ""},
		{`{"product_id":"` + strings.Repeat("a", 64) + `"}`, ""},
		{`{"product_id":"` + strings.Repeat("a", 65) + `"}`, ""},
		{`{"product_id":"p1","quantity":1}]`, ""},
		{`{"product_id":"p1","extra":1}`, ""},
		{`{"product_id":"p1"}`, "a b"},
		{`{"product_id":"p1"}`, strings.Repeat("k", 256)},
		{``, ""},
		{`null`, ""},
	} {
		f.Add([]byte(s.body), s.key)
	}
	template := loadEvent(f, "reserve.json")
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		// The decoder and the shop's own checks, as the handler chains them.
		var req handler.ReserveRequest
		decErr := apigw.DecodeJSON("application/json", body, &req)
		var want bool
		if decErr != nil {
			bodyError(t, decErr)
		} else {
			sr := req.Shop("fuzz-user", key)
			if sr.UserID != "fuzz-user" || sr.IdemKey != key || sr.ProductID != req.ProductID {
				t.Fatalf("Shop() = %+v from %+v", sr, req)
			}
			if req.Quantity == nil && sr.Quantity != 1 {
				t.Fatalf("no quantity became %d, want the default 1", sr.Quantity)
			}
			want = shop.ValidProductID(sr.ProductID) && sr.Quantity >= 1 && sr.Quantity <= shop.MaxQuantity &&
				(key == "" || shop.ValidIdempotencyKey(key))
		}

		// The real handler on a shop whose gate only records.
		svc, _, g := fakeService()
		ev := template
		ev.Headers = map[string]string{"content-type": "application/json"}
		if key != "" {
			ev.Headers["idempotency-key"] = key
		}
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": "fuzz-user"}},
		}
		setRawBody(&ev, body)
		resp, err := handler.Reserve(svc, discard).Serve(context.Background(), ev)
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if len(g.reserves) > 1 {
			t.Fatalf("one request reached the gate %d times", len(g.reserves))
		}
		if reached := len(g.reserves) == 1; reached != want {
			t.Fatalf("body %q key %q: reached the gate %v, valid %v (status %d %s)", body, key, reached, want, resp.StatusCode, resp.Body)
		}
		if want {
			a := g.reserves[0]
			if !shop.ValidProductID(a.ProductID) || a.Quantity < 1 || a.Quantity > shop.MaxQuantity ||
				a.UserID != "fuzz-user" || a.IdemKey != key || a.ProductID != req.ProductID {
				t.Fatalf("the gate got %+v from body %q key %q", a, body, key)
			}
			checkShape(t, resp, 409, shop.CodeOutOfStock, "", map[string]any{"available": 0})
			return
		}
		if resp.StatusCode != 400 && resp.StatusCode != 413 {
			t.Fatalf("status %d for body %q key %q: %s", resp.StatusCode, body, key, resp.Body)
		}
		if decErr != nil {
			e := decErr.(*shop.Error)
			field, _ := e.Details["field"].(string)
			checkShape(t, resp, apigw.Status[e.Code], e.Code, field, nil)
		}
	})
}

var currency = regexp.MustCompile(`^[a-z]{3}$`)

// FuzzProductBody: any path id and body for PUT /admin/products/{id} decodes without a
// panic, and only a complete, in-range product with a valid id reaches the store.
func FuzzProductBody(f *testing.F) {
	for _, s := range []struct{ id, body string }{
		{"p1", `{"name":"Tee","price_cents":2500,"currency":"usd","stock":10,"max_per_user":2}`},
		{"p1", `{"name":"Tee","price_cents":0,"currency":"eur","stock":0,"max_per_user":1}`},
		{"p1", `{"name":"Tee","price_cents":2500,"currency":"usd","stock":10}`},
		{"p1", `{"name":"","price_cents":2500,"currency":"usd","stock":10,"max_per_user":2}`},
		{"p1", `{"name":"Tee","price_cents":-1,"currency":"usd","stock":10,"max_per_user":2}`},
		{"p1", `{"name":"Tee","price_cents":2500,"currency":"USD","stock":10,"max_per_user":2}`},
		{"p1", `{"name":"Tee","price_cents":2500,"currency":"usd","stock":-1,"max_per_user":2}`},
		{"p1", `{"name":"Tee","price_cents":2500,"currency":"usd","stock":1000000001,"max_per_user":2}`},
		{"p1", `{"name":"Tee","price_cents":2500,"currency":"usd","stock":10,"max_per_user":0}`},
		{"p1", `{"name":"Tee","price_cents":25.5,"currency":"usd","stock":10,"max_per_user":2}`},
		{"p1", `{"name":"Tee","price_cents":2500,"currency":"usd","stock":10,"max_per_user":2,"sold":3}`},
		{"P1", `{"name":"Tee","price_cents":2500,"currency":"usd","stock":10,"max_per_user":2}`},
		{"", `{"name":"Tee","price_cents":2500,"currency":"usd","stock":10,"max_per_user":2}`},
		{"p1", `{"name":null,"price_cents":2500,"currency":"usd","stock":10,"max_per_user":2}`},
		{"p1", ``},
	} {
		f.Add(s.id, []byte(s.body))
	}
	template := loadEvent(f, "admin_put_product.json")
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		var b handler.ProductBody
		decErr := apigw.DecodeJSON("application/json", body, &b)
		var want bool
		var in shop.ProductInput
		if decErr != nil {
			bodyError(t, decErr)
		} else if pi, err := b.Shop(); err != nil {
			if shop.ErrorCode(err) != shop.CodeInvalidRequest {
				t.Fatalf("Shop(): %v", err)
			}
		} else {
			in = pi
			want = shop.ValidProductID(id) && in.Name != "" && len(in.Name) <= shop.MaxNameLen && shop.ValidText(in.Name) &&
				in.PriceCents >= 0 && in.PriceCents <= shop.MaxPriceCents && currency.MatchString(in.Currency) &&
				in.Stock >= 0 && in.Stock <= shop.MaxStock && in.MaxPerUser >= 1 && in.MaxPerUser <= shop.MaxStock &&
				shop.CheckDrawSettings(nil, shop.DrawSettings{Allocation: in.Allocation, OpensAt: in.OpensAt, ClosesAt: in.ClosesAt, DrawAt: in.DrawAt, QueueRate: in.QueueRate}, time.Time{}) == nil
			if in.Allocation == "" {
				in.Allocation = shop.AllocationFirstCome // the shop's default
			}
		}

		svc, st, _ := fakeService()
		ev := template
		ev.Headers = map[string]string{"content-type": "application/json"}
		ev.PathParameters = map[string]string{"id": id}
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": "fuzz-admin", "cognito:groups": "[admin]"}},
		}
		setRawBody(&ev, body)
		resp, err := handler.Admin(svc, discard).Serve(context.Background(), ev)
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if reached := len(st.upserts) == 1; reached != want || len(st.upserts) > 1 {
			t.Fatalf("id %q body %q: reached the store %d times, valid %v (status %d %s)", id, body, len(st.upserts), want, resp.StatusCode, resp.Body)
		}
		if want {
			got := st.upserts[0].in
			got.CheckAllocation, got.DrawSeed = nil, in.DrawSeed // the check under the lock, and a draw's fresh seed
			if st.upserts[0].id != id || !reflect.DeepEqual(got, in) {
				t.Fatalf("the store got %+v, want %q %+v", st.upserts[0], id, in)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("status %d for a valid product: %s", resp.StatusCode, resp.Body)
			}
			return
		}
		if resp.StatusCode != 400 && resp.StatusCode != 413 {
			t.Fatalf("status %d for id %q body %q: %s", resp.StatusCode, id, body, resp.Body)
		}
		var r errorReply
		if err := jsonStrict(resp.Body, &r); err != nil || r.Error.Code == "" {
			t.Fatalf("not the error shape (%v): %s", err, resp.Body)
		}
		if f, _ := r.Error.Details["field"].(string); f != "" && !productFields[f] && !strings.HasPrefix(r.Error.Message, "unknown field ") {
			t.Fatalf("details.field %q: %s", f, resp.Body)
		}
	})
}

var productFields = map[string]bool{"id": true, "name": true, "price_cents": true, "currency": true, "stock": true, "max_per_user": true}
