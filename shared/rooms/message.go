package rooms

import (
	"encoding/json"
	"errors"

	"lastunit/shared/shop"
)

// Message types, the "type" field of every message the server sends (API.md, "Live stock").
const (
	TypeStock = "stock"
	TypeQueue = "queue"
	TypeDraw  = "draw"
	TypeError = "error"
)

// Stock is the message a room's viewers get: the product's available units at a version, in
// total and per variant (Available is the sum of Variants). Clients drop a message whose
// version is not above the last one they saw.
type Stock struct {
	Type      string           `json:"type"`
	ProductID string           `json:"product_id"`
	Available int64            `json:"available"`
	Version   int64            `json:"version"`
	Variants  map[string]int64 `json:"variants"`
}

// NewStock returns a stock message.
func NewStock(productID string, available, version int64, variants map[string]int64) Stock {
	if variants == nil {
		variants = map[string]int64{}
	}
	return Stock{Type: TypeStock, ProductID: productID, Available: available, Version: version, Variants: variants}
}

// JSON encodes the message.
func (m Stock) JSON() []byte {
	b, _ := json.Marshal(m)
	return b
}

// Queue is the message a waiting room's viewers get when serving or the sold-out state
// changes (API.md, "Drops"); a client computes its own place from its ticket's number.
type Queue struct {
	Type      string `json:"type"`
	ProductID string `json:"product_id"`
	Serving   int64  `json:"serving"`
	SoldOut   bool   `json:"sold_out"`
}

// JSON encodes the message.
func (m Queue) JSON() []byte {
	b, _ := json.Marshal(m)
	return b
}

// Draw is the message a draw's viewers get when it runs and when backfill changes its counts
// (API.md, "Draws").
type Draw struct {
	Type       string `json:"type"`
	ProductID  string `json:"product_id"`
	State      string `json:"state"`
	Won        int64  `json:"won"`
	Waitlisted int64  `json:"waitlisted"`
}

// JSON encodes the message.
func (m Draw) JSON() []byte {
	b, _ := json.Marshal(m)
	return b
}

// Error is the answer to a message the server cannot act on; the connection stays open.
type Error struct {
	Type    string    `json:"type"`
	Code    shop.Code `json:"code"`
	Message string    `json:"message"`
}

// ErrorFor returns the error message for err, with API.md's codes and no internals.
func ErrorFor(err error) Error {
	m := Error{Type: TypeError, Code: shop.ErrorCode(err)}
	var e *shop.Error
	switch {
	case errors.As(err, &e):
		m.Message = e.Message
	case m.Code == shop.CodeUnavailable:
		m.Message = "a dependency is unavailable; try again"
	case m.Code == shop.CodeNotFound:
		m.Message = "not found"
	default:
		m.Message = "internal error"
	}
	return m
}

// JSON encodes the message.
func (m Error) JSON() []byte {
	b, _ := json.Marshal(m)
	return b
}
