package rooms_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"lastunit/shared/rooms"
	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

var quiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

var t0 = testenv.Start

// TestTableJoinLeaveRemove: rooms and the reverse set agree, a disconnect leaves no key
// behind, and no entry outlives API Gateway's two-hour limit.
func TestTableJoinLeaveRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testenv.Redis(t)
	tab := rooms.NewTable(rdb)
	join := func(conn, product string, at time.Time) {
		t.Helper()
		if err := tab.Join(ctx, conn, product, at, at); err != nil {
			t.Fatalf("join %s %s: %v", conn, product, err)
		}
	}
	join("c1", "p1", t0)
	join("c1", "p2", t0)
	join("c2", "p1", t0.Add(time.Minute))
	join("c1", "p1", t0) // again: harmless

	members := func(p string, now time.Time) []string {
		t.Helper()
		m, err := tab.Members(ctx, p, now)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(m)
		return m
	}
	if got := members("p1", t0); !slices.Equal(got, []string{"c1", "c2"}) {
		t.Fatalf("room p1 = %v", got)
	}
	if got, _ := tab.Rooms(ctx, "c1"); len(got) != 2 {
		t.Fatalf("rooms of c1 = %v", got)
	}
	// Past c1's two hours only c2 is left in the room; past c2's nobody.
	if got := members("p1", t0.Add(rooms.MaxAge)); !slices.Equal(got, []string{"c2"}) {
		t.Fatalf("room p1 after c1's limit = %v", got)
	}
	if got := members("p1", t0.Add(rooms.MaxAge+time.Minute)); len(got) != 0 {
		t.Fatalf("room p1 after both limits = %v", got)
	}
	// Keys expire by themselves, after a relative time no longer than the connection's limit
	// (judged by Redis's own clock, whatever the test's clock says).
	for _, k := range []string{rooms.RoomKey("p1"), rooms.RoomKey("p2"), rooms.ConnKey("c1"), rooms.ConnKey("c2")} {
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 {
			t.Fatalf("%s has no expiry: %v %v", k, ttl, err)
		}
		if ttl > rooms.MaxAge+time.Second {
			t.Fatalf("%s lives %v, past the two-hour limit", k, ttl)
		}
	}

	if err := tab.Leave(ctx, "c1", "p2"); err != nil {
		t.Fatal(err)
	}
	if got := members("p2", t0); len(got) != 0 {
		t.Fatalf("room p2 after leave = %v", got)
	}
	n, err := tab.Remove(ctx, "c1")
	if err != nil || n != 1 {
		t.Fatalf("remove c1: %d %v", n, err)
	}
	if got := members("p1", t0); !slices.Equal(got, []string{"c2"}) {
		t.Fatalf("room p1 after c1's disconnect = %v", got)
	}
	if n, _ := rdb.Exists(ctx, rooms.ConnKey("c1")).Result(); n != 0 {
		t.Fatal("c1's reverse entry outlived its disconnect")
	}
	if _, err := tab.Remove(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	if keys, _ := rdb.Keys(ctx, "*:room*").Result(); len(keys) != 0 {
		t.Fatalf("keys left after every connection left: %v", keys)
	}
	// A subscribe API Gateway delivers after the $disconnect does not put c2 back.
	if err := tab.Join(ctx, "c2", "p1", t0, t0); err != nil {
		t.Fatal(err)
	}
	if got := members("p1", t0); len(got) != 0 {
		t.Fatalf("a late subscribe put a closed connection back: %v", got)
	}
	// A connection past its limit cannot join.
	if err := tab.Join(ctx, "c3", "p1", t0, t0.Add(rooms.MaxAge)); err == nil {
		t.Fatal("a connection older than two hours joined")
	}
}

