package shop

import (
	"context"
	"crypto/sha256"
	"strings"
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
	// OfferRound runs one round of a drawn draw's offers in one transaction under the draw's
	// lock: won entries whose hold ended unpaid become expired, every free unit is offered by
	// rule in rank order to the waitlisted entries (each offer a hold, reserved until
	// now+window, id idFor(user), recorded with the entry's won), and entries all of whose
	// variants are sold become lost. An empty round for a draw not drawn yet.
	OfferRound(ctx context.Context, productID string, now time.Time, window time.Duration, idFor func(userID string) string,
		rule func(free map[string]int64, w Waiting) (Offer, bool)) (DrawRound, error)
	// DrawCounts counts a draw's entries by state.
	DrawCounts(ctx context.Context, productID string) (DrawCounts, error)
	// SetBeacon sets the beacon once, between closes_at and draw_at; false otherwise.
	SetBeacon(ctx context.Context, productID, beacon string, now time.Time) (bool, error)
	// DrawsDue lists the draws a sweep has work for (to fix, to draw, or drawn).
	DrawsDue(ctx context.Context, now time.Time) ([]string, error)
}

// DrawCounts are a draw's entries in each state now (AdminProduct.draw): Won includes the
// entries whose offer was paid, Paid counts those.
type DrawCounts struct {
	Entries    int64 `json:"entries"`
	Won        int64 `json:"won"`
	Waitlisted int64 `json:"waitlisted"`
	Expired    int64 `json:"expired"`
	Lost       int64 `json:"lost"`
	Paid       int64 `json:"paid"`
}

// DrawRound is what one round of offers did.
type DrawRound struct {
	// Drawn says the draw has run (else the round did nothing).
	Drawn bool
	// Offers are the holds this round recorded, for the gate to take.
	Offers []Reservation
	// Recent are the offers recorded in the last minutes and still reserved: the gate takes
	// them again (it answers replay for those it has), which repairs a round that died after
	// its commit and before the gate.
	Recent []Reservation
	// Expired counts the won entries whose hold ended unpaid, now expired.
	Expired int
	Counts  DrawCounts
}

// Allocation modes of a product.
const (
	AllocationFirstCome = "first_come"
	AllocationDraw      = "draw"
)

// MaxEntryVariants is how many variants one entry may name.
const MaxEntryVariants = 5

// DrawSettings are the fields of PUT /admin/products/{id} that decide how a product is
// allocated (API.md "Draws").
type DrawSettings struct {
	// Allocation is first_come or draw ("" means first_come).
	Allocation        string
	OpensAt, ClosesAt *time.Time
	DrawAt            *time.Time
	QueueRate         int64
}

// CurrentAllocation is what a product is now, for CheckDrawSettings: nil for a product that
// does not exist yet.
type CurrentAllocation struct {
	Allocation string
	OpensAt    *time.Time
	ClosesAt   *time.Time
	DrawAt     *time.Time
	// EntriesFixed says the draw's entries digest is fixed (its close has passed).
	EntriesFixed bool
}

