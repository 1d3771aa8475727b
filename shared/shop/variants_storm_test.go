package shop_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"lastunit/shared/rooms"
	"lastunit/shared/shop"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

// missSizeReserves is the storm's missReserves for a product in sizes: the gate becomes the
// replica that missed its last n reserves, their units back in their own size's count and the
// total, while Postgres has the holds.
var missSizeReserves = redis.NewScript(`
local vs = redis.call('HGET', KEYS[1], 'vs')
if not vs then return 0 end
local n = 0
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1)) do
  local h = redis.call('HGET', KEYS[2], id)
  local qty, dl, state, vid, user
  if h then qty, dl, state, vid, user = string.match(h, '^(%d+):(%d+):([%a_]+)/?([%w%._%-]*):(.*)$') end
  if state == 'reserved' then
    if vid == '' then vid = 'default' end
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    if redis.call('HINCRBY', KEYS[4], user, -tonumber(qty)) <= 0 then redis.call('HDEL', KEYS[4], user) end
    if string.find(vs, ',', 1, true) then redis.call('HINCRBY', KEYS[1], 'v:' .. vid, tonumber(qty)) end
    redis.call('HINCRBY', KEYS[1], 'avail', tonumber(qty))
    redis.call('DECR', KEYS[5])
    n = n + 1
  end
end
return n`)

// sizesFault is redisFault for the product in sizes, with a missed-reserves failover that
// knows sizes (redisFault's own skips sized holds).
func (s *storm) sizesFault(rng *rand.Rand) {
	if rng.IntN(6) > 0 {
		s.redisFault(rng)
		return
	}
	k := stock.KeysFor(s.products[0])
	missed, err := missSizeReserves.Run(ctx, s.env.Redis, []string{k.Gate, k.Holds, k.Deadlines, k.Users, k.Version}, 1+rng.IntN(3)).Int()
	if err != nil {
		s.t.Errorf("fail over to a replica that missed reserves: %v", err)
	}
	if missed > 0 {
		s.count("fault missed sized reserves")
	}
}

