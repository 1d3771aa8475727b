package shop_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"lastunit/shared/shop"
)

func TestCheckDrawSettings(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	draw := func(opens, closes, drawAt *time.Time) shop.DrawSettings {
		return shop.DrawSettings{Allocation: shop.AllocationDraw, OpensAt: opens, ClosesAt: closes, DrawAt: drawAt}
	}
	good := draw(at(time.Hour), at(2*time.Hour), at(2*time.Hour))
	started := &shop.CurrentAllocation{Allocation: shop.AllocationDraw, OpensAt: at(-time.Hour), ClosesAt: at(time.Hour), DrawAt: at(2 * time.Hour)}
	same := draw(started.OpensAt, started.ClosesAt, started.DrawAt)
	fixed := &shop.CurrentAllocation{Allocation: shop.AllocationDraw, OpensAt: at(-2 * time.Hour), ClosesAt: at(-time.Hour), DrawAt: at(time.Hour), EntriesFixed: true}
	for _, c := range []struct {
		name  string
		cur   *shop.CurrentAllocation
		in    shop.DrawSettings
		code  shop.Code
		field string
	}{
		{name: "a new draw", in: good},
		{name: "draw_at equal to closes_at", in: draw(at(time.Hour), at(2*time.Hour), at(2*time.Hour))},
		{name: "first come, allocation left out", in: shop.DrawSettings{QueueRate: 5}},
		{name: "unknown allocation", in: shop.DrawSettings{Allocation: "lottery"}, code: shop.CodeInvalidRequest, field: "allocation"},
		{name: "draw without opens_at", in: draw(nil, at(2*time.Hour), at(3*time.Hour)), code: shop.CodeInvalidRequest, field: "opens_at"},
		{name: "draw without closes_at", in: draw(at(time.Hour), nil, at(3*time.Hour)), code: shop.CodeInvalidRequest, field: "closes_at"},
		{name: "draw closing before it opens", in: draw(at(time.Hour), at(time.Hour), at(3*time.Hour)), code: shop.CodeInvalidRequest, field: "closes_at"},
		{name: "draw without draw_at", in: draw(at(time.Hour), at(2*time.Hour), nil), code: shop.CodeInvalidRequest, field: "draw_at"},
		{name: "draw_at before closes_at", in: draw(at(time.Hour), at(2*time.Hour), at(90*time.Minute)), code: shop.CodeInvalidRequest, field: "draw_at"},
		{name: "draw with a waiting room", in: shop.DrawSettings{Allocation: shop.AllocationDraw, OpensAt: at(time.Hour), ClosesAt: at(2 * time.Hour), DrawAt: at(2 * time.Hour), QueueRate: 1}, code: shop.CodeInvalidRequest, field: "queue_rate"},
		{name: "draw_at on a first-come product", in: shop.DrawSettings{DrawAt: at(time.Hour)}, code: shop.CodeInvalidRequest, field: "draw_at"},
		{name: "changing a draw before it opens", cur: &shop.CurrentAllocation{Allocation: shop.AllocationDraw, OpensAt: at(time.Minute), DrawAt: at(time.Hour)}, in: good},
		{name: "saving a started draw unchanged", cur: started, in: same},
		{name: "moving closes_at of a started draw", cur: started, in: draw(started.OpensAt, at(90*time.Minute), started.DrawAt)},
		{name: "moving opens_at of a started draw", cur: started, in: draw(at(-30*time.Minute), started.ClosesAt, started.DrawAt), code: shop.CodeInvalidState, field: "opens_at"},
		{name: "moving draw_at of a started draw", cur: started, in: draw(started.OpensAt, started.ClosesAt, at(3*time.Hour)), code: shop.CodeInvalidState, field: "draw_at"},
		{name: "a started draw back to first come", cur: started, in: shop.DrawSettings{OpensAt: started.OpensAt, ClosesAt: started.ClosesAt}, code: shop.CodeInvalidState, field: "allocation"},
		{name: "an open first-come sale made a draw", cur: &shop.CurrentAllocation{OpensAt: at(-time.Minute)}, in: draw(at(-time.Minute), at(time.Hour), at(time.Hour)), code: shop.CodeInvalidState, field: "allocation"},
		{name: "an unopened first-come sale made a draw", cur: &shop.CurrentAllocation{OpensAt: at(time.Minute)}, in: good},
		{name: "a first-come sale without a window made a draw", cur: &shop.CurrentAllocation{}, in: good},
		{name: "moving closes_at once the entries are fixed", cur: fixed, in: draw(fixed.OpensAt, at(-30*time.Minute), fixed.DrawAt), code: shop.CodeInvalidState, field: "closes_at"},
		{name: "saving a fixed draw unchanged", cur: fixed, in: draw(fixed.OpensAt, fixed.ClosesAt, fixed.DrawAt)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := shop.CheckDrawSettings(c.cur, c.in, now)
			if c.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *shop.Error
			if !errors.As(err, &e) || e.Code != c.code || e.Details["field"] != c.field {
				t.Fatalf("= %v, want %s naming %s", err, c.code, c.field)
			}
		})
	}
}

