package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"time"

	"lastunit/shared/apigw"
	"lastunit/shared/shop"
)

// Route keys of the admin function (API.md, admin routes).
const (
	RouteAdminProducts = "GET /admin/products"
	RouteUpsertProduct = "PUT /admin/products/{id}"
	RouteRestock       = "POST /admin/products/{id}/restock"
	RouteFailedJobs    = "GET /admin/failed-jobs"
	RouteRetryJob      = "POST /admin/failed-jobs/{order_id}/retry"
	RouteCancelJob     = "POST /admin/failed-jobs/{order_id}/cancel"
	RouteRedrive       = "POST /admin/failed-jobs/redrive"
	RouteAdminOrders   = "GET /admin/orders"
	RouteDrawBeacon    = "POST /admin/products/{id}/draw-beacon"
)

// BeaconBody is the body of POST /admin/products/{id}/draw-beacon.
type BeaconBody struct {
	Beacon *string `json:"beacon"`
}

// ProductBody is the body of PUT /admin/products/{id}; every field is required, but for
// stock and variants: exactly one of them.
type ProductBody struct {
	Name       *string `json:"name"`
	PriceCents *int64  `json:"price_cents"`
	Currency   *string `json:"currency"`
	Stock      *int64  `json:"stock"`
	MaxPerUser *int64  `json:"max_per_user"`
	// Variants, when given, are exactly the product's variants (API.md, "Variants").
	Variants *[]VariantBody `json:"variants"`
	// Optional drop fields (null or absent: no window / no waiting room).
	OpensAt   *Time  `json:"opens_at"`
	ClosesAt  *Time  `json:"closes_at"`
	QueueRate *int64 `json:"queue_rate"`
	// Optional draw fields (API.md "Draws"): allocation first_come (default) or draw, and
	// draw_at.
	Allocation *string `json:"allocation"`
	DrawAt     *Time   `json:"draw_at"`
}

// VariantBody is one variant of a PUT: id, name and stock required, price_cents optional.
type VariantBody struct {
	ID         *string `json:"id"`
	Name       *string `json:"name"`
	Stock      *int64  `json:"stock"`
	PriceCents *int64  `json:"price_cents"`
}

// Time is an RFC 3339 time in a request body; one that does not parse is a type error, so
// that the 400 names its field.
type Time struct{ time.Time }

// UnmarshalJSON reads an RFC 3339 string.
func (t *Time) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &t.Time); err != nil {
		return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeOf(t.Time)}
	}
	return nil
}

func (t *Time) ptr() *time.Time {
	if t == nil {
		return nil
	}
	return &t.Time
}

// Shop checks that every field is there and returns the shop's input.
func (b ProductBody) Shop() (shop.ProductInput, error) {
	switch {
	case b.Name == nil:
		return shop.ProductInput{}, shop.Invalid("name", "name is required")
	case b.PriceCents == nil:
		return shop.ProductInput{}, shop.Invalid("price_cents", "price_cents is required")
	case b.Currency == nil:
		return shop.ProductInput{}, shop.Invalid("currency", "currency is required")
	case b.Stock != nil && b.Variants != nil:
		return shop.ProductInput{}, shop.Invalid("variants", "send either stock or variants, not both")
	case b.Stock == nil && b.Variants == nil:
		return shop.ProductInput{}, shop.Invalid("stock", "stock (or variants) is required")
	case b.MaxPerUser == nil:
		return shop.ProductInput{}, shop.Invalid("max_per_user", "max_per_user is required")
	}
	in := shop.ProductInput{Name: *b.Name, PriceCents: *b.PriceCents, Currency: *b.Currency, MaxPerUser: *b.MaxPerUser,
		OpensAt: b.OpensAt.ptr(), ClosesAt: b.ClosesAt.ptr()}
	if b.Stock != nil {
		in.Stock = *b.Stock
	}
	if b.Variants != nil {
		in.Variants = make([]shop.VariantInput, len(*b.Variants))
		for i, v := range *b.Variants {
			switch {
			case v.ID == nil:
				return shop.ProductInput{}, shop.Invalid(fmt.Sprintf("variants[%d].id", i), "a variant's id is required")
			case v.Name == nil:
				return shop.ProductInput{}, shop.Invalid(fmt.Sprintf("variants[%d].name", i), "a variant's name is required")
			case v.Stock == nil:
				return shop.ProductInput{}, shop.Invalid(fmt.Sprintf("variants[%d].stock", i), "a variant's stock is required")
			}
			in.Variants[i] = shop.VariantInput{ID: *v.ID, Name: *v.Name, Stock: *v.Stock, PriceCents: v.PriceCents}
		}
	}
	if b.QueueRate != nil {
		in.QueueRate = *b.QueueRate
	}
	if b.Allocation != nil {
		if *b.Allocation == "" {
			return shop.ProductInput{}, shop.Invalid("allocation", "allocation must be first_come or draw")
		}
		in.Allocation = *b.Allocation
	}
	in.DrawAt = b.DrawAt.ptr()
	return in, nil
}

