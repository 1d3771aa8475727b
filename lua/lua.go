// Package lua holds the Redis scripts of the stock gate, one file per atomic operation.
// Each file documents its KEYS, ARGV and return values at the top.
package lua

import (
	_ "embed"
	"strconv"
)

//go:embed waitroom.lua
var waitroom string

//go:embed variants.lua
var variants string

//go:embed reserve.lua
var reserve string

// Reserve takes units of one variant of a product for a new hold (reserve.lua, after the
// libraries waitroom.lua and variants.lua).
var Reserve = waitroom + variants + reserve

//go:embed queue.lua
var queue string

// Queue joins, reads or counts a product's waiting room (queue.lua after waitroom.lua).
var Queue = waitroom + queue

//go:embed ratelimit.lua
var ratelimit string

// RateLimit takes one request from a shopper's token bucket (ratelimit.lua after waitroom.lua).
var RateLimit = waitroom + ratelimit

//go:embed queuecast.lua
var queuecast string

// QueueCast claims a product's next waiting-room message and reads it (queuecast.lua after
// waitroom.lua).
var QueueCast = waitroom + queuecast

// GateDrop completes a rebuilt gate with the drop fields and bought units (gatedrop.lua).
//
//go:embed gatedrop.lua
var GateDrop string

// DrawCast claims a draw's next counts message (drawcast.lua).
//
//go:embed drawcast.lua
var DrawCast string

//go:embed offer.lua
var offer string

// Offer makes one draw offer: a hold of one variant for one entrant, without the sale window,
// the waiting room or the rate (offer.lua, after variants.lua).
var Offer = variants + offer

//go:embed release.lua
var release string

// Release ends one hold and gives its units back exactly once (release.lua)
// (after variants.lua)
var Release = variants + release

//go:embed rebuild.lua
var rebuild string

// Rebuild sets a product's gate from Postgres when it is absent (rebuild.lua)
// (after variants.lua)
var Rebuild = variants + rebuild

// Invalidate drops a product's gate older than a generation (invalidate.lua).
//
//go:embed invalidate.lua
var Invalidate string

//go:embed checkout.lua
var checkout string

// Checkout validates a whole cart and checks it out, all or nothing (checkout.lua)
// (after variants.lua)
var Checkout = variants + checkout

//go:embed uncheckout.lua
var uncheckout string

// Uncheckout puts checked-out holds back to reserved (uncheckout.lua)
// (after variants.lua)
var Uncheckout = variants + uncheckout

//go:embed retake.lua
var retake string

// Retake takes an expired order's units again after a late payment (retake.lua)
// (after variants.lua)
var Retake = variants + retake

// Drop forgets fulfilled holds without giving their units back (drop.lua).
//
//go:embed drop.lua
var Drop string

//go:embed broadcast.lua
var broadcast string

// Broadcast claims a product's next live stock broadcast and reads what to send (broadcast.lua)
// (after variants.lua)
var Broadcast = variants + broadcast

// Catalog writes products' shopper-facing details, newest generation wins (catalog.lua).
//
//go:embed catalog.lua
var Catalog string

// Join puts a connection into a product's room, within the room limit (join.lua).
//
//go:embed join.lua
var Join string

// Str returns reply[i] of a script's array reply as a string ("" when absent or not one).
func Str(reply []any, i int) string {
	if i < len(reply) {
		if s, ok := reply[i].(string); ok {
			return s
		}
	}
	return ""
}

// Int returns reply[i] of a script's array reply as an integer (0 when absent or not one).
func Int(reply []any, i int) int64 {
	if i < len(reply) {
		switch n := reply[i].(type) {
		case int64:
			return n
		case string:
			x, _ := strconv.ParseInt(n, 10, 64)
			return x
		}
	}
	return 0
}
