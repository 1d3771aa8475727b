// Package stock is the Redis gate in front of Postgres: per product, the units reservable
// now, the live holds with their deadlines, the per-user held counts and a version. Every
// change is one Lua script (lua/*.lua), run with EVALSHA and an EVAL fallback, and every
// key of a product carries the hash tag {p:ID} so that one script touches one cluster slot.
package stock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"lastunit/lua"
	"lastunit/shared/shop"
)

var (
	reserveScript    = redis.NewScript(lua.Reserve)
	offerScript      = redis.NewScript(lua.Offer)
	releaseScript    = redis.NewScript(lua.Release)
	invalidateScript = redis.NewScript(lua.Invalidate)
)

// Gate implements shop.Gate on a Redis client.
type Gate struct {
	rdb redis.UniversalClient
	// IdemTTL is how long an Idempotency-Key entry lives (24 h by default).
	IdemTTL time.Duration
	// Counting turns the control room's per-second counts on (lua/metric.lua; on by default).
	// Off, the scripts count nothing and GET …/live reads zeros: the benchmarks compare both.
	Counting bool
}

var _ shop.Gate = (*Gate)(nil)

// New returns a Gate on rdb.
func New(rdb redis.UniversalClient) *Gate {
	return &Gate{rdb: rdb, IdemTTL: 24 * time.Hour, Counting: true}
}

// Keys are the Redis keys of one product's gate.
type Keys struct {
	Gate, Holds, Deadlines, Users, Version string
}

// KeysFor returns the keys of product id, all in the slot of the hash tag {p:id}.
func KeysFor(id string) Keys {
	p := "{p:" + id + "}:"
	return Keys{Gate: p + "gate", Holds: p + "holds", Deadlines: p + "dl", Users: p + "users", Version: p + "ver"}
}

func (k Keys) list() []string { return []string{k.Gate, k.Holds, k.Deadlines, k.Users, k.Version} }

// IdemKey is the key of a user's Idempotency-Key entry for a product; with no key, a key of
// the same slot that is never written. The user id's length comes first, so that no user id
// or key (either may contain ':') can make two users' entries one.
func IdemKey(productID, userID, key string) string {
	if key == "" {
		return "{p:" + productID + "}:noidem"
	}
	return "{p:" + productID + "}:idem:" + strconv.Itoa(len(userID)) + ":" + userID + ":" + key
}

// productKeys are the keys of one product that every reserve passes to reserve.lua, built
// once: KeysFor(id).list() then QueueKeys(id) in list, and IdemKey(id, _, "").
type productKeys struct {
	list   []string
	noIdem string
}

// reserveKeys caches productKeys by product id, for at most maxCachedProducts products
// (past that, keys are built per call, as before the cache).
var reserveKeys struct {
	m sync.Map // product id → *productKeys
	n atomic.Int64
}

const maxCachedProducts = 4096