// TestTableRoomLimit: one connection follows at most MaxRooms products; re-joining one of
// them is still fine.
func TestTableRoomLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tab := rooms.NewTable(testenv.Redis(t))
	for i := range rooms.MaxRooms {
		if err := tab.Join(ctx, "c", "p"+string(rune('a'+i%26))+string(rune('a'+i/26)), t0, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab.Join(ctx, "c", "one-too-many", t0, t0); !errors.Is(err, rooms.ErrTooManyRooms) || shop.ErrorCode(err) != shop.CodeInvalidRequest {
		t.Fatalf("join past the limit: %v", err)
	}
	if err := tab.Join(ctx, "c", "paa", t0, t0); err != nil {
		t.Fatalf("re-join at the limit: %v", err)
	}
}

// TestJoinExpiriesAreRightOnAnyDate: the table's keys live for the connection's remaining
// time, whatever date the caller's clock says (the tests' clock is pinned to a fixed date;
// Redis judges absolute expiries by its own clock).
func TestJoinExpiriesAreRightOnAnyDate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		at      time.Time
		elapsed time.Duration // since the connection opened
	}{
		{"long ago", time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{"the tests' clock", t0, 30 * time.Minute},
		{"far ahead", time.Date(2099, 6, 1, 0, 0, 0, 0, time.UTC), 90 * time.Minute},
		{"real now", time.Now(), time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := testenv.Redis(t)
			tab := rooms.NewTable(rdb)
			if err := tab.Join(ctx, "c", "p", tc.at, tc.at.Add(tc.elapsed)); err != nil {
				t.Fatal(err)
			}
			left := rooms.MaxAge - tc.elapsed
			for _, k := range []string{rooms.RoomKey("p"), rooms.ConnKey("c")} {
				ttl, err := rdb.PTTL(ctx, k).Result()
				if err != nil {
					t.Fatal(err)
				}
				if ttl < left-time.Minute || ttl > left+time.Second {
					t.Fatalf("%s lives %v, want about %v", k, ttl, left)
				}
			}
			if m, err := tab.Members(ctx, "p", tc.at.Add(tc.elapsed)); err != nil || !slices.Equal(m, []string{"c"}) {
				t.Fatalf("members = %v, %v", m, err)
			}
		})
	}
}

// TestRemoveRacingJoinLeavesNoOrphan: a disconnect racing subscribes of the same connection
// never leaves a room member whose connection set forgot it (it would get messages for up to
// two hours); and the room limit holds when many joins of one connection race.
func TestRemoveRacingJoinLeavesNoOrphan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testenv.Redis(t)
	tab := rooms.NewTable(rdb)
	const conns, products = 40, 8
	var wg sync.WaitGroup
	for c := range conns {
		conn := "c" + string(rune('A'+c%26)) + string(rune('a'+c/26))
		for p := range products {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := tab.Join(ctx, conn, "p"+string(rune('a'+p)), t0, t0); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := tab.Remove(ctx, conn); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	orphans := 0
	for p := range products {
		id := "p" + string(rune('a'+p))
		members, err := tab.Members(ctx, id, t0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			in, err := rdb.SIsMember(ctx, rooms.ConnKey(m), id).Result()
			if err != nil {
				t.Fatal(err)
			}
			if !in {
				orphans++
			}
		}
	}
	if orphans > 0 {
		t.Fatalf("%d room members outlived their connection's removal", orphans)
	}

	// 200 joins of one connection to different products at once: exactly MaxRooms succeed.
	var mu sync.Mutex
	joined, tooMany := 0, 0
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := tab.Join(ctx, "limit", "q"+string(rune('a'+i%26))+string(rune('a'+i/26)), t0, t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				joined++
			case errors.Is(err, rooms.ErrTooManyRooms):
				tooMany++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n, _ := rdb.SCard(ctx, rooms.ConnKey("limit")).Result(); joined != rooms.MaxRooms || tooMany != 200-rooms.MaxRooms || n != rooms.MaxRooms {
		t.Fatalf("racing joins: %d joined, %d refused, set of %d; want %d joined", joined, tooMany, n, rooms.MaxRooms)
	}
}

// fakePoster records posts; connections in gone answer GoneException.
type fakePoster struct {
	mu    sync.Mutex
	posts map[string][]rooms.Stock
	gone  map[string]bool
	block chan struct{}
}

func newFakePoster() *fakePoster {
	return &fakePoster{posts: map[string][]rooms.Stock{}, gone: map[string]bool{}}
}

func (f *fakePoster) Post(ctx context.Context, conn string, data []byte) error {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone[conn] {
		return rooms.ErrGone
	}
	var m rooms.Stock
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	f.posts[conn] = append(f.posts[conn], m)
	return nil
}

func (f *fakePoster) got(conn string) []rooms.Stock {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.posts[conn])
}

// fakeTime is a clock whose Sleep moves it.
type fakeTime struct {
	mu    sync.Mutex
	now   time.Time
	slept time.Duration
}

func (c *fakeTime) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeTime) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now, c.slept = c.now.Add(d), c.slept+d
	return nil
}
func (c *fakeTime) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

