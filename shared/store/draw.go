package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"lastunit/shared/draw"
	"lastunit/shared/shop"
)

var _ shop.DrawStore = (*Store)(nil)

const drawCols = `d.product_id, d.seed, d.draw_at, p.opens_at, p.closes_at, d.entries_digest, d.entries_fixed_at, d.beacon, d.drawn_at`

func scanDraw(row pgx.Row) (shop.DrawRow, error) {
	var d shop.DrawRow
	var seed []byte
	var opens, closes *time.Time
	if err := row.Scan(&d.ProductID, &seed, &d.DrawAt, &opens, &closes, &d.EntriesDigest, &d.EntriesFixedAt, &d.Beacon, &d.DrawnAt); err != nil {
		return d, translate(err)
	}
	if len(seed) != draw.SeedSize {
		return d, fmt.Errorf("draw %s: seed of %d bytes", d.ProductID, len(seed))
	}
	copy(d.Seed[:], seed)
	if opens != nil {
		d.OpensAt = *opens
	}
	if closes != nil {
		d.ClosesAt = *closes
	}
	return d, nil
}

// CreateDraw makes the product a draw with the given seed unless it is one already; then only
// draw_at follows (the seed, whose commitment is public, never changes).
func (s *Store) CreateDraw(ctx context.Context, productID string, seed draw.Seed, drawAt, now time.Time) (shop.DrawRow, error) {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO draws (product_id, seed, draw_at, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (product_id) DO UPDATE SET draw_at = EXCLUDED.draw_at WHERE draws.drawn_at IS NULL`,
		productID, seed[:], drawAt, now)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" { // foreign key: no such product
		return shop.DrawRow{}, shop.ErrNotFound
	}
	if err != nil {
		return shop.DrawRow{}, fmt.Errorf("create draw %s: %w", productID, translate(err))
	}
	return s.Draw(ctx, productID)
}

// Draw returns a product's draw; shop.ErrNotFound if the product is not a draw.
func (s *Store) Draw(ctx context.Context, productID string) (shop.DrawRow, error) {
	d, err := scanDraw(s.pool.QueryRow(ctx, `SELECT `+drawCols+` FROM draws d JOIN products p ON p.id = d.product_id WHERE d.product_id = $1`, productID))
	if err != nil && !errors.Is(err, shop.ErrNotFound) {
		return d, fmt.Errorf("select draw %s: %w", productID, err)
	}
	return d, err
}

// entryCols are an entry's columns from draw_entries e left joined with its outcome draw_ranks r.
const entryCols = `e.product_id, e.user_id, e.variant_ids, e.quantity, coalesce(r.state, 'entered'), r.rank, r.reservation_id, r.variant_id, r.offer_expires_at, e.created_at`

func scanEntry(row pgx.Row) (shop.Entry, error) {
	var e shop.Entry
	var rank *int64
	err := row.Scan(&e.ProductID, &e.UserID, &e.VariantIDs, &e.Quantity, &e.State, &rank, &e.ReservationID, &e.VariantID, &e.OfferExpiresAt, &e.CreatedAt)
	e.Rank = rank
	return e, translate(err)
}

// entryOpen is the condition, on draws d joined with products p, under which entries may change:
// inside the entry period and before the digest was fixed. Statements that change an entry lock
// the draw's row FOR SHARE, and FixEntries locks it FOR UPDATE: an entry is either in the digest
// or refused, never written after it.
const entryOpen = `d.entries_digest IS NULL AND p.opens_at <= $3 AND $3 < p.closes_at`

// PutEntry creates or replaces the shopper's entry while the entry period is open. A replaced
// entry keeps its created_at (when it entered first; the order of entry changes nothing).
func (s *Store) PutEntry(ctx context.Context, e shop.Entry, now time.Time) (shop.Entry, bool, error) {
	entrant, _ := hex.DecodeString(draw.Entrant(e.ProductID, e.UserID))
	out, err := scanEntry(s.pool.QueryRow(ctx, `
		INSERT INTO draw_entries (product_id, user_id, entrant, variant_ids, quantity, created_at, updated_at)
		SELECT d.product_id, $2, $4, $5, $6, $3, $3
		  FROM draws d JOIN products p ON p.id = d.product_id
		 WHERE d.product_id = $1 AND `+entryOpen+`
		   FOR SHARE OF d
		ON CONFLICT (product_id, user_id) DO UPDATE
		   SET variant_ids = EXCLUDED.variant_ids, quantity = EXCLUDED.quantity, updated_at = EXCLUDED.updated_at
		RETURNING product_id, user_id, variant_ids, quantity, 'entered', NULL::bigint, NULL::text, NULL::text, NULL::timestamptz, created_at`,
		e.ProductID, e.UserID, now, entrant, e.VariantIDs, e.Quantity))
	if errors.Is(err, shop.ErrNotFound) {
		return shop.Entry{}, false, nil
	}
	if err != nil {
		return shop.Entry{}, false, fmt.Errorf("put entry %s: %w", e.ProductID, err)
	}
	return out, true, nil
}

// DeleteEntry withdraws the shopper's entry while the entry period is open; it reports
// whether it was. shop.ErrNotFound if the product is not a draw.
func (s *Store) DeleteEntry(ctx context.Context, productID, userID string, now time.Time) (bool, error) {
	var open bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `
			SELECT `+entryOpen+` FROM draws d JOIN products p ON p.id = d.product_id
			 WHERE d.product_id = $1 AND $2::text IS NOT NULL FOR SHARE OF d`, productID, userID, now).Scan(&open); err != nil {
			return err
		}
		if !open {
			return nil
		}
		_, err := tx.Exec(ctx, `DELETE FROM draw_entries WHERE product_id = $1 AND user_id = $2`, productID, userID)
		return err
	})
	if err != nil && !errors.Is(err, shop.ErrNotFound) {
		return false, fmt.Errorf("delete entry %s: %w", productID, err)
	}
	return open, err
}

// Entry returns the shopper's entry; shop.ErrNotFound if there is none.
func (s *Store) Entry(ctx context.Context, productID, userID string) (shop.Entry, error) {
	e, err := scanEntry(s.pool.QueryRow(ctx, `SELECT `+entryCols+` FROM draw_entries e LEFT JOIN draw_ranks r USING (product_id, user_id) WHERE e.product_id = $1 AND e.user_id = $2`, productID, userID))
	if err != nil && !errors.Is(err, shop.ErrNotFound) {
		return e, fmt.Errorf("select entry %s: %w", productID, err)
	}
	return e, err
}

// lockDraw locks a draw's row against entries changing and other sweeps.
func lockDraw(ctx context.Context, tx pgx.Tx, productID string) (shop.DrawRow, error) {
	return scanDraw(tx.QueryRow(ctx, `SELECT `+drawCols+` FROM draws d JOIN products p ON p.id = d.product_id WHERE d.product_id = $1 FOR UPDATE OF d`, productID))
}

// fixIn fixes the digest of a locked draw whose closes_at has passed; it returns the digest
// (nil before closes_at).
func fixIn(ctx context.Context, tx pgx.Tx, d shop.DrawRow, now time.Time) (*string, error) {
	if d.EntriesDigest != nil {
		return d.EntriesDigest, nil
	}
	if now.Before(d.ClosesAt) {
		return nil, nil
	}
	// The digest is computed where the entries are: bytea sorts byte by byte, which is the
	// order of their lower-case hex strings.
	var digest string
	if err := tx.QueryRow(ctx, `
		WITH fixed AS (
			SELECT encode(sha256(convert_to(coalesce(string_agg(encode(entrant, 'hex'), E'\n' ORDER BY entrant), ''), 'UTF8')), 'hex') AS digest
			  FROM draw_entries WHERE product_id = $1)
		UPDATE draws SET entries_digest = fixed.digest, entries_fixed_at = $2 FROM fixed
		 WHERE product_id = $1 RETURNING entries_digest`, d.ProductID, now).Scan(&digest); err != nil {
		return nil, fmt.Errorf("fix entries: %w", err)
	}
	return &digest, nil
}

// FixEntries fixes the entries' digest once closes_at has passed (idempotent).
func (s *Store) FixEntries(ctx context.Context, productID string, now time.Time) (*string, error) {
	var digest *string
	err := s.tx(ctx, func(tx pgx.Tx) error {
		d, err := lockDraw(ctx, tx, productID)
		if err != nil {
			return err
		}
		digest, err = fixIn(ctx, tx, d, now)
		return err
	})
	if err != nil && !errors.Is(err, shop.ErrNotFound) {
		err = fmt.Errorf("fix entries of %s: %w", productID, err)
	}
	return digest, err
}

// RankDraw ranks every entry of the draw in one transaction, set-based (one INSERT into
// draw_ranks in rank order, every entry waitlisted until offered): each entry's rank key
// (hex SHA-256 of seed:digest:beacon:entrant, as shared/draw.RankKey) is computed by
// Postgres, and ranks follow the keys' order (raw SHA-256 bytes sort like their lower-case hex;
// ties, which would need a SHA-256 collision, go to the smaller entrant as in draw.Ranks). The
// draw's row is locked first and drawn_at set last, so overlapping sweeps rank once and a sweep
// that dies half-way leaves nothing behind.
func (s *Store) RankDraw(ctx context.Context, productID string, now time.Time) (bool, error) {
	ran := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		d, err := lockDraw(ctx, tx, productID)
		if err != nil {
			return err
		}
		if d.DrawnAt != nil || now.Before(d.DrawAt) {
			return nil
		}
		digest, err := fixIn(ctx, tx, d, now)
		if err != nil {
			return err
		}
		if digest == nil {
			return fmt.Errorf("draw_at %s is before closes_at %s", d.DrawAt, d.ClosesAt)
		}
		beacon := ""
		if d.Beacon != nil {
			beacon = *d.Beacon
		}
		prefix := d.Seed.Hex() + ":" + *digest + ":" + beacon + ":"
		// Every entry starts waitlisted; the offers then go down the list in rank order exactly as
		// a backfill does (one rule for both).
		if _, err := tx.Exec(ctx, `
			INSERT INTO draw_ranks (product_id, rank, user_id, state, updated_at)
			SELECT $1, row_number() OVER (ORDER BY sha256(convert_to($2 || encode(entrant, 'hex'), 'UTF8')), entrant), user_id, 'waitlisted', $3
			  FROM draw_entries WHERE product_id = $1`, productID, prefix, now); err != nil {
			return fmt.Errorf("rank entries: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE draws SET drawn_at = $2 WHERE product_id = $1`, productID, now); err != nil {
			return fmt.Errorf("mark drawn: %w", err)
		}
		ran = true
		return nil
	})
	if err != nil && !errors.Is(err, shop.ErrNotFound) {
		err = fmt.Errorf("rank draw %s: %w", productID, err)
	}
	return ran, err
}