func productKeysOf(id string) *productKeys {
	if v, ok := reserveKeys.m.Load(id); ok {
		return v.(*productKeys)
	}
	pk := &productKeys{list: append(KeysFor(id).list(), QueueKeys(id)...), noIdem: IdemKey(id, "", "")}
	if reserveKeys.n.Load() < maxCachedProducts {
		if _, loaded := reserveKeys.m.LoadOrStore(id, pk); !loaded {
			reserveKeys.n.Add(1)
		}
	}
	return pk
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// Reserve runs reserve.lua for one hold.
func (g *Gate) Reserve(ctx context.Context, a shop.GateReserve) (shop.GateResult, error) {
	pk := productKeysOf(a.ProductID)
	keys := make([]string, 0, 12)
	keys = append(keys, pk.list[:5]...) // KeysFor(a.ProductID).list()
	if a.IdemKey == "" {
		keys = append(keys, pk.noIdem)
	} else {
		keys = append(keys, IdemKey(a.ProductID, a.UserID, a.IdemKey))
	}
	keys = append(keys, pk.list[5:]...) // QueueKeys(a.ProductID)
	keys = append(keys, BucketKey(a.UserID), MetricKey(a.ProductID, a.Now.Unix()))
	charge := "0"
	if a.Charge {
		charge = "1"
	}
	v, err := reserveScript.Run(ctx, g.rdb, keys, a.ID, a.UserID, a.Quantity, ms(a.Deadline), a.RequestHash, g.IdemTTL.Milliseconds(),
		ms(a.Now), a.Seed, a.AdmissionWindow.Milliseconds(), a.ShopperRate, a.ShopperBurst, charge, a.VariantID,
		g.countFlag(), latencyArg(a.Latencies)).Slice()
	if err != nil {
		return shop.GateResult{}, fmt.Errorf("run reserve.lua: %w", Translate(err))
	}
	r := shop.GateResult{Outcome: lua.Str(v, 0)}
	switch r.Outcome {
	case shop.GateOK:
		r.Available, r.Gen, r.Version, r.VariantID = lua.Int(v, 1), lua.Int(v, 2), lua.Int(v, 3), lua.Str(v, 4)
	case shop.GateReplay:
		r.ID = lua.Str(v, 1)
	case shop.GateOutOfStock:
		r.Available = lua.Int(v, 1)
	case shop.GateLimit:
		r.Limit = lua.Int(v, 1)
	case shop.GateRateLimited:
		r.Wait = time.Duration(lua.Int(v, 1)) * time.Millisecond
	case shop.GateNotOpen:
		r.Which = lua.Str(v, 1)
	case shop.GateNotAdmitted:
		r.Ahead = lua.Int(v, 1)
	}
	return r, nil
}

var _ shop.DrawGate = (*Gate)(nil)

// Offer runs offer.lua: one draw offer, a hold taken without the sale window, the waiting room
// or the rate, at most once per offer id.
func (g *Gate) Offer(ctx context.Context, o shop.GateOffer) (shop.GateResult, error) {
	v, err := offerScript.Run(ctx, g.rdb, KeysFor(o.ProductID).list(), o.ID, o.UserID, o.Quantity, ms(o.Deadline), o.VariantID).Slice()
	if err != nil {
		return shop.GateResult{}, fmt.Errorf("run offer.lua: %w", Translate(err))
	}
	r := shop.GateResult{Outcome: lua.Str(v, 0), VariantID: o.VariantID}
	switch r.Outcome {
	case shop.GateOK:
		r.Available, r.Gen, r.Version = lua.Int(v, 1), lua.Int(v, 2), lua.Int(v, 3)
	case shop.GateReplay:
		r.Gen = lua.Int(v, 1)
	case shop.GateOutOfStock:
		r.Available = lua.Int(v, 1)
	case shop.GateLimit:
		r.Limit = lua.Int(v, 1)
	}
	return r, nil
}

// Release runs release.lua for one hold.
func (g *Gate) Release(ctx context.Context, r shop.GateRelease) (shop.GateResult, error) {
	k := KeysFor(r.ProductID)
	keys := append(k.list(), IdemKey(r.ProductID, r.UserID, r.IdemKey))
	count, at := "", k.Gate // counting off: any key of the slot, never written
	if g.Counting && r.Count != "" && !r.At.IsZero() {
		count, at = r.Count, MetricKey(r.ProductID, r.At.Unix())
	}
	keys = append(keys, at)
	forget, deadline, fromReserved := "0", "", "0"
	if r.IdemKey != "" {
		forget = "1"
	}
	if r.FromReserved {
		fromReserved = "1"
	}
	if !r.Deadline.IsZero() {
		deadline = strconv.FormatInt(ms(r.Deadline), 10)
	}
	v, err := releaseScript.Run(ctx, g.rdb, keys, r.ID, forget, deadline, fromReserved, count).Slice()
	if err != nil {
		return shop.GateResult{}, fmt.Errorf("run release.lua: %w", Translate(err))
	}
	res := shop.GateResult{Outcome: lua.Str(v, 0)}
	if res.Outcome == shop.GateReleased {
		res.Quantity, res.Available, res.Version = lua.Int(v, 1), lua.Int(v, 2), lua.Int(v, 3)
	}
	return res, nil
}

// VersionBits is how many low bits of a live-stock version count the changes of one gate
// generation: a rebuild under generation gen starts the version at max(existing, gen<<30).
//
// Why it never goes back: generations come from a Postgres sequence and only grow, so while
// a generation sees fewer than 2^30 (about 1.07e9) changes of available, every version it
// hands out is below (gen+1)<<30, the floor of any later generation, even when Redis lost the
// version or a failover restored an older one. Why it stays a safe JavaScript integer: a
// version is below 2^53 while gen < 2^23 (8,388,608 generations, for all products together:
// each admin PUT or restock and each rebuild takes one). At 10,000 changes a second one
// generation lasts 30 hours before it could pass 2^30; an admin change or a rebuild ends it.
const VersionBits = 30

// VersionBase is the version floor of gate generation gen.
func VersionBase(gen int64) int64 { return gen << VersionBits }

// Rebuild runs rebuild.lua and reports whether it set the gate. gatedrop.lua runs in the same
// MULTI (both as EVAL, so neither can miss its script cache), so that no reserve ever sees the
// rebuilt gate without its sale window, waiting room and bought units.
func (g *Gate) Rebuild(ctx context.Context, s shop.GateState, now time.Time) (bool, error) {
	if len(s.Variants) == 0 { // a state from before variants: the one variant, default
		s.Variants = []shop.GateVariant{{ID: shop.DefaultVariant, Available: s.Available}}
	}
	ids := make([]string, len(s.Variants))
	for i, v := range s.Variants {
		ids[i] = v.ID
	}
	args := make([]any, 0, 6+2*len(s.Variants)+6*len(s.Holds))
	args = append(args, s.Available, s.MaxPerUser, s.Gen, VersionBase(s.Gen), strings.Join(ids, ","), len(s.Variants))
	for _, v := range s.Variants {
		args = append(args, v.ID, v.Available)
	}
	for _, h := range s.Holds {
		vid := h.VariantID
		if vid == "" {
			vid = shop.DefaultVariant
		}
		args = append(args, h.ID, h.Quantity, ms(h.ExpiresAt), h.Status, h.UserID, vid)
	}
	k := KeysFor(s.ProductID)
	var rebuilt *redis.Cmd
	_, err := g.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		rebuilt = p.Eval(ctx, lua.Rebuild, k.list(), args...)
		p.Eval(ctx, lua.GateDrop, []string{k.Gate, k.Users}, dropArgs(s)...)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("run rebuild.lua: %w", Translate(err))
	}
	v, err := rebuilt.Slice()
	if err != nil {
		return false, fmt.Errorf("run rebuild.lua: %w", Translate(err))
	}
	return lua.Str(v, 0) == "rebuilt", nil
}