func reserve(t *testing.T, env *testenv.Env, product string, qty int64) int64 {
	t.Helper()
	r, err := env.Shop.Reserve(context.Background(), shop.ReserveRequest{UserID: "u", ProductID: product, Quantity: qty})
	if err != nil {
		t.Fatalf("reserve %s: %v", product, err)
	}
	return r.Available
}

// TestBroadcastOnlyTheRoomAndRemovesGone: a product's value reaches exactly the connections
// in its room, with the version the gate has; a connection that answers GoneException
// leaves every room; viewers of other products get nothing.
func TestBroadcastOnlyTheRoomAndRemovesGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t)
	env.Product(t, "p1", 10, 10)
	env.Product(t, "p2", 10, 10)
	clock := &fakeTime{now: t0}
	post := newFakePoster()
	b := rooms.NewBroadcaster(env.Redis, post, quiet)
	b.Now, b.Sleep = clock.Now, clock.Sleep
	tab := b.Table
	for _, j := range []struct{ conn, product string }{{"a1", "p1"}, {"a2", "p1"}, {"gone", "p1"}, {"gone", "p2"}, {"b1", "p2"}} {
		if err := tab.Join(ctx, j.conn, j.product, t0, t0); err != nil {
			t.Fatal(err)
		}
	}
	post.gone["gone"] = true
	avail := reserve(t, env, "p1", 3)
	res := b.Broadcast(ctx, []string{"p1"})
	if len(res) != 1 || res[0].Outcome != "sent" || res[0].Sent != 2 || res[0].Gone != 1 || res[0].Viewers != 3 || res[0].Err != nil {
		t.Fatalf("broadcast: %+v", res)
	}
	ver, _ := env.Redis.Get(ctx, stock.KeysFor("p1").Version).Int64()
	want := rooms.NewStock("p1", avail, ver, map[string]int64{"default": avail})
	for _, c := range []string{"a1", "a2"} {
		if got := post.got(c); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Fatalf("%s got %+v, want %+v", c, got, want)
		}
	}
	if got := post.got("b1"); len(got) != 0 {
		t.Fatalf("a viewer of p2 got p1's messages: %+v", got)
	}
	for _, p := range []string{"p1", "p2"} {
		if m, _ := tab.Members(ctx, p, t0); slices.Contains(m, "gone") {
			t.Fatalf("the gone connection is still in %s: %v", p, m)
		}
	}
	if n, _ := env.Redis.Exists(ctx, rooms.ConnKey("gone")).Result(); n != 0 {
		t.Fatal("the gone connection's reverse entry is left")
	}
}

