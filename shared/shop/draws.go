package shop

import (
	"context"
	"time"

	"lastunit/shared/draw"
)

// Entry states (API.md "Draws").
const (
	EntryEntered    = "entered"
	EntryWon        = "won"
	EntryWaitlisted = "waitlisted"
	EntryExpired    = "expired"
	EntryLost       = "lost"
)

// Entry is one shopper's entry in a product's draw.
type Entry struct {
	ProductID string `json:"product_id"`
	UserID    string `json:"-"`
	// VariantIDs are 1..5 distinct variants in order of preference.
	VariantIDs []string `json:"variant_ids"`
	Quantity   int64    `json:"quantity"`
	State      string   `json:"state"`
	// Rank is null until the draw.
	Rank *int64 `json:"rank"`
	// ReservationID, VariantID and OfferExpiresAt describe the entry's offer (null without one).
	ReservationID  *string    `json:"reservation_id"`
	VariantID      *string    `json:"variant_id"`
	OfferExpiresAt *time.Time `json:"offer_expires_at"`
	CreatedAt      time.Time  `json:"created_at"`
}

// DrawRow is a draw as Postgres keeps it. Seed is secret until DrawnAt is set.
type DrawRow struct {
	ProductID      string
	Seed           draw.Seed
	DrawAt         time.Time
	OpensAt        time.Time
	ClosesAt       time.Time
	EntriesDigest  *string
	EntriesFixedAt *time.Time
	Beacon         *string
	DrawnAt        *time.Time
}

// Commitment is the draw's public commitment to its seed.
func (d DrawRow) Commitment() string { return d.Seed.Commitment() }

// DrawStore is the draws' part of Postgres.
type DrawStore interface {
	// CreateDraw makes the product a draw with the given seed, unless it is one already (then
	// its seed, shown as a commitment, stays). ErrNotFound for an unknown product.
	CreateDraw(ctx context.Context, productID string, seed draw.Seed, drawAt, now time.Time) (DrawRow, error)
	// Draw returns a product's draw; ErrNotFound if the product is not a draw.
	Draw(ctx context.Context, productID string) (DrawRow, error)
	// PutEntry creates or replaces the shopper's entry if now is inside the entry period and the
	// entries are not fixed; false otherwise (nothing changed).
	PutEntry(ctx context.Context, e Entry, now time.Time) (Entry, bool, error)
	// DeleteEntry withdraws the shopper's entry under the same condition as PutEntry; it
	// reports whether the entry period was open (a missing entry is withdrawn already).
	DeleteEntry(ctx context.Context, productID, userID string, now time.Time) (bool, error)
	// Entry returns the shopper's entry; ErrNotFound if there is none.
	Entry(ctx context.Context, productID, userID string) (Entry, error)
	// FixEntries fixes the entries' digest once now is at or after closes_at (idempotent: a
	// fixed digest is returned as it is); nil before closes_at.
	FixEntries(ctx context.Context, productID string, now time.Time) (*string, error)
	// RankDraw ranks every entry in one transaction, set-based, once now is at or after
	// draw_at (fixing the digest first if no sweep did yet). It reports whether this call ran
	// the draw: overlapping calls rank once, and a call that dies half-way changes nothing.
	RankDraw(ctx context.Context, productID string, now time.Time) (bool, error)
	// DrawRecord returns the public record of the draw (API.md's GET /products/{id}/draw).
	DrawRecord(ctx context.Context, productID string) (draw.Record, error)
}
