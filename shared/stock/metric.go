package stock

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"lastunit/lua"
	"lastunit/shared/shop"
)

// The control room's counting (lua/metric.lua): one hash per product and second, in the slot
// of the product's gate, written by the scripts that already run (reserve, release, checkout,
// queue) and read by GET …/live and the sweep's roll-up.

var countScript = redis.NewScript(lua.Count)

// MetricKey is the key of product id's counts of the unix second sec.
func MetricKey(id string, sec int64) string {
	return "{p:" + id + "}:m:" + strconv.FormatInt(sec, 10)
}

// metricKeyOf is MetricKey from a product's keys (the same hash tag).
func metricKeyOf(k Keys, sec int64) string {
	return strings.TrimSuffix(k.Gate, "gate") + "m:" + strconv.FormatInt(sec, 10)
}

// latencyArg encodes latency samples for metric.lua ("i:n,i:n").
func latencyArg(h map[int]int64) string {
	if len(h) == 0 {
		return ""
	}
	var b strings.Builder
	for i, n := range h {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(i))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(n, 10))
	}
	return b.String()
}

// countFlag is a script's "count" argument.
func (g *Gate) countFlag() string {
	if g.Counting {
		return "1"
	}
	return "0"
}

// Count runs count.lua: n events of a field in the product's second at (nothing when the gate
// does not count).
func (g *Gate) Count(ctx context.Context, productID, field string, n int64, at time.Time) error {
	if !g.Counting {
		return nil
	}
	if err := countScript.Run(ctx, g.rdb, []string{MetricKey(productID, at.Unix())}, field, n).Err(); err != nil {
		return fmt.Errorf("run count.lua: %w", Translate(err))
	}
	return nil
}

// Seconds reads the product's seconds from..to and its gate's available and held, in one
// round trip.
func (g *Gate) Seconds(ctx context.Context, productID string, from, to int64) (shop.LiveRead, error) {
	if to < from {
		return shop.LiveRead{}, nil
	}
	cmds := make([]*redis.MapStringStringCmd, 0, to-from+1)
	var gate *redis.SliceCmd
	_, err := g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for t := from; t <= to; t++ {
			cmds = append(cmds, p.HGetAll(ctx, MetricKey(productID, t)))
		}
		gate = p.HMGet(ctx, KeysFor(productID).Gate, "vs", "avail", "held")
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return shop.LiveRead{}, fmt.Errorf("read counts: %w", Translate(err))
	}
	out := shop.LiveRead{Seconds: make([]shop.Second, len(cmds))}
	for i, c := range cmds {
		out.Seconds[i] = parseSecond(from+int64(i), c.Val())
	}
	if v := gate.Val(); len(v) == 3 && v[0] != nil {
		out.HasGate = true
		out.Avail, out.Held = anyInt(v[1]), anyInt(v[2])
	}
	return out, nil
}

func anyInt(v any) int64 {
	s, _ := v.(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// parseSecond reads one second's hash (lua/metric.lua).
func parseSecond(t int64, h map[string]string) shop.Second {
	x := shop.Second{T: t, Counts: map[string]int64{}}
	num := func(s string) *int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil
		}
		return &n
	}
	for f, v := range h {
		switch {
		case f == "av":
			x.Avail = num(v)
		case f == "hd":
			x.Held = num(v)
		case f == "sv":
			x.Serving = num(v)
		case f == "so":
			if n := num(v); n != nil {
				x.SoldOutAt = *n
			}
		case f == "b0":
			a, b, ok := strings.Cut(v, ":")
			if ok {
				x.AvailBefore, x.HeldBefore = num(a), num(b)
			}
		case isBucket(f):
			i, _ := strconv.Atoi(f[1:])
			if n := num(v); n != nil {
				if x.Latency == nil {
					x.Latency = map[int]int64{}
				}
				x.Latency[i] += *n
			}
		default:
			if n := num(v); n != nil {
				x.Counts[f] = *n
			}
		}
	}
	if x.Avail != nil && x.Held == nil {
		x.Held = new(int64)
	}
	if x.AvailBefore != nil && x.HeldBefore == nil {
		x.HeldBefore = new(int64)
	}
	return x
}

// isBucket reports whether a field is a latency bucket: "l" and digits ("lim" is a count).
func isBucket(f string) bool {
	if len(f) < 2 || f[0] != 'l' {
		return false
	}
	return strings.Trim(f[1:], "0123456789") == ""
}

// MinutesWithCounts returns those of the minutes (unix second of their start) for which Redis
// has any second: one EXISTS of the minute's 60 keys each, in one round trip.
func (g *Gate) MinutesWithCounts(ctx context.Context, productID string, minutes []int64) ([]int64, error) {
	cmds := make([]*redis.IntCmd, len(minutes))
	_, err := g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range minutes {
			keys := make([]string, 60)
			for s := range keys {
				keys[s] = MetricKey(productID, m+int64(s))
			}
			cmds[i] = p.Exists(ctx, keys...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find counted minutes: %w", Translate(err))
	}
	var out []int64
	for i, c := range cmds {
		if c.Val() > 0 {
			out = append(out, minutes[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}
