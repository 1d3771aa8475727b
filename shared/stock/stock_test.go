package stock_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

var ctx = context.Background()

func TestGateScripts(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	g := stock.New(rdb)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	k := stock.KeysFor("p1")

	res, err := g.Reserve(ctx, shop.GateReserve{ProductID: "p1", ID: "r1", UserID: "u", Quantity: 1, Now: now, Deadline: now.Add(time.Minute)})
	if err != nil || res.Outcome != shop.GateMissing {
		t.Fatalf("reserve without a gate: %+v, %v", res, err)
	}
	if rel, err := g.Release(ctx, shop.GateRelease{ProductID: "p1", ID: "r1", UserID: "u", IdemKey: ""}); err != nil || rel.Outcome != shop.GateMissing {
		t.Fatalf("release without a gate: %+v, %v", rel, err)
	}
	set, err := g.Rebuild(ctx, shop.GateState{ProductID: "p1", Available: 7, MaxPerUser: 3, Gen: 5, Holds: []shop.Reservation{
		{ID: "old", UserID: "u", Quantity: 2, Status: shop.StatusReserved, ExpiresAt: now.Add(-time.Second)},
	}}, now)
	if err != nil || !set {
		t.Fatalf("rebuild: %v, %v", set, err)
	}
	v0, _ := rdb.Get(ctx, k.Version).Int64()
	if v0 != stock.VersionBase(5)+1 {
		t.Fatalf("version after a rebuild from nothing under generation 5 is %d, want 5<<%d + 1 = %d", v0, stock.VersionBits, stock.VersionBase(5)+1)
	}
	if set, err := g.Rebuild(ctx, shop.GateState{ProductID: "p1", Available: 100, MaxPerUser: 3, Gen: 6}, now); err != nil || set {
		t.Fatalf("second rebuild must leave the gate: %v, %v", set, err)
	}

	tests := []struct {
		name    string
		a       shop.GateReserve
		outcome string
		check   func(t *testing.T, r shop.GateResult)
	}{
		{"over the limit with the rebuilt hold", shop.GateReserve{ID: "r1", UserID: "u", Quantity: 2}, shop.GateLimit,
			func(t *testing.T, r shop.GateResult) {
				if r.Limit != 3 {
					t.Errorf("limit %d", r.Limit)
				}
			}},
		{"more than available", shop.GateReserve{ID: "r1", UserID: "v", Quantity: 8}, shop.GateOutOfStock,
			func(t *testing.T, r shop.GateResult) {
				if r.Available != 7 {
					t.Errorf("available %d", r.Available)
				}
			}},
		{"granted", shop.GateReserve{ID: "r2", UserID: "v", Quantity: 3, IdemKey: "k", RequestHash: "h1"}, shop.GateOK,
			func(t *testing.T, r shop.GateResult) {
				if r.Available != 4 || r.Gen != 5 || r.Version != v0+1 {
					t.Errorf("got %+v; want available 4, gen 5, version %d", r, v0+1)
				}
			}},
		{"same key same request", shop.GateReserve{ID: "r3", UserID: "v", Quantity: 3, IdemKey: "k", RequestHash: "h1"}, shop.GateReplay,
			func(t *testing.T, r shop.GateResult) {
				if r.ID != "r2" {
					t.Errorf("replay of %q", r.ID)
				}
			}},
		{"same key other request", shop.GateReserve{ID: "r3", UserID: "v", Quantity: 1, IdemKey: "k", RequestHash: "h2"}, shop.GateConflict, nil},
		{"same key other user", shop.GateReserve{ID: "r4", UserID: "w", Quantity: 1, IdemKey: "k", RequestHash: "h2"}, shop.GateOK, nil},
	}
	for _, tc := range tests {
		tc.a.ProductID, tc.a.Now, tc.a.Deadline = "p1", now, now.Add(time.Minute)
		r, err := g.Reserve(ctx, tc.a)
		if err != nil || r.Outcome != tc.outcome {
			t.Fatalf("%s: %+v, %v; want %s", tc.name, r, err, tc.outcome)
		}
		if tc.check != nil {
			tc.check(t, r)
		}
	}

	due, err := g.Due(ctx, "p1", now)
	if err != nil || len(due) != 1 || !due["old"].Equal(now.Add(-time.Second).Truncate(time.Millisecond)) {
		t.Fatalf("due: %v, %v; want [old]", due, err)
	}
	// A caller that knows r2 by another deadline (it was taken again since) ends nothing.
	if rel, err := g.Release(ctx, shop.GateRelease{ProductID: "p1", ID: "r2", Deadline: now.Add(2 * time.Minute)}); err != nil || rel.Outcome != shop.GateAbsent {
		t.Fatalf("release with a stale deadline: %+v, %v", rel, err)
	}
	// Undoing r2 forgets its idempotency entry, so the key is free again.
	rel, err := g.Release(ctx, shop.GateRelease{ProductID: "p1", ID: "r2", UserID: "v", IdemKey: "k"})
	if err != nil || rel.Outcome != shop.GateReleased || rel.Quantity != 3 || rel.Available != 6 {
		t.Fatalf("release r2: %+v, %v", rel, err)
	}
	if rel, err := g.Release(ctx, shop.GateRelease{ProductID: "p1", ID: "r2", UserID: "v", IdemKey: "k"}); err != nil || rel.Outcome != shop.GateAbsent {
		t.Fatalf("second release r2: %+v, %v", rel, err)
	}
	if n, _ := rdb.Exists(ctx, stock.IdemKey("p1", "v", "k")).Result(); n != 0 {
		t.Fatal("the undone hold's idempotency entry is still there")
	}
	if r, err := g.Reserve(ctx, shop.GateReserve{ProductID: "p1", ID: "r5", UserID: "v", Quantity: 1, IdemKey: "k", RequestHash: "h2", Now: now, Deadline: now.Add(time.Minute)}); err != nil || r.Outcome != shop.GateOK {
		t.Fatalf("key after undo: %+v, %v", r, err)
	}

	avail, err := g.Available(ctx, []string{"p1", "p2"})
	if err != nil || len(avail) != 1 || avail["p1"].Total != 5 || avail["p1"].Variants["default"] != 5 {
		t.Fatalf("available: %v, %v; want p1=5 only", avail, err)
	}
	// Invalidate drops only a gate older than the generation given.
	if err := g.Invalidate(ctx, "p1", 5); err != nil {
		t.Fatal(err)
	}
	if avail, _ := g.Available(ctx, []string{"p1"}); len(avail) != 1 {
		t.Fatal("invalidate(5) dropped a gate of generation 5")
	}
	if err := g.Invalidate(ctx, "p1", 6); err != nil {
		t.Fatal(err)
	}
	if avail, _ := g.Available(ctx, []string{"p1"}); len(avail) != 0 {
		t.Fatal("invalidate(6) kept a gate of generation 5")
	}
	if _, err := g.Due(ctx, "p1", now); err != shop.ErrNotFound {
		t.Fatalf("due without a gate: %v", err)
	}
	if v, _ := rdb.Get(ctx, k.Version).Int64(); v <= v0 {
		t.Fatalf("the version must survive invalidation and only grow: %d after %d", v, v0)
	}
}