// dropArgs are gatedrop.lua's ARGV for a state.
func dropArgs(s shop.GateState) []any {
	opt := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return strconv.FormatInt(ms(*t), 10)
	}
	draw := "0"
	if s.Draw {
		draw = "1"
	}
	args := []any{s.Gen, opt(s.OpensAt), opt(s.ClosesAt), s.QueueRate, draw}
	for u, n := range s.Purchased {
		args = append(args, u, n)
	}
	return args
}

// Invalidate drops the product's gate if its generation is below gen.
func (g *Gate) Invalidate(ctx context.Context, productID string, gen int64) error {
	k := KeysFor(productID)
	if err := invalidateScript.Run(ctx, g.rdb, []string{k.Gate, k.Holds, k.Deadlines, k.Users}, gen).Err(); err != nil {
		return fmt.Errorf("run invalidate.lua: %w", Translate(err))
	}
	return nil
}

// Available returns the available units of each product that has a gate, in total and per
// variant, in one round trip. A gate from before variants counts as absent.
func (g *Gate) Available(ctx context.Context, ids []string) (map[string]shop.Availability, error) {
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, KeysFor(id).Gate)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read available: %w", Translate(err))
	}
	out := make(map[string]shop.Availability, len(ids))
	for i, c := range cmds {
		if a, ok := ParseAvailability(c.Val()); ok {
			out[ids[i]] = a
		}
	}
	return out, nil
}

