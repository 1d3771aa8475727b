// Package rooms is lastunit's live stock over WebSocket: the connection table (which
// connections are in which product's room, and the reverse), the messages viewers get, the
// coalescing Notifier that tells the stock-updates queue which products changed, and the
// Broadcaster that posts a product's current available units to the connections of its
// room, and only to them, through the API Gateway management API.
//
// The table lives in Redis. A room is a sorted set {p:ID}:room of connection ids scored by
// when the connection must be gone (API Gateway closes every WebSocket after MaxAge), in the
// product's hash slot, so that the broadcaster reads the gate, the version and the room in one
// slot. A connection's rooms are a set {c:ID}:rooms that expires with the connection. Nothing
// outlives MaxAge: expired room members are pruned on every join and never read.
package rooms

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"lastunit/lua"
	"lastunit/shared/shop"
	"lastunit/shared/stock"
)

// MaxAge is API Gateway's limit on one WebSocket connection's life; no table entry lives longer.
const MaxAge = 2 * time.Hour

// MaxRooms is how many product rooms one connection may be in at once.
const MaxRooms = 50

// ErrTooManyRooms is returned by Join when the connection is in MaxRooms rooms already.
var ErrTooManyRooms = shop.Invalid("product_id", "a connection may follow at most %d products", MaxRooms)

// RoomKey is the Redis key of a product's room, in the product's hash slot.
func RoomKey(productID string) string { return "{p:" + productID + "}:room" }

// ConnKey is the Redis key of the set of rooms a connection is in.
func ConnKey(connID string) string { return "{c:" + connID + "}:rooms" }

// goneKey marks a connection that was removed ($disconnect), for as long as it could live.
func goneKey(connID string) string { return "{c:" + connID + "}:gone" }

// sentKey is the Redis key of the broadcaster's marker of a product's last broadcast.
func sentKey(productID string) string { return "{p:" + productID + "}:sent" }

// Table is the connection table on Redis.
type Table struct {
	rdb redis.UniversalClient
}

// NewTable returns the table on rdb.
func NewTable(rdb redis.UniversalClient) *Table { return &Table{rdb: rdb} }

func ms(t time.Time) int64 { return t.UnixMilli() }

// Expiry is when a connection opened at connectedAt is closed by API Gateway at the latest.
func Expiry(connectedAt time.Time) time.Time { return connectedAt.Add(MaxAge) }

var joinScript = redis.NewScript(lua.Join)

// Join puts the connection into the product's room (and the room into the connection's set),
// in one atomic step that also enforces MaxRooms. Joining again is harmless and repairs an
// entry lost with Redis. connectedAt is when API Gateway opened the connection; now is the
// caller's clock. The keys expire after a relative time (the connection's end minus now), so
// an injected clock far from the Redis server's never makes them expire early or late.
func (t *Table) Join(ctx context.Context, connID, productID string, connectedAt, now time.Time) error {
	exp := Expiry(connectedAt)
	ttl := exp.Sub(now)
	if ttl <= 0 {
		return fmt.Errorf("join %s: the connection is past API Gateway's %s limit", connID, MaxAge)
	}
	res, err := joinScript.Run(ctx, t.rdb, []string{ConnKey(connID), RoomKey(productID), goneKey(connID)},
		connID, productID, ms(exp), ms(now), ttl.Milliseconds()+1, MaxRooms).Slice()
	if err != nil {
		return fmt.Errorf("join %s to %s: %w", connID, productID, stock.Translate(err))
	}
	switch lua.Str(res, 0) {
	case "too_many":
		return ErrTooManyRooms
	case "gone": // a subscribe delivered after the connection's $disconnect: nothing to join
	}
	return nil
}

// Leave takes the connection out of the product's room.
func (t *Table) Leave(ctx context.Context, connID, productID string) error {
	_, err := t.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, RoomKey(productID), connID)
		p.SRem(ctx, ConnKey(connID), productID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("leave %s from %s: %w", connID, productID, stock.Translate(err))
	}
	return nil
}

// Remove takes the connection out of every room and forgets it: after it, the table holds
// no entry of the connection, only a marker (expiring with MaxAge) that keeps a subscribe
// API Gateway delivers late from putting it back. It returns how many rooms it was in. The connection's set is
// watched: a Join that lands between the read and the removal (Join is atomic) makes the
// removal start again with the new set, so no room keeps a member its connection forgot.
func (t *Table) Remove(ctx context.Context, connID string) (int, error) {
	ck := ConnKey(connID)
	var n int
	for attempt := 0; ; attempt++ {
		err := t.rdb.Watch(ctx, func(tx *redis.Tx) error {
			products, err := tx.SMembers(ctx, ck).Result()
			if err != nil {
				return err
			}
			n = len(products)
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for _, id := range products {
					p.ZRem(ctx, RoomKey(id), connID)
				}
				p.Del(ctx, ck)
				p.Set(ctx, goneKey(connID), 1, MaxAge)
				return nil
			})
			return err
		}, ck)
		if errors.Is(err, redis.TxFailedErr) && attempt < 100 {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("remove %s: %w", connID, stock.Translate(err))
		}
		return n, nil
	}
}

// Members returns the connections in the product's room that API Gateway may still hold at now.
func (t *Table) Members(ctx context.Context, productID string, now time.Time) ([]string, error) {
	ids, err := t.rdb.ZRangeByScore(ctx, RoomKey(productID), &redis.ZRangeBy{Min: "(" + strconv.FormatInt(ms(now), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("read room of %s: %w", productID, stock.Translate(err))
	}
	return ids, nil
}

// Rooms returns the products whose rooms the connection is in.
func (t *Table) Rooms(ctx context.Context, connID string) ([]string, error) {
	ids, err := t.rdb.SMembers(ctx, ConnKey(connID)).Result()
	if err != nil {
		return nil, fmt.Errorf("read rooms of %s: %w", connID, stock.Translate(err))
	}
	return ids, nil
}

// Snapshot reads a product's available units (in total and per variant) and version
// together, in one atomic step; ok is false when the product has no gate (unknown, or being
// rebuilt).
func (t *Table) Snapshot(ctx context.Context, productID string) (msg Stock, ok bool, err error) {
	k := stock.KeysFor(productID)
	var gate *redis.MapStringStringCmd
	var ver *redis.StringCmd
	_, err = t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		gate = p.HGetAll(ctx, k.Gate)
		ver = p.Get(ctx, k.Version)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Stock{}, false, fmt.Errorf("read stock of %s: %w", productID, stock.Translate(err))
	}
	a, ok := stock.ParseAvailability(gate.Val())
	if !ok {
		return Stock{}, false, nil
	}
	v, err := ver.Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Stock{}, false, fmt.Errorf("read version of %s: %w", productID, err)
	}
	return NewStock(productID, a.Total, v, a.Variants), true, nil
}