func TestCheckEntry(t *testing.T) {
	t.Parallel()
	one := shop.ProductRow{ID: "tee", MaxPerUser: 2, Variants: []shop.VariantRow{{ID: "default"}}}
	sizes := shop.ProductRow{ID: "shoe", MaxPerUser: 1, Variants: []shop.VariantRow{{ID: "us-9"}, {ID: "us-9.5"}, {ID: "us-10"}, {ID: "us-11"}, {ID: "us-12"}, {ID: "us-13"}}}
	for _, c := range []struct {
		name     string
		p        shop.ProductRow
		variants []string
		qty      int64
		want     []string
		wantQty  int64
		code     shop.Code
		field    string
	}{
		{name: "one variant, left out", p: one, want: []string{"default"}, wantQty: 1},
		{name: "one variant, named, two units", p: one, variants: []string{"default"}, qty: 2, want: []string{"default"}, wantQty: 2},
		{name: "sizes in order of preference", p: sizes, variants: []string{"us-10", "us-9.5"}, want: []string{"us-10", "us-9.5"}, wantQty: 1},
		{name: "sizes left out", p: sizes, code: shop.CodeInvalidRequest, field: "variant_ids"},
		{name: "empty list", p: sizes, variants: []string{}, code: shop.CodeInvalidRequest, field: "variant_ids"},
		{name: "six sizes", p: sizes, variants: []string{"us-9", "us-9.5", "us-10", "us-11", "us-12", "us-13"}, code: shop.CodeInvalidRequest, field: "variant_ids"},
		{name: "a size twice", p: sizes, variants: []string{"us-9", "us-9"}, code: shop.CodeInvalidRequest, field: "variant_ids"},
		{name: "a bad id", p: sizes, variants: []string{"US 9"}, code: shop.CodeInvalidRequest, field: "variant_ids"},
		{name: "an unknown size", p: sizes, variants: []string{"us-9", "us-14"}, code: shop.CodeNotFound},
		{name: "over max_per_user", p: sizes, variants: []string{"us-9"}, qty: 2, code: shop.CodeInvalidRequest, field: "quantity"},
		{name: "negative quantity", p: one, qty: -1, code: shop.CodeInvalidRequest, field: "quantity"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, qty, err := shop.CheckEntry(c.p, c.variants, c.qty)
			if c.code == "" {
				if err != nil || !reflect.DeepEqual(got, c.want) || qty != c.wantQty {
					t.Fatalf("= %v, %d, %v; want %v, %d", got, qty, err, c.want, c.wantQty)
				}
				return
			}
			var e *shop.Error
			if !errors.As(err, &e) || e.Code != c.code || (c.field != "" && e.Details["field"] != c.field) {
				t.Fatalf("= %v, want %s naming %q", err, c.code, c.field)
			}
		})
	}
}