// sizesShopper is a shopper of a product in sizes with "one pair per customer": it tries two
// sizes at once (two concurrent reserves, some with an Idempotency-Key), then releases, checks
// out and pays (on time, twice, never, or late), or lets the holds run out, ops times or until
// the wall-clock bound.
func (s *storm) sizesShopper(user string, rng *rand.Rand, sizes, ops int, until time.Time) {
	product := s.products[0]
	var unpaid []shop.Order
	for i := 0; i < ops && time.Now().Before(until); i++ {
		time.Sleep(time.Duration(rng.IntN(8)) * time.Millisecond)
		if len(unpaid) > 0 && rng.IntN(10) == 0 {
			// Pays an order it left unpaid, maybe past its deadline: a late payment.
			unpaid = s.payLate(rng, unpaid)
			continue
		}
		a, b := rng.IntN(sizes), rng.IntN(sizes-1)
		if b >= a {
			b++
		}
		var got []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for j, size := range []int{a, b} {
			req := shop.ReserveRequest{UserID: user, ProductID: product, VariantID: fmt.Sprintf("us-%d", size+1), Quantity: 1}
			if rng.IntN(3) == 0 {
				req.IdemKey = fmt.Sprintf("k-%s-%d-%d", user, i, j)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := s.env.Shop.Reserve(ctx, req)
				s.answer("reserve", err)
				if err == nil {
					mu.Lock()
					got = append(got, r.ID)
					mu.Unlock()
					s.mu.Lock()
					s.granted = append(s.granted, r.ID)
					s.mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(got) == 0 {
			continue
		}
		switch n := rng.IntN(10); {
		case n < 4:
			for _, id := range got {
				s.released.Store(id, true)
				s.answer("release", s.env.Shop.Release(ctx, user, id))
			}
		case n < 8:
			o, err := s.env.Shop.Checkout(ctx, shop.CheckoutRequest{UserID: user, ReservationIDs: got})
			s.answer("checkout", err)
			if err != nil || o.PaymentIntentID == nil {
				continue
			}
			if rng.IntN(4) == 0 {
				unpaid = append(unpaid, o) // the deadline ends it, unless paid late
				continue
			}
			s.payOnTime(rng, o)
		default: // left to run out
		}
	}
}

// TestFaultStormVariants is TestFaultStorm's variant case: one product in 12 sizes, 3 units
// each, max_per_user 1, shoppers trying two sizes at once, against per-size restocks, expiry
// sweeps and a moving clock, Redis failovers (to older copies, and to a replica that missed
// reserves), FLUSHDB, and process deaths between steps, refereed while it runs as
// TestFaultStorm is, and per size too (no size ever holds more than its stock in Postgres).
// Afterwards, per size and per shopper: Redis and Postgres agree (available, holds, slots,
// per-shopper counts), nobody holds or bought more than one unit, every unit is accounted for,
// every hold answered 201 is in Postgres, and every charge ended. STORM_SEED replays the dice.
func TestFaultStormVariants(t *testing.T) {
	t.Parallel()
	seed := stormSeed(t)
	env := testenv.NewEnv(t).WithPayments(t)
	tap := env.WithStripeTap(t)
	env.Shop.ReconcileBatch = 10
	const sizes, perSize = 12, 3
	s := &storm{t: t, env: env, tap: tap, products: []string{"sizes"}, stock0: map[string]int64{"sizes": sizes * perSize},
		rng: rand.New(rand.NewPCG(seed, 0)), copies: map[string][]testenv.GateCopy{}}
	env.ProductInSizes(t, "sizes", 1, testenv.Sizes(sizes, perSize))
	s.restocked.Store("sizes", new(atomic.Int64))
	perVariant := make([]atomic.Int64, sizes) // what restocks added, per size
	env.Shop.Fault = s.fault
	s.dying = true

	// A sampler of every size's count in single Postgres snapshots: never more held than stock.
	sampleSizes := func(stop <-chan struct{}) {
		for {
			rows, err := env.Pool.Query(ctx, `SELECT v.id, v.stock,
				COALESCE((SELECT sum(quantity) FROM reservations r WHERE r.product_id = v.product_id AND r.variant_id = v.id
					AND r.status IN ('reserved', 'checked_out')), 0),
				COALESCE((SELECT sum(free) FROM product_slots p WHERE p.product_id = v.product_id AND p.variant_id = v.id), 0)
				FROM product_variants v WHERE v.product_id = 'sizes'`)
			if err != nil {
				t.Errorf("sample sizes: %v", err)
				return
			}
			for rows.Next() {
				var id string
				var stock, held, free int64
				if err := rows.Scan(&id, &stock, &held, &free); err != nil {
					t.Errorf("sample sizes: %v", err)
					return
				}
				s.count("size sample")
				if held > stock || free < 0 || free+held != stock {
					s.count("size sample violated")
					s.violated("postgres snapshot of size %s: stock %d, held %d, free %d", id, stock, held, free)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
		}
	}
	restockSize := func(rng *rand.Rand) {
		k := rng.IntN(sizes)
		d := int64(rng.IntN(5) - 2)
		_, err := env.Shop.RestockVariant(ctx, "sizes", fmt.Sprintf("us-%d", k+1), d)
		if err == nil {
			perVariant[k].Add(d)
			v, _ := s.restocked.Load("sizes")
			v.(*atomic.Int64).Add(d)
		}
		s.answer("restock", err)
	}

	const shoppers, ops = 40, 300
	until := time.Now().Add(20 * time.Second)
	stop := make(chan struct{})
	var bg sync.WaitGroup
	var seen map[string]int64
	exp := &expiry{s: s}
	bg.Add(6)
	go func() { defer bg.Done(); every(rand.New(rand.NewPCG(seed, 1)), stop, s.sizesFault) }()
	go func() { defer bg.Done(); every(rand.New(rand.NewPCG(seed, 2)), stop, restockSize) }()
	go func() { defer bg.Done(); every(rand.New(rand.NewPCG(seed, 3)), stop, exp.step) }()
	go func() { defer bg.Done(); s.sample(stop) }()
	go func() { defer bg.Done(); sampleSizes(stop) }()
	go func() { defer bg.Done(); seen, _ = s.watch(stop) }()
	hammer(shoppers, func(i int) {
		s.sizesShopper(fmt.Sprintf("shopper%d", i), rand.New(rand.NewPCG(seed, uint64(10+i))), sizes, ops, until)
	})
	close(stop)
	bg.Wait()

	s.quiesce()

	v, _ := s.restocked.Load("sizes")
	l := env.CheckLedger(t, "sizes", s.stock0["sizes"]+v.(*atomic.Int64).Load())
	if l.HeldPG != 0 || l.Available != l.Stock {
		t.Errorf("after every deadline: held %d, available %d of %d", l.HeldPG, l.Available, l.Stock)
	}
	ls := env.CheckVariants(t, "sizes") // also: nobody holds or bought more than max_per_user (1)
	for k := range sizes {
		id := fmt.Sprintf("us-%d", k+1)
		if got := ls[id]; got.Stock+got.Sold != perSize+perVariant[k].Load() {
			t.Errorf("size %s: stock %d + sold %d != %d units ever had", id, got.Stock, got.Sold, perSize+perVariant[k].Load())
		}
	}
	m, ok, err := rooms.NewTable(env.Redis).Snapshot(ctx, "sizes")
	if err != nil || !ok || m.Version < seen["sizes"] || len(m.Variants) != sizes {
		t.Errorf("final stock message %+v (%v, %v); highest version seen %d", m, ok, err, seen["sizes"])
	}
	s.sampleGranted()
	s.sampleLimits()
	charged := s.checkCharges()
	var unavailable int64
	s.counts.Range(func(k, v any) bool {
		if strings.HasSuffix(k.(string), " "+string(shop.CodeUnavailable)) {
			unavailable += v.(*atomic.Int64).Load()
		}
		return true
	})
	if answers := s.answers.Load(); float64(unavailable) > 0.02*float64(answers) {
		t.Errorf("%d of %d answers were unavailable, over 2%%", unavailable, answers)
	}
	var report []string
	s.counts.Range(func(k, v any) bool {
		report = append(report, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	slices.Sort(report)
	t.Logf("seed %d: %d holds granted, %d payments succeeded; %v", seed, len(s.granted), charged, report)
}