// DrawRecord returns the public record of a draw: entries from closes_at on (never the
// shoppers, only their entrant names), the seed, ranks and outcomes once it ran.
func (s *Store) DrawRecord(ctx context.Context, productID string) (draw.Record, error) {
	var rec draw.Record
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY`); err != nil {
			return err
		}
		d, err := scanDraw(tx.QueryRow(ctx, `SELECT `+drawCols+` FROM draws d JOIN products p ON p.id = d.product_id WHERE d.product_id = $1`, productID))
		if err != nil {
			return err
		}
		rec = draw.Record{ProductID: d.ProductID, DrawAt: d.DrawAt.UTC(), Commitment: d.Commitment(), EntriesDigest: d.EntriesDigest, Beacon: d.Beacon}
		if d.EntriesDigest == nil {
			return nil
		}
		drawn := d.DrawnAt != nil
		if drawn {
			h := d.Seed.Hex()
			rec.Seed = &h
		}
		rows, err := tx.Query(ctx, `
			SELECT encode(e.entrant, 'hex'), r.rank, e.variant_ids, e.quantity, coalesce(r.state, 'entered')
			  FROM draw_entries e LEFT JOIN draw_ranks r USING (product_id, user_id)
			 WHERE e.product_id = $1 ORDER BY r.rank NULLS LAST, e.entrant`, productID)
		if err != nil {
			return err
		}
		rec.Entries, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (draw.RecordEntry, error) {
			var e draw.RecordEntry
			var rank *int
			var state string
			if err := r.Scan(&e.Entrant, &rank, &e.VariantIDs, &e.Quantity, &state); err != nil {
				return e, err
			}
			if drawn {
				e.Rank, e.Outcome = rank, &state
			}
			return e, nil
		})
		if rec.Entries == nil {
			rec.Entries = []draw.RecordEntry{}
		}
		return err
	})
	if err != nil && !errors.Is(err, shop.ErrNotFound) {
		err = fmt.Errorf("draw record %s: %w", productID, translate(err))
	}
	return rec, err
}

// checkAllocation passes what the locked product is now to check (nil for a product this
// transaction created), under the lock of its draw row, if any.
func checkAllocation(ctx context.Context, tx pgx.Tx, cur shop.ProductRow, created bool, check func(*shop.CurrentAllocation) error) error {
	if created {
		return check(nil)
	}
	c := &shop.CurrentAllocation{Allocation: shop.AllocationFirstCome, OpensAt: cur.OpensAt, ClosesAt: cur.ClosesAt}
	var drawAt time.Time
	var fixed bool
	err := tx.QueryRow(ctx, `SELECT draw_at, entries_digest IS NOT NULL FROM draws WHERE product_id = $1 FOR UPDATE`, cur.ID).Scan(&drawAt, &fixed)
	switch {
	case err == nil:
		c.Allocation, c.DrawAt, c.EntriesFixed = shop.AllocationDraw, &drawAt, fixed
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("lock draw: %w", translate(err))
	case cur.OpensAt == nil:
		// A first-come product without an opening has been on sale since it was created: once
		// it was ever held, its sale has started.
		var held bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM reservations WHERE product_id = $1)`, cur.ID).Scan(&held); err != nil {
			return fmt.Errorf("look for holds: %w", translate(err))
		}
		if held {
			c.OpensAt = &time.Time{}
		}
	}
	return check(c)
}