func TestAllocate(t *testing.T) {
	t.Parallel()
	w := func(rank int64, qty int64, variants ...string) shop.Waiting {
		return shop.Waiting{Rank: rank, UserID: fmt.Sprintf("u%d", rank), VariantIDs: variants, Quantity: qty}
	}
	o := func(rank int64, v string, qty int64) shop.Offer {
		return shop.Offer{Rank: rank, UserID: fmt.Sprintf("u%d", rank), VariantID: v, Quantity: qty}
	}
	for _, c := range []struct {
		name    string
		free    map[string]int64
		waiting []shop.Waiting
		want    []shop.Offer
	}{
		{"one unit, three entries", map[string]int64{"default": 1}, []shop.Waiting{w(1, 1, "default"), w(2, 1, "default"), w(3, 1, "default")}, []shop.Offer{o(1, "default", 1)}},
		{"first preference that fits", map[string]int64{"9": 1, "10": 1}, []shop.Waiting{w(1, 1, "9", "10"), w(2, 1, "9", "10"), w(3, 1, "9", "10")}, []shop.Offer{o(1, "9", 1), o(2, "10", 1)}},
		{"a pair does not fit one unit, the next single does", map[string]int64{"9": 1}, []shop.Waiting{w(1, 2, "9"), w(2, 1, "9")}, []shop.Offer{o(2, "9", 1)}},
		{"nobody wants what is free", map[string]int64{"13": 2}, []shop.Waiting{w(1, 1, "9"), w(2, 1, "10")}, nil},
		{"nothing free", map[string]int64{"9": 0}, []shop.Waiting{w(1, 1, "9")}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := shop.Allocate(c.free, c.waiting); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("= %v, want %v", got, c.want)
			}
		})
	}
}

// TestAllocateProperties: over random draws, no unit is offered twice (free never goes below
// 0), and no entry that fits a unit left free, or a unit given to a worse-ranked entry, waits.
func TestAllocateProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	variants := []string{"a", "b", "c", "d"}
	for round := range 2000 {
		free := map[string]int64{}
		for _, v := range variants {
			free[v] = rng.Int64N(4)
		}
		stock := map[string]int64{}
		for v, n := range free {
			stock[v] = n
		}
		var waiting []shop.Waiting
		for r := range 1 + rng.IntN(12) {
			vs := slices.Clone(variants)
			rng.Shuffle(len(vs), func(i, j int) { vs[i], vs[j] = vs[j], vs[i] })
			waiting = append(waiting, shop.Waiting{Rank: int64(r + 1), UserID: fmt.Sprint(r), VariantIDs: vs[:1+rng.IntN(3)], Quantity: 1 + rng.Int64N(2)})
		}
		offers := shop.Allocate(free, waiting)
		offered := map[int64]shop.Offer{}
		used := map[string]int64{}
		for _, of := range offers {
			offered[of.Rank] = of
			used[of.VariantID] += of.Quantity
		}
		for _, v := range variants {
			if used[v] > stock[v] || free[v] != stock[v]-used[v] {
				t.Fatalf("round %d: variant %s: %d offered of %d, %d left", round, v, used[v], stock[v], free[v])
			}
		}
		// Replay in rank order: each entry's offer is its first preference free at its turn.
		left := map[string]int64{}
		for v, n := range stock {
			left[v] = n
		}
		for _, e := range waiting {
			want := ""
			for _, v := range e.VariantIDs {
				if left[v] >= e.Quantity {
					want = v
					break
				}
			}
			of, ok := offered[e.Rank]
			if (want == "") == ok || (ok && of.VariantID != want) {
				t.Fatalf("round %d: rank %d wanted %v×%d with %v left, offered %+v", round, e.Rank, e.VariantIDs, e.Quantity, left, of)
			}
			if ok {
				left[want] -= e.Quantity
			}
		}
	}
}

func TestOfferID(t *testing.T) {
	t.Parallel()
	shape := regexp.MustCompile(`^r_[a-z2-7]{24}$`)
	a, again, b, other := shop.OfferID("shoe", "alice"), shop.OfferID("shoe", "alice"), shop.OfferID("shoe", "bob"), shop.OfferID("shoe2", "alice")
	if !shape.MatchString(a) || a != again || a == b || a == other {
		t.Fatalf("OfferID: %s %s %s %s", a, again, b, other)
	}
}
