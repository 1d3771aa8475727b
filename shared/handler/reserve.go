// Package handler holds the Lambda handlers: short adapters that decode an event, call
// shared/shop and map the result. Each function's main wires one of them; the local runner
// serves the same ones.
package handler

import (
	"context"
	"log/slog"
	"net/http"

	"lastunit/shared/apigw"
	"lastunit/shared/shop"
)

// Route keys of the reserve function (API.md, shopper routes).
const (
	RouteListProducts = "GET /products"
	RouteGetProduct   = "GET /products/{id}"
	RouteReserve      = "POST /reservations"
	RouteListMine     = "GET /reservations"
	RouteRelease      = "DELETE /reservations/{id}"
	RouteJoinQueue    = "POST /products/{id}/queue"
	RouteGetTicket    = "GET /products/{id}/queue"
	RouteEnter        = "POST /products/{id}/entry"
	RouteGetEntry     = "GET /products/{id}/entry"
	RouteWithdraw     = "DELETE /products/{id}/entry"
	RouteDrawRecord   = "GET /products/{id}/draw"
)

// EntryRequest is the body of POST /products/{id}/entry; variant_ids may be left out for a
// product with one variant, quantity defaults to 1.
type EntryRequest struct {
	VariantIDs *[]string `json:"variant_ids"`
	Quantity   *int64    `json:"quantity"`
}

// ReserveRequest is the body of POST /reservations; variant_id may be left out for a product
// with one variant.
type ReserveRequest struct {
	ProductID string  `json:"product_id"`
	VariantID *string `json:"variant_id"`
	Quantity  *int64  `json:"quantity"`
}

// Reserve returns the reserve function's handler: products, and the shopper's holds.
func Reserve(svc *shop.Service, log *slog.Logger) *apigw.Mux {
	m := apigw.NewMux(log)
	m.Handle(RouteListProducts, apigw.Public, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		ps, err := svc.Products(ctx)
		return http.StatusOK, map[string]any{"products": ps}, err
	})
	m.Handle(RouteGetProduct, apigw.Public, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		p, err := svc.Product(ctx, r.Param("id"))
		return http.StatusOK, p, err
	})
	m.Handle(RouteReserve, apigw.Shopper, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		var body ReserveRequest
		if err := apigw.Decode(r, &body); err != nil {
			return 0, nil, err
		}
		if body.VariantID != nil && *body.VariantID == "" {
			return 0, nil, shop.Invalid("variant_id", "variant_id must match [a-z0-9][a-z0-9._-]{0,31}")
		}
		out, err := svc.Reserve(ctx, body.Shop(r.User.UserID, r.Header("Idempotency-Key")))
		return http.StatusCreated, out, err
	})
	m.Handle(RouteListMine, apigw.Shopper, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		rs, err := svc.ListMine(ctx, r.User.UserID)
		return http.StatusOK, map[string]any{"reservations": rs}, err
	})
	m.Handle(RouteRelease, apigw.Shopper, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		return http.StatusNoContent, nil, svc.Release(ctx, r.User.UserID, r.Param("id"))
	})
	m.Handle(RouteJoinQueue, apigw.Shopper, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		t, err := svc.JoinQueue(ctx, r.User.UserID, r.Param("id"))
		return http.StatusOK, t, err
	})
	m.Handle(RouteGetTicket, apigw.Shopper, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		t, err := svc.QueueTicket(ctx, r.User.UserID, r.Param("id"))
		return http.StatusOK, t, err
	})
	m.Handle(RouteEnter, apigw.Shopper, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		var body EntryRequest
		if err := apigw.Decode(r, &body); err != nil {
			return 0, nil, err
		}
		req := shop.EntryRequest{UserID: r.User.UserID, ProductID: r.Param("id")}
		if body.VariantIDs != nil {
			req.VariantIDs = *body.VariantIDs
			if req.VariantIDs == nil { // "variant_ids": null is left out
				req.VariantIDs = nil
			} else if len(req.VariantIDs) == 0 {
				return 0, nil, shop.Invalid("variant_ids", "variant_ids must name 1 to %d variants", shop.MaxEntryVariants)
			}
		}
		if body.Quantity != nil {
			if *body.Quantity < 1 {
				return 0, nil, shop.Invalid("quantity", "quantity must be an integer from 1 to max_per_user")
			}
			req.Quantity = *body.Quantity
		}
		e, err := svc.Enter(ctx, req)
		return http.StatusOK, e, err
	})
	m.Handle(RouteGetEntry, apigw.Shopper, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		e, err := svc.MyEntry(ctx, r.User.UserID, r.Param("id"))
		return http.StatusOK, e, err
	})
	m.Handle(RouteWithdraw, apigw.Shopper, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		return http.StatusNoContent, nil, svc.Withdraw(ctx, r.User.UserID, r.Param("id"))
	})
	m.Handle(RouteDrawRecord, apigw.Public, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		rec, err := svc.DrawRecord(ctx, r.Param("id"))
		return http.StatusOK, rec, err
	})
	return m
}

// Shop turns the body into the shop's request; quantity defaults to 1.
func (b ReserveRequest) Shop(userID, idemKey string) shop.ReserveRequest {
	q := int64(1)
	if b.Quantity != nil {
		q = *b.Quantity
	}
	vid := ""
	if b.VariantID != nil {
		vid = *b.VariantID
	}
	return shop.ReserveRequest{UserID: userID, ProductID: b.ProductID, VariantID: vid, Quantity: q, IdemKey: idemKey}
}