// setAllocation makes the product a draw (a new seed only for a product that was not one: the
// seed whose commitment is public never changes) or first come (a draw that never started
// is dropped; CheckDrawSettings refused the change for one that did).
func setAllocation(ctx context.Context, tx pgx.Tx, id string, in shop.ProductInput, now time.Time) error {
	if in.Allocation == shop.AllocationDraw {
		if in.DrawAt == nil {
			return shop.Invalid("draw_at", "a draw needs draw_at")
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO draws (product_id, seed, draw_at, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (product_id) DO UPDATE SET draw_at = EXCLUDED.draw_at WHERE draws.drawn_at IS NULL`,
			id, in.DrawSeed[:], *in.DrawAt, now)
		if err != nil {
			return fmt.Errorf("make draw: %w", translate(err))
		}
		return nil
	}
	// Not a draw (any more): only a draw that has no entries can go (CheckDrawSettings refuses
	// the change once its entry period started; an entry cannot exist before).
	if _, err := tx.Exec(ctx, `DELETE FROM draws d WHERE d.product_id = $1
		AND NOT EXISTS (SELECT 1 FROM draw_entries e WHERE e.product_id = d.product_id)
		AND NOT EXISTS (SELECT 1 FROM draw_ranks r WHERE r.product_id = d.product_id)`, id); err != nil {
		return fmt.Errorf("drop draw: %w", translate(err))
	}
	return nil
}

// offerBatch is how many waitlisted entries one statement of an offer round reads.
const offerBatch = 500

// OfferRound runs one round of a drawn draw's offers in one transaction, under the lock of the
// draw's row (so rounds never overlap, and a round that dies leaves nothing): won entries whose
// hold ended unpaid become expired (and back to won if a late payment took the hold again);
// lost entries one of whose variants is no longer sold wait again; then every free unit goes,
// in rank order, to the waitlisted entries by rule, each offer a new hold (reserved, deadline
// now+window, id idFor(user)) recorded with the entry's won in the same transaction; last,
// waitlisted entries all of whose variants are sold become lost. Postgres's own checks (free
// units, max_per_user) apply to every hold; an entry the limit refuses stays waitlisted. A
// product that is not a drawn draw gets an empty round.
func (s *Store) OfferRound(ctx context.Context, productID string, now time.Time, window time.Duration, idFor func(userID string) string,
	rule func(free map[string]int64, w shop.Waiting) (shop.Offer, bool)) (shop.DrawRound, error) {
	var out shop.DrawRound
	var err error
	for tries := 0; tries < 4; tries++ {
		out = shop.DrawRound{}
		err = s.tx(ctx, func(tx pgx.Tx) error { return s.offerRound(ctx, tx, productID, now, window, idFor, rule, &out) })
		if !isDeadlock(err) {
			break
		}
	}
	if err != nil && !errors.Is(err, shop.ErrNotFound) {
		err = fmt.Errorf("offer round %s: %w", productID, err)
	}
	return out, err
}

func (s *Store) offerRound(ctx context.Context, tx pgx.Tx, productID string, now time.Time, window time.Duration, idFor func(string) string,
	rule func(map[string]int64, shop.Waiting) (shop.Offer, bool), out *shop.DrawRound) error {
	// The product first, in the order of every path that locks it and then its draw or its
	// slots (UpsertProduct, Restock, RebuildGate take it FOR UPDATE): the holds inserted below
	// need this lock anyway (their foreign key), and taking it last would deadlock with them.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM products WHERE id = $1 FOR KEY SHARE`, productID); err != nil {
		return fmt.Errorf("lock product: %w", err)
	}
	d, err := lockDraw(ctx, tx, productID)
	if err != nil {
		return err
	}
	if d.DrawnAt == nil {
		return nil
	}
	out.Drawn = true
	tag, err := tx.Exec(ctx, `
		UPDATE draw_ranks r SET state = 'expired', updated_at = $2 FROM reservations h
		 WHERE r.product_id = $1 AND r.state = 'won' AND h.id = r.reservation_id
		   AND h.status IN ('released', 'expired', 'cancelled')`, productID, now)
	if err != nil {
		return fmt.Errorf("expire offers: %w", err)
	}
	out.Expired = int(tag.RowsAffected())
	if _, err := tx.Exec(ctx, `
		UPDATE draw_ranks r SET state = 'won', updated_at = $2 FROM reservations h
		 WHERE r.product_id = $1 AND r.state = 'expired' AND h.id = r.reservation_id
		   AND h.status IN ('reserved', 'checked_out', 'fulfilled')`, productID, now); err != nil {
		return fmt.Errorf("restore offers taken again: %w", err)
	}
	free, err := lockFree(ctx, tx, productID)
	if err != nil {
		return err
	}
	if err := markLost(ctx, tx, productID, free, now, false); err != nil {
		return err
	}
	left := int64(0)
	for _, n := range free {
		left += n
	}
	if s.Pause != nil {
		s.Pause("offers.locked")
	}
	after := int64(0)
	for left > 0 {
		rows, err := tx.Query(ctx, `
			SELECT r.rank, r.user_id, e.variant_ids, e.quantity
			  FROM draw_ranks r JOIN draw_entries e USING (product_id, user_id)
			 WHERE r.product_id = $1 AND r.state = 'waitlisted' AND r.rank > $2
			 ORDER BY r.rank LIMIT $3`, productID, after, offerBatch)
		if err != nil {
			return fmt.Errorf("read the waitlist: %w", err)
		}
		batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (shop.Waiting, error) {
			var w shop.Waiting
			err := r.Scan(&w.Rank, &w.UserID, &w.VariantIDs, &w.Quantity)
			return w, err
		})
		if err != nil {
			return fmt.Errorf("read the waitlist: %w", err)
		}
		for _, w := range batch {
			after = w.Rank
			if left <= 0 {
				break
			}
			o, ok := rule(free, w)
			if !ok {
				continue
			}
			h := shop.Reservation{ID: idFor(w.UserID), ProductID: productID, VariantID: o.VariantID, UserID: w.UserID,
				Quantity: o.Quantity, Status: shop.StatusReserved, CreatedAt: now, ExpiresAt: now.Add(window)}
			taken, err := offerIn(ctx, tx, h, w.Rank)
			if err != nil {
				return err
			}
			if !taken { // max_per_user refused it: the entry fits nowhere, the units stay free
				free[o.VariantID] += o.Quantity
				continue
			}
			left -= o.Quantity
			out.Offers = append(out.Offers, h)
		}
		if len(batch) < offerBatch {
			break
		}
	}
	if err := markLost(ctx, tx, productID, free, now, true); err != nil {
		return err
	}
	// Offers of the last minutes, for the gate to take again (replay): a round that died after
	// its commit and before the gate took them.
	rows, err := tx.Query(ctx, `SELECT `+prefixed("h.", reservationCols)+` FROM draw_ranks r JOIN reservations h ON h.id = r.reservation_id
		 WHERE r.product_id = $1 AND r.state = 'won' AND h.status = 'reserved' AND h.created_at > $2 AND h.created_at < $3`,
		productID, now.Add(-2*time.Minute), now)
	if err != nil {
		return fmt.Errorf("read recent offers: %w", err)
	}
	if out.Recent, err = pgx.CollectRows(rows, scanReservation); err != nil {
		return fmt.Errorf("read recent offers: %w", err)
	}
	out.Counts, err = drawCounts(ctx, tx, productID)
	return err
}

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// offerIn records one offer: the hold (its insert trigger takes the units and checks
// max_per_user) and the entry's won, under a savepoint; false when max_per_user refused it.
func offerIn(ctx context.Context, tx pgx.Tx, h shop.Reservation, rank int64) (bool, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, err
	}
	_, err = sp.Exec(ctx, `INSERT INTO reservations (id, product_id, variant_id, user_id, quantity, status, expires_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, 'reserved', $6, $7, $7)`, h.ID, h.ProductID, h.VariantID, h.UserID, h.Quantity, h.ExpiresAt, h.CreatedAt)
	if pe, ok := isShort(err); ok && pe.Code == codeOverLimit {
		return false, sp.Rollback(ctx)
	}
	if err != nil {
		_ = sp.Rollback(ctx)
		return false, fmt.Errorf("record offer: %w", err)
	}
	tag, err := sp.Exec(ctx, `UPDATE draw_ranks SET state = 'won', reservation_id = $3, variant_id = $4, offer_expires_at = $5, updated_at = $6
		WHERE product_id = $1 AND rank = $2 AND state = 'waitlisted'`, h.ProductID, rank, h.ID, h.VariantID, h.ExpiresAt, h.CreatedAt)
	if err != nil {
		_ = sp.Rollback(ctx)
		return false, fmt.Errorf("mark entry won: %w", err)
	}
	if tag.RowsAffected() != 1 {
		_ = sp.Rollback(ctx)
		return false, fmt.Errorf("entry of rank %d is no longer waitlisted", rank)
	}
	return true, sp.Commit(ctx)
}

