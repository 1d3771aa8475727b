package testenv_test

import (
	"context"
	"testing"

	"lastunit/shared/testenv"
)

// TestTapCreateIsIdempotent: a create retried with the same Idempotency-Key (stripe-go retries
// one that timed out) gets the first intent, as from Stripe; stripe-mock alone makes another,
// and the referee of the fault storm then saw an order "paid" whose other intent never was.
func TestTapCreateIsIdempotent(t *testing.T) {
	env := testenv.NewEnv(t)
	tap := env.WithStripeTap(t)
	ctx := context.Background()
	first, _, err := env.Stripe.CreateIntent(ctx, "o_tap", 500, "usd")
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := env.Stripe.CreateIntent(ctx, "o_tap", 500, "usd")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := env.Stripe.CreateIntent(ctx, "o_other", 500, "usd")
	if err != nil {
		t.Fatal(err)
	}
	if again != first || other == first {
		t.Fatalf("intents %s, %s (same key), %s (another order): want the first two equal, the third not", first, again, other)
	}
	if n := len(tap.Intents()); n != 2 {
		t.Fatalf("the tap knows %d intents, want 2", n)
	}
}
