package handler

import (
	"context"
	"log/slog"
	"net/http"

	"lastunit/shared/apigw"
	"lastunit/shared/shop"
)

// Route keys of the checkout function.
const (
	RouteCheckout = "POST /checkout"
	RouteGetOrder = "GET /orders/{id}"
)

// CheckoutBody is the body of POST /checkout.
type CheckoutBody struct {
	ReservationIDs []string `json:"reservation_ids"`
}

// Checkout returns the checkout function's handler: checkout and the shopper's orders.
func Checkout(svc *shop.Service, log *slog.Logger) *apigw.Mux {
	m := apigw.NewMux(log)
	m.Handle(RouteCheckout, apigw.Shopper, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		var body CheckoutBody
		if err := apigw.Decode(r, &body); err != nil {
			return 0, nil, err
		}
		o, err := svc.Checkout(ctx, shop.CheckoutRequest{UserID: r.User.UserID, ReservationIDs: body.ReservationIDs, IdemKey: r.Header("Idempotency-Key")})
		return http.StatusCreated, o, err
	})
	m.Handle(RouteGetOrder, apigw.Shopper, func(ctx context.Context, r *apigw.Request) (int, any, error) {
		o, err := svc.GetOrder(ctx, r.User.UserID, r.User.IsAdmin(), r.Param("id"))
		return http.StatusOK, o, err
	})
	return m
}