// markLost moves waitlisted entries all of whose variants are sold to lost (final: after the
// offers) and, before them (final false), lost entries one of whose variants is not sold any
// more (a cancel or a restock) back to waitlisted. A variant is sold when none of it is free
// and none is in a hold that may still end unpaid (reserved, or checked out under an order
// not paid).
func markLost(ctx context.Context, tx pgx.Tx, productID string, free map[string]int64, now time.Time, final bool) error {
	rows, err := tx.Query(ctx, `
		SELECT v.id FROM product_variants v WHERE v.product_id = $1 AND NOT EXISTS (
			SELECT 1 FROM reservations h LEFT JOIN orders o ON o.id = h.order_id
			 WHERE h.product_id = v.product_id AND h.variant_id = v.id
			   AND (h.status = 'reserved' OR (h.status = 'checked_out' AND (o.status IS NULL OR o.status = 'payment_pending'))))`, productID)
	if err != nil {
		return fmt.Errorf("read sold variants: %w", err)
	}
	settled, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read sold variants: %w", err)
	}
	sold := []string{}
	for _, v := range settled {
		if free[v] <= 0 {
			sold = append(sold, v)
		}
	}
	q := `UPDATE draw_ranks r SET state = 'waitlisted', updated_at = $3 FROM draw_entries e
		WHERE r.product_id = $1 AND r.state = 'lost' AND e.product_id = r.product_id AND e.user_id = r.user_id
		  AND NOT (e.variant_ids <@ $2::text[])`
	if final {
		q = `UPDATE draw_ranks r SET state = 'lost', updated_at = $3 FROM draw_entries e
		WHERE r.product_id = $1 AND r.state = 'waitlisted' AND e.product_id = r.product_id AND e.user_id = r.user_id
		  AND e.variant_ids <@ $2::text[]`
	}
	if _, err := tx.Exec(ctx, q, productID, sold, now); err != nil {
		return fmt.Errorf("mark lost entries: %w", err)
	}
	return nil
}