// CheckDrawSettings applies API.md's rules to an admin's allocation fields: 400 naming the
// field for a draw without its entry period, with draw_at before closes_at or with a waiting
// room, or for draw_at on a first-come product; 409 invalid_state for changing allocation,
// opens_at or draw_at once the entry period (or the sale) has started. Our choice beyond
// API.md: closes_at cannot move either once the entries are fixed (the digest covers them).
func CheckDrawSettings(cur *CurrentAllocation, in DrawSettings, now time.Time) error {
	alloc := in.Allocation
	if alloc == "" {
		alloc = AllocationFirstCome
	}
	switch alloc {
	case AllocationFirstCome:
		if in.DrawAt != nil {
			return Invalid("draw_at", "draw_at applies only to a product with allocation draw")
		}
	case AllocationDraw:
		switch {
		case in.OpensAt == nil:
			return Invalid("opens_at", "a draw needs opens_at: the start of its entry period")
		case in.ClosesAt == nil:
			return Invalid("closes_at", "a draw needs closes_at: the end of its entry period")
		case !in.ClosesAt.After(*in.OpensAt):
			return Invalid("closes_at", "closes_at must be after opens_at")
		case in.DrawAt == nil:
			return Invalid("draw_at", "a draw needs draw_at")
		case in.DrawAt.Before(*in.ClosesAt):
			return Invalid("draw_at", "draw_at must be at or after closes_at")
		case in.QueueRate != 0:
			return Invalid("queue_rate", "a draw has no waiting room: queue_rate must be 0")
		}
	default:
		return Invalid("allocation", "allocation must be first_come or draw")
	}
	if cur == nil || cur.OpensAt == nil || now.Before(*cur.OpensAt) {
		return nil // nothing has started
	}
	curAlloc := cur.Allocation
	if curAlloc == "" {
		curAlloc = AllocationFirstCome
	}
	changed := func(field string) error {
		e := Errorf(CodeInvalidState, "%s cannot change once the entry period has started", field)
		e.Details = map[string]any{"field": field}
		return e
	}
	switch {
	case curAlloc != alloc:
		return changed("allocation")
	case alloc != AllocationDraw:
		return nil
	case !sameTime(cur.OpensAt, in.OpensAt):
		return changed("opens_at")
	case !sameTime(cur.DrawAt, in.DrawAt):
		return changed("draw_at")
	case cur.EntriesFixed && !sameTime(cur.ClosesAt, in.ClosesAt):
		return changed("closes_at")
	}
	return nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// CheckEntry validates an entry's variants and quantity against the product: variant_ids
// 1..5 distinct variants of the product in order of preference (may be left out for a
// one-variant product), quantity 1..max_per_user (0 means 1). It returns the variants to
// store. An id that breaks the pattern is 400; one the product does not have is 404, as for
// POST /reservations.
func CheckEntry(p ProductRow, variantIDs []string, quantity int64) ([]string, int64, error) {
	if quantity == 0 {
		quantity = 1
	}
	if quantity < 1 || quantity > p.MaxPerUser {
		return nil, 0, Invalid("quantity", "quantity must be an integer from 1 to %d (max_per_user)", p.MaxPerUser)
	}
	if variantIDs == nil {
		if len(p.Variants) != 1 {
			return nil, 0, Invalid("variant_ids", "product %q has several variants: name 1 to %d in variant_ids", p.ID, MaxEntryVariants)
		}
		return []string{p.Variants[0].ID}, quantity, nil
	}
	if len(variantIDs) < 1 || len(variantIDs) > MaxEntryVariants {
		return nil, 0, Invalid("variant_ids", "variant_ids must name 1 to %d variants", MaxEntryVariants)
	}
	seen := make(map[string]bool, len(variantIDs))
	for _, id := range variantIDs {
		if !ValidVariantID(id) {
			return nil, 0, Invalid("variant_ids", "variant ids must match [a-z0-9][a-z0-9._-]{0,31}")
		}
		if seen[id] {
			return nil, 0, Invalid("variant_ids", "variant %q is named twice", id)
		}
		seen[id] = true
	}
	for _, id := range variantIDs {
		found := false
		for _, v := range p.Variants {
			if v.ID == id {
				found = true
				break
			}
		}
		if !found {
			return nil, 0, Errorf(CodeNotFound, "product %q has no variant %q", p.ID, id)
		}
	}
	return append([]string(nil), variantIDs...), quantity, nil
}

// Waiting is a waitlisted entry as the offers see it.
type Waiting struct {
	Rank       int64
	UserID     string
	VariantIDs []string
	Quantity   int64
}

// Offer is one offer to make: the entry of rank Rank gets Quantity units of VariantID.
type Offer struct {
	Rank      int64
	UserID    string
	VariantID string
	Quantity  int64
}

// Allocate is the rule of the draw and of every backfill alike: in rank order (waiting must be
// sorted by rank), each entry is offered the first variant of its list that has Quantity units
// free, and those units are taken from free (which it changes). An entry that fits nowhere
// stays waiting: a unit is never offered to a worse-ranked entry while a better-ranked one that
// fits it waits. It stops as soon as no unit is free.
func Allocate(free map[string]int64, waiting []Waiting) []Offer {
	var offers []Offer
	left := int64(0)
	for _, n := range free {
		left += n
	}
	for _, w := range waiting {
		if left == 0 {
			break
		}
		for _, v := range w.VariantIDs {
			if free[v] >= w.Quantity {
				free[v] -= w.Quantity
				left -= w.Quantity
				offers = append(offers, Offer{Rank: w.Rank, UserID: w.UserID, VariantID: v, Quantity: w.Quantity})
				break
			}
		}
	}
	return offers
}

// OfferID is the id of the hold offered to a shopper's entry: derived from the product and the
// shopper, so that the same offer made again (the sweep that made it died before Postgres
// recorded it) is recognised by the gate and takes its units once. Each entry is offered at
// most once (an expired offer is never renewed), so one id per entry is enough. It has the
// shape of every reservation id.
func OfferID(productID, userID string) string {
	h := sha256.Sum256([]byte("lastunit draw offer\x00" + productID + "\x00" + userID))
	return "r_" + strings.ToLower(idEncoding.EncodeToString(h[:15]))
}

// GateOffer is one offer.lua call: a hold of VariantID for the entry's shopper, deadline
// DRAW_OFFER_WINDOW after the offer.
type GateOffer struct {
	ProductID, VariantID, ID, UserID string
	Quantity                         int64
	Deadline                         time.Time
}

// DrawGate is the gate's part in a draw.
type DrawGate interface {
	// Offer runs offer.lua: outcomes GateOK (Available, Gen, Version), GateReplay (Gen: the
	// hold exists already), GateNoVariant, GateOutOfStock (Available: the variant's), GateLimit
	// (Limit) or GateMissing.
	Offer(ctx context.Context, o GateOffer) (GateResult, error)
}
