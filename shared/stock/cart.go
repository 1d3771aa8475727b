package stock

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"lastunit/lua"
	"lastunit/shared/shop"
)

var (
	checkoutScript   = redis.NewScript(lua.Checkout)
	uncheckoutScript = redis.NewScript(lua.Uncheckout)
	retakeScript     = redis.NewScript(lua.Retake)
)

// cart numbers the distinct products of a cart in order of first appearance (1-based, as
// the cart scripts index their KEYS) and lists the keys fields picks for each, in that order.
func cart(productIDs []string, fields func(Keys) []string) (order []string, index map[string]int, keys []string) {
	index = make(map[string]int)
	for _, id := range productIDs {
		if _, ok := index[id]; !ok {
			order = append(order, id)
			index[id] = len(order)
			keys = append(keys, fields(KeysFor(id))...)
		}
	}
	return order, index, keys
}

func itemProducts(items []shop.OrderItem) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ProductID
	}
	return ids
}

func holdProducts(holds []shop.Reservation) []string {
	ids := make([]string, len(holds))
	for i, h := range holds {
		ids[i] = h.ProductID
	}
	return ids
}

// Checkout runs checkout.lua over the whole cart in one call.
func (g *Gate) Checkout(ctx context.Context, userID string, holds []shop.Reservation, now, deadline time.Time) ([]string, string, error) {
	order, index, keys := cart(holdProducts(holds), func(k Keys) []string { return []string{k.Gate, k.Holds, k.Deadlines} })
	if g.Counting { // one more key per product: its second's counts (checkout.lua)
		for _, id := range order {
			keys = append(keys, MetricKey(id, now.Unix()))
		}
	}
	args := make([]any, 0, 3+2*len(holds))
	args = append(args, userID, ms(now), ms(deadline))
	for _, h := range holds {
		args = append(args, index[h.ProductID], h.ID)
	}
	v, err := checkoutScript.Run(ctx, g.rdb, keys, args...).Slice()
	if err != nil {
		return nil, "", fmt.Errorf("run checkout.lua: %w", Translate(err))
	}
	switch lua.Str(v, 0) {
	case "ok":
		return nil, "", nil
	case "missing":
		return nil, order[lua.Int(v, 1)-1], nil
	default:
		failed := make([]string, 0, len(v)-1)
		for i := 1; i < len(v); i++ {
			failed = append(failed, lua.Str(v, i))
		}
		return failed, "", nil
	}
}

// Uncheckout puts checked-out holds back to reserved with their original deadlines.
func (g *Gate) Uncheckout(ctx context.Context, items []shop.OrderItem) error {
	if len(items) == 0 {
		return nil
	}
	_, index, keys := cart(itemProducts(items), func(k Keys) []string { return []string{k.Holds, k.Deadlines} })
	args := make([]any, 0, 3*len(items))
	for _, it := range items {
		args = append(args, index[it.ProductID], it.ReservationID, ms(it.HoldExpiresAt))
	}
	if err := uncheckoutScript.Run(ctx, g.rdb, keys, args...).Err(); err != nil {
		return fmt.Errorf("run uncheckout.lua: %w", Translate(err))
	}
	return nil
}

// Retake runs retake.lua for an order's items.
func (g *Gate) Retake(ctx context.Context, userID string, items []shop.OrderItem, deadline time.Time) (map[string]int64, string, string, error) {
	order, index, keys := cart(itemProducts(items), Keys.list)
	args := make([]any, 0, 2+4*len(items))
	args = append(args, userID, ms(deadline))
	for _, it := range items {
		vid := it.VariantID
		if vid == "" {
			vid = shop.DefaultVariant
		}
		args = append(args, index[it.ProductID], it.ReservationID, it.Quantity, vid)
	}
	v, err := retakeScript.Run(ctx, g.rdb, keys, args...).Slice()
	if err != nil {
		return nil, "", "", fmt.Errorf("run retake.lua: %w", Translate(err))
	}
	switch lua.Str(v, 0) {
	case "ok":
		gens := make(map[string]int64, len(order))
		for i, p := range order {
			gens[p] = lua.Int(v, i+1)
		}
		return gens, "", "", nil
	case "out_of_stock":
		return nil, order[lua.Int(v, 1)-1], "", nil
	default:
		return nil, "", order[lua.Int(v, 1)-1], nil
	}
}

var dropScript = redis.NewScript(lua.Drop)

// Drop forgets fulfilled holds without changing available units, recording available and
// held in the counts of the caller's second now.
func (g *Gate) Drop(ctx context.Context, holds []shop.Reservation, now time.Time) error {
	if len(holds) == 0 {
		return nil
	}
	_, index, keys := cart(holdProducts(holds), func(k Keys) []string {
		m := k.Gate // counting off: any key of the slot, never written
		if g.Counting {
			m = metricKeyOf(k, now.Unix())
		}
		return []string{k.Holds, k.Deadlines, k.Users, k.Gate, m}
	})
	args := make([]any, 0, 1+2*len(holds))
	args = append(args, g.countFlag())
	for _, h := range holds {
		args = append(args, index[h.ProductID], h.ID)
	}
	if err := dropScript.Run(ctx, g.rdb, keys, args...).Err(); err != nil {
		return fmt.Errorf("run drop.lua: %w", Translate(err))
	}
	return nil
}