// drawCounts counts a draw's entries by state, and the won entries whose offer was paid.
func drawCounts(ctx context.Context, q querier, productID string) (shop.DrawCounts, error) {
	var c shop.DrawCounts
	err := q.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM draw_entries WHERE product_id = $1),
		       count(*) FILTER (WHERE r.state = 'won'), count(*) FILTER (WHERE r.state = 'waitlisted'),
		       count(*) FILTER (WHERE r.state = 'expired'), count(*) FILTER (WHERE r.state = 'lost'),
		       count(*) FILTER (WHERE r.state = 'won' AND (h.status = 'fulfilled' OR o.status IN ('paid', 'fulfilled')))
		  FROM draw_ranks r LEFT JOIN reservations h ON h.id = r.reservation_id LEFT JOIN orders o ON o.id = h.order_id
		 WHERE r.product_id = $1`, productID).Scan(&c.Entries, &c.Won, &c.Waitlisted, &c.Expired, &c.Lost, &c.Paid)
	if err != nil {
		return c, fmt.Errorf("count entries: %w", translate(err))
	}
	return c, nil
}

// DrawCounts counts a draw's entries by state (AdminProduct.draw).
func (s *Store) DrawCounts(ctx context.Context, productID string) (shop.DrawCounts, error) {
	return drawCounts(ctx, s.pool, productID)
}

// SetBeacon sets a draw's beacon once, between closes_at and draw_at (before the draw); false
// when that does not hold (nothing changed). shop.ErrNotFound if the product is not a draw.
func (s *Store) SetBeacon(ctx context.Context, productID, beacon string, now time.Time) (bool, error) {
	var set bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		d, err := lockDraw(ctx, tx, productID)
		if err != nil {
			return err
		}
		if d.Beacon != nil || d.DrawnAt != nil || now.Before(d.ClosesAt) || !now.Before(d.DrawAt) {
			return nil
		}
		tag, err := tx.Exec(ctx, `UPDATE draws SET beacon = $2 WHERE product_id = $1 AND beacon IS NULL AND drawn_at IS NULL`, productID, beacon)
		set = err == nil && tag.RowsAffected() == 1
		return err
	})
	if err != nil && !errors.Is(err, shop.ErrNotFound) {
		err = fmt.Errorf("set beacon of %s: %w", productID, translate(err))
	}
	return set, err
}

// DrawsDue returns the draws a sweep has work for: not fixed past closes_at, not drawn past
// draw_at, or drawn (their offers and backfill).
func (s *Store) DrawsDue(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT d.product_id FROM draws d JOIN products p ON p.id = d.product_id
		WHERE (d.entries_digest IS NULL AND p.closes_at <= $1) OR d.drawn_at IS NOT NULL OR d.draw_at <= $1
		ORDER BY d.product_id`, now)
	if err != nil {
		return nil, fmt.Errorf("select due draws: %w", translate(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("select due draws: %w", translate(err))
	}
	return ids, nil
}
