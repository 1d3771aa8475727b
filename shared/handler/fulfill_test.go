package handler_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/handler"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// TestFulfillBatchReportsOnlyTheFailure: of a batch of three jobs and one malformed message,
// only the job that failed is reported for redelivery; the others are fulfilled.
func TestFulfillBatchReportsOnlyTheFailure(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t).WithPayments(t)
	env.Product(t, "batch", 10, 10)
	ctx := context.Background()
	var ids []string
	for _, user := range []string{"a", "b", "c"} {
		if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: user, ProductID: "batch", Quantity: 1}); err != nil {
			t.Fatal(err)
		}
		o, err := env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: user})
		if err != nil {
			t.Fatal(err)
		}
		ev := shop.PaymentEvent{ID: "evt_" + user, Type: shop.EventPaymentSucceeded, PaymentIntentID: *o.PaymentIntentID, OrderID: o.ID, AmountCents: o.AmountCents, Currency: o.Currency}
		if err := env.Shop.HandlePaymentEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.ID)
	}
	raw, err := os.ReadFile("testdata/sqs-fulfill-batch.json")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.NewReplacer("ORDER_1", ids[0], "ORDER_2", ids[1], "ORDER_3", ids[2]).Replace(string(raw))
	var batch events.SQSEvent
	if err := json.Unmarshal([]byte(body), &batch); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	env.Shop.Fault = func(step string) error {
		if step == "fulfill" && calls.Add(1) == 2 {
			return errors.New("injected: the second job fails")
		}
		return nil
	}
	fulfill := handler.Fulfill(env.Shop, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	resp, err := fulfill(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "m-2" {
		t.Fatalf("failures %+v; want only m-2", resp.BatchItemFailures)
	}
	statuses := map[string]string{}
	for _, id := range ids {
		o, err := env.Shop.GetOrder(ctx, "", true, id)
		if err != nil {
			t.Fatal(err)
		}
		statuses[id] = o.Status
	}
	if statuses[ids[0]] != shop.OrderFulfilled || statuses[ids[1]] != shop.OrderPaid || statuses[ids[2]] != shop.OrderFulfilled {
		t.Fatalf("statuses %v", statuses)
	}
	// Redelivered, the failed one is fulfilled; the others stay fulfilled once.
	resp, err = fulfill(ctx, batch)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("second delivery: %+v, %v", resp, err)
	}
	if l := env.CheckLedger(t, "batch", 10); l.Sold != 3 || l.Stock != 7 {
		t.Fatalf("ledger %+v", l)
	}
}
