package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
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