// TestBroadcastCoalesces: a version is broadcast once however many notices name it; a newer
// one within MinInterval waits out the interval and then goes out with the latest value; a
// product without a gate is skipped.
func TestBroadcastCoalesces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t)
	env.Product(t, "p1", 100, 100)
	clock := &fakeTime{now: t0}
	post := newFakePoster()
	b := rooms.NewBroadcaster(env.Redis, post, quiet)
	b.Now, b.Sleep = clock.Now, clock.Sleep
	if err := b.Table.Join(ctx, "v", "p1", t0, t0); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		change  int64 // units reserved before the broadcast
		advance time.Duration
		outcome string
		slept   bool
	}{
		{"first change goes out at once", 1, 0, "sent", false},
		{"same version again is skipped", 0, 10 * time.Millisecond, "skipped", false},
		{"a newer version right after waits out the interval", 2, 0, "sent", true},
		{"after the interval, at once", 1, time.Second, "sent", false},
	}
	var last int64
	for _, c := range cases {
		if c.change > 0 {
			last = reserve(t, env, "p1", c.change)
		}
		clock.Advance(c.advance)
		before := clock.slept
		res := b.Broadcast(ctx, []string{"p1"})[0]
		if res.Outcome != c.outcome || (clock.slept > before) != c.slept {
			t.Fatalf("%s: %+v, slept %v", c.name, res, clock.slept-before)
		}
		if c.slept && clock.slept-before > b.MinInterval {
			t.Fatalf("%s: waited %v, more than the interval", c.name, clock.slept-before)
		}
	}
	got := post.got("v")
	if len(got) != 3 || got[2].Available != last || !(got[0].Version < got[1].Version && got[1].Version < got[2].Version) {
		t.Fatalf("viewer got %+v", got)
	}
	// No gate (dropped for a rebuild): nothing is sent, no error.
	env.Redis.Del(ctx, stock.KeysFor("p1").Gate)
	if res := b.Broadcast(ctx, []string{"p1"})[0]; res.Outcome != "missing" || res.Err != nil {
		t.Fatalf("broadcast without a gate: %+v", res)
	}
}

// TestBroadcastParallelBound: no more than Parallel posts are in flight at once.
func TestBroadcastParallelBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t)
	env.Product(t, "p1", 10, 10)
	var mu sync.Mutex
	inflight, peak := 0, 0
	counting := posterFunc(func(ctx context.Context, conn string, data []byte) error {
		mu.Lock()
		inflight++
		peak = max(peak, inflight)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		inflight--
		mu.Unlock()
		return nil
	})
	b := rooms.NewBroadcaster(env.Redis, counting, quiet)
	b.Parallel = 4
	for i := range 40 {
		if err := b.Table.Join(ctx, "c"+string(rune('A'+i)), "p1", time.Now(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	res := b.Broadcast(ctx, []string{"p1"})[0]
	if res.Sent != 40 || peak > 4 || peak < 2 {
		t.Fatalf("sent %d with a peak of %d in flight (bound 4)", res.Sent, peak)
	}
}

type posterFunc func(ctx context.Context, conn string, data []byte) error

func (f posterFunc) Post(ctx context.Context, conn string, data []byte) error {
	return f(ctx, conn, data)
}

// TestBroadcastRedisDown: an unreadable value fails the product (its notices come back).
func TestBroadcastRedisDown(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	b := rooms.NewBroadcaster(rdb, newFakePoster(), quiet)
	rdb.Close()
	res := b.Broadcast(context.Background(), []string{"p1"})[0]
	if res.Outcome != "failed" || res.Err == nil || shop.ErrorCode(res.Err) != shop.CodeUnavailable {
		t.Fatalf("broadcast with Redis closed: %+v", res)
	}
}

// TestSnapshotReadsValueAndVersionTogether: the snapshot is the gate's available with the
// version of the same moment, and says when there is no gate.
func TestSnapshotReadsValueAndVersionTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t)
	tab := rooms.NewTable(env.Redis)
	if _, ok, err := tab.Snapshot(ctx, "p1"); ok || err != nil {
		t.Fatalf("snapshot of an unknown product: %v %v", ok, err)
	}
	env.Product(t, "p1", 10, 10)
	avail := reserve(t, env, "p1", 4)
	m, ok, err := tab.Snapshot(ctx, "p1")
	ver, _ := env.Redis.Get(ctx, stock.KeysFor("p1").Version).Int64()
	if !ok || err != nil || !reflect.DeepEqual(m, rooms.NewStock("p1", avail, ver, map[string]int64{"default": avail})) || avail != 6 {
		t.Fatalf("snapshot %+v %v %v, want available %d version %d", m, ok, err, avail, ver)
	}
}