func TestKeysShareOneSlot(t *testing.T) {
	t.Parallel()
	k := stock.KeysFor("drop-1")
	for _, key := range []string{k.Gate, k.Holds, k.Deadlines, k.Users, k.Version} {
		if key[:len("{p:drop-1}")] != "{p:drop-1}" {
			t.Errorf("key %q is not hash-tagged by product", key)
		}
	}
}

func TestUnavailableRedis(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	opt := *rdb.Options()
	opt.Addr = "127.0.0.1:1" // nothing listens there
	opt.MaxRetries = -1
	down := stock.New(redis.NewClient(&opt))
	_, err := down.Reserve(ctx, shop.GateReserve{ProductID: "p1", ID: "r1", UserID: "u", Quantity: 1})
	if shop.ErrorCode(err) != shop.CodeUnavailable {
		t.Fatalf("reserve on a redis that is down: %v, want unavailable", err)
	}
}

// Two shoppers whose user id and key join to the same text ("a:b" with "c", "a" with "b:c")
// have two entries: neither is answered as a replay or a conflict of the other.
func TestIdempotencyEntriesOfUsersWithColons(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	g := stock.New(rdb)
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	if set, err := g.Rebuild(ctx, shop.GateState{ProductID: "colon", Available: 5, MaxPerUser: 5, Gen: 1}, now); err != nil || !set {
		t.Fatalf("rebuild: %v, %v", set, err)
	}
	for i, a := range []shop.GateReserve{
		{ID: "r1", UserID: "a:b", IdemKey: "c", RequestHash: "h1"},
		{ID: "r2", UserID: "a", IdemKey: "b:c", RequestHash: "h2"},
	} {
		a.ProductID, a.Quantity, a.Now, a.Deadline = "colon", 1, now, now.Add(time.Minute)
		r, err := g.Reserve(ctx, a)
		if err != nil || r.Outcome != shop.GateOK {
			t.Fatalf("reserve %d (%s, key %s): %+v, %v; want ok", i+1, a.UserID, a.IdemKey, r, err)
		}
	}
	if stock.IdemKey("colon", "a:b", "c") == stock.IdemKey("colon", "a", "b:c") {
		t.Fatal("two users' entries share a key")
	}
}
