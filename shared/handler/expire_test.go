package handler_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/handler"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// TestExpireHandler drives the expire function with the event EventBridge sends: it expires
// due holds once and rebuilds a gate that Redis lost.
func TestExpireHandler(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "tick", 10, 10)
	env.Product(t, "lost", 4, 4)
	raw, err := os.ReadFile("testdata/scheduled-event.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.EventBridgeEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, q := range []int64{1, 2, 3} {
		if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "u", ProductID: "tick", Quantity: q}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Shop.Reserve(ctx, shop.ReserveRequest{UserID: "u", ProductID: "lost", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	if err := env.Redis.Del(ctx, "{p:lost}:gate").Err(); err != nil {
		t.Fatal(err)
	}
	expire := handler.Expire(env.Shop, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	env.Clock.Advance(10*time.Minute + time.Millisecond)

	rep, err := expire(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	// "lost" lost its gate: the rebuild counts from Postgres, whose hold expired just before.
	want := shop.SweepReport{Expired: 4, UnitsFreed: 6, GatesRebuilt: 1}
	if rep != want {
		t.Fatalf("sweep report %+v, want %+v", rep, want)
	}
	if l := env.CheckLedger(t, "tick", 10); l.Available != 10 {
		t.Fatalf("tick available %d", l.Available)
	}
	if l := env.CheckLedger(t, "lost", 4); l.Available != 4 {
		t.Fatalf("lost available %d", l.Available)
	}
	if rep, err := expire(ctx, ev); err != nil || rep != (shop.SweepReport{}) {
		t.Fatalf("second run: %+v, %v", rep, err)
	}
}