// ParseAvailability reads a gate hash's available units (variants.lua): the total, and each
// variant's; ok is false for no gate or one from before variants.
func ParseAvailability(gate map[string]string) (shop.Availability, bool) {
	vs, ok := gate["vs"]
	if !ok {
		return shop.Availability{}, false
	}
	total, err := strconv.ParseInt(gate["avail"], 10, 64)
	if err != nil {
		return shop.Availability{}, false
	}
	a := shop.Availability{Total: total, Variants: map[string]int64{}}
	if !strings.Contains(vs, ",") {
		a.Variants[vs] = total
		return a, true
	}
	for _, id := range strings.Split(vs, ",") {
		n, _ := strconv.ParseInt(gate["v:"+id], 10, 64)
		a.Variants[id] = n
	}
	return a, true
}

// Due returns the holds of the product whose deadline is not after now, with their
// deadlines; shop.ErrNotFound when the product has no gate.
func (g *Gate) Due(ctx context.Context, productID string, now time.Time) (map[string]time.Time, error) {
	k := KeysFor(productID)
	var exists *redis.BoolCmd
	var due *redis.ZSliceCmd
	_, err := g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.HExists(ctx, k.Gate, "vs") // a gate from before variants counts as absent
		due = p.ZRangeByScoreWithScores(ctx, k.Deadlines, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(ms(now), 10)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read due holds: %w", Translate(err))
	}
	if !exists.Val() {
		return nil, shop.ErrNotFound
	}
	out := make(map[string]time.Time, len(due.Val()))
	for _, z := range due.Val() {
		out[z.Member.(string)] = time.UnixMilli(int64(z.Score)).UTC()
	}
	return out, nil
}

// Holds returns the gate's generation, version and holds (id -> quantity), read together;
// shop.ErrNotFound when the product has no gate.
func (g *Gate) Holds(ctx context.Context, productID string) (int64, int64, map[string]int64, error) {
	k := KeysFor(productID)
	var gen, ver *redis.StringCmd
	var vs *redis.BoolCmd
	var holds *redis.MapStringStringCmd
	_, err := g.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		gen = p.HGet(ctx, k.Gate, "gen")
		vs = p.HExists(ctx, k.Gate, "vs")
		ver = p.Get(ctx, k.Version)
		holds = p.HGetAll(ctx, k.Holds)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, nil, fmt.Errorf("read gate holds: %w", Translate(err))
	}
	n, err := gen.Int64()
	if errors.Is(err, redis.Nil) || (err == nil && !vs.Val()) {
		return 0, 0, nil, shop.ErrNotFound // no gate, or one from before variants
	}
	if err != nil {
		return 0, 0, nil, fmt.Errorf("read gate generation: %w", err)
	}
	v, err := ver.Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, nil, fmt.Errorf("read gate version: %w", err)
	}
	out := make(map[string]int64, len(holds.Val()))
	for id, h := range holds.Val() {
		q, _ := strconv.ParseInt(strings.SplitN(h, ":", 2)[0], 10, 64)
		out[id] = q
	}
	return n, v, out, nil
}

// Translate marks errors of a Redis that cannot be reached as shop.ErrUnavailable; other
// Redis errors are returned as they are. The packages that talk to Redis share it.
func Translate(err error) error {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, net.ErrClosed) ||
		strings.HasPrefix(err.Error(), "LOADING") || strings.HasPrefix(err.Error(), "READONLY") ||
		strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("%w: %w", shop.ErrUnavailable, err)
	}
	return err
}

// DrawChanged writes a draw's counts for its room's next draw message (drawcast.lua sends
// them, coalesced). It implements shop.DrawNotifier.
func (g *Gate) DrawChanged(ctx context.Context, productID string, c shop.DrawCounts) error {
	k := "{p:" + productID + "}:draw"
	_, err := g.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k, "won", c.Won, "waitlisted", c.Waitlisted)
		p.HIncrBy(ctx, k, "seq", 1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("write draw counts: %w", Translate(err))
	}
	return nil
}
