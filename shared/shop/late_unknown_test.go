package shop_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

// answerLost is Postgres whose connection fails around RetakeOrder's COMMIT: with committed,
// the COMMIT goes through and only its answer is lost; without, the transaction rolls back
// after the gate took the units, and the caller cannot tell which.
type answerLost struct {
	shop.Store
	committed bool
}

func (s answerLost) RetakeOrder(ctx context.Context, orderID string, deadline, now time.Time, take func() (map[string]int64, string, error)) (shop.RetakeResult, error) {
	lost := fmt.Errorf("retake order: commit: %w: injected: connection reset", shop.ErrMaybeWritten)
	if s.committed {
		res, err := s.Store.RetakeOrder(ctx, orderID, deadline, now, take)
		if err != nil || res.Outcome != shop.RetakeDone {
			return res, fmt.Errorf("setup: the retake did not commit: %+v, %v", res, err)
		}
		return res, lost
	}
	injected := errors.New("injected: rolled back")
	res, err := s.Store.RetakeOrder(ctx, orderID, deadline, now, func() (map[string]int64, string, error) {
		gens, short, err := take()
		if err != nil || short != "" {
			return gens, short, err
		}
		return nil, "", injected // the gate took the units; Postgres never commits
	})
	if !errors.Is(err, injected) {
		return res, fmt.Errorf("setup: %+v, %v", res, err)
	}
	return shop.RetakeResult{Took: true}, lost
}

// A late payment whose retake commit has an unknown outcome keeps its units (giving them back
// could oversell a paid order), and either way ends consistent: Stripe's retry or the sweep
// settles it.
func TestLatePaymentWithUnknownCommitNeverOversells(t *testing.T) {
	t.Parallel()
	for _, committed := range []bool{true, false} {
		t.Run(fmt.Sprintf("committed=%v", committed), func(t *testing.T) {
			t.Parallel()
			env := testenv.NewEnv(t).WithPayments(t)
			env.Product(t, "lu", 3, 3)
			o := lapsedOrder(t, env, "alice", "lu", "lu")
			real := env.Shop.Store
			env.Shop.Store = answerLost{Store: real, committed: committed}
			ev := succeeded(o, "evt_lu")
			if err := env.Shop.HandlePaymentEvent(ctx, ev); !errors.Is(err, shop.ErrMaybeWritten) {
				t.Fatalf("late payment with the commit answer lost: %v, want ErrMaybeWritten (Stripe retries)", err)
			}
			env.Shop.Store = real
			l := env.ReadLedger(t, "lu")
			if l.Available != 1 || len(l.HoldsRedis) != 2 {
				t.Fatalf("after the unknown outcome: available %d, %d gate holds; want the 2 units kept", l.Available, len(l.HoldsRedis))
			}
			if committed {
				if st := orderStatus(t, env, o.ID); st != shop.OrderPaid {
					t.Fatalf("order %s", st)
				}
				env.CheckLedger(t, "lu", 3) // the paid order holds its units in both stores
			}
			// Nothing more arrives from Stripe: past the retake's deadline, the sweep settles it.
			env.Clock.Advance(env.Shop.PaymentWindow + env.Shop.FulfillDeadline + time.Minute)
			rep, err := env.Shop.Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			l = env.CheckLedger(t, "lu", 3)
			if committed {
				if l.Available != 1 || l.HeldPG != 2 || rep.StalePaid != 1 {
					t.Fatalf("paid order after the sweep: %+v, %+v; want its 2 units held and a failed job", l, rep)
				}
			} else if l.Available != 3 || rep.UnitsFreed != 2 {
				t.Fatalf("unpaid order after the sweep: %+v, %+v; want the 2 units back once", l, rep)
			}
			// Stripe's retry of the event: the paid order is fulfilled; the expired one takes its
			// units again now that they are free.
			if err := env.Shop.HandlePaymentEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
			if st := orderStatus(t, env, o.ID); st != shop.OrderPaid {
				t.Fatalf("after Stripe's retry the order is %s", st)
			}
			if err := env.Shop.Fulfill(ctx, o.ID, 1); err != nil {
				t.Fatal(err)
			}
			if l := env.CheckLedger(t, "lu", 3); l.Sold != 2 || l.Available != 1 || l.HeldPG != 0 {
				t.Fatalf("after fulfilment: %+v", l)
			}
		})
	}
}