// RestockBody is the body of POST /admin/products/{id}/restock; variant_id may be left out for
// a product with one variant.
type RestockBody struct {
	Delta     *int64  `json:"delta"`
	VariantID *string `json:"variant_id"`
}

// Admin returns the admin function's handler: the product ledger and restocking.
func Admin(svc *shop.Service, log *slog.Logger) *apigw.Mux {
	m := apigw.NewMux(log)
	m.Handle(RouteAdminProducts, apigw.Admin, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		ps, err := svc.AdminProducts(ctx)
		return http.StatusOK, map[string]any{"products": ps}, err
	})
	m.Handle(RouteUpsertProduct, apigw.Admin, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		var body ProductBody
		if err := apigw.Decode(r, &body); err != nil {
			return 0, nil, err
		}
		in, err := body.Shop()
		if err != nil {
			return 0, nil, err
		}
		p, err := svc.UpsertProduct(ctx, r.Param("id"), in)
		return http.StatusOK, p, err
	})
	m.Handle(RouteDrawBeacon, apigw.Admin, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		var body BeaconBody
		if err := apigw.Decode(r, &body); err != nil {
			return 0, nil, err
		}
		if body.Beacon == nil {
			return 0, nil, shop.Invalid("beacon", "beacon is required")
		}
		p, err := svc.SetBeacon(ctx, r.Param("id"), *body.Beacon)
		return http.StatusOK, p, err
	})
	m.Handle(RouteRestock, apigw.Admin, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		var body RestockBody
		if err := apigw.Decode(r, &body); err != nil {
			return 0, nil, err
		}
		if body.Delta == nil {
			return 0, nil, shop.Invalid("delta", "delta is required")
		}
		vid := ""
		if body.VariantID != nil {
			if vid = *body.VariantID; vid == "" {
				return 0, nil, shop.Invalid("variant_id", "variant_id must match [a-z0-9][a-z0-9._-]{0,31}")
			}
		}
		p, err := svc.RestockVariant(ctx, r.Param("id"), vid, *body.Delta)
		return http.StatusOK, p, err
	})
	m.Handle(RouteFailedJobs, apigw.Admin, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		jobs, err := svc.FailedJobs(ctx)
		return http.StatusOK, map[string]any{"failed_jobs": jobs}, err
	})
	m.Handle(RouteRetryJob, apigw.Admin, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		res, err := svc.RetryJob(ctx, r.Param("order_id"))
		return http.StatusAccepted, res, err
	})
	m.Handle(RouteCancelJob, apigw.Admin, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		o, err := svc.CancelJob(ctx, r.Param("order_id"))
		return http.StatusOK, o, err
	})
	m.Handle(RouteRedrive, apigw.Admin, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		n, err := svc.Redrive(ctx)
		return http.StatusAccepted, map[string]int{"moved": n}, err
	})
	m.Handle(RouteAdminOrders, apigw.Admin, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		status, set := r.Event.QueryStringParameters["status"]
		if set && status == "" { // ?status= filters on nothing: a bad value, not "every order"
			return 0, nil, shop.Invalid("status", "status must be one of payment_pending, paid, fulfilled, expired, cancelled, refunded")
		}
		orders, err := svc.AdminOrders(ctx, status)
		return http.StatusOK, map[string]any{"orders": orders}, err
	})
	return m
}
