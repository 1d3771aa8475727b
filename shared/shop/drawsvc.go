package shop

import (
	"context"
	"errors"
	"math"
	"time"

	"lastunit/shared/draw"
)

// DefaultDrawOfferWindow is how long a draw's offer holds its units (DRAW_OFFER_WINDOW).
const DefaultDrawOfferWindow = time.Hour

// MaxBeaconLen is the longest beacon an admin may set.
const MaxBeaconLen = 256

// prepareDraw checks an admin's allocation fields against API.md and, for a draw, gives the
// input a fresh secret seed (kept only if the product was not a draw already) and the check
// the store runs under the product's lock against what the product is now.
func (s *Service) prepareDraw(in *ProductInput) error {
	in.DrawAt = msUTC(in.DrawAt)
	ds := DrawSettings{Allocation: in.Allocation, OpensAt: in.OpensAt, ClosesAt: in.ClosesAt, DrawAt: in.DrawAt, QueueRate: in.QueueRate}
	now := s.now()
	if err := CheckDrawSettings(nil, ds, now); err != nil {
		return err
	}
	if in.Allocation == "" {
		in.Allocation = AllocationFirstCome
	}
	if in.Allocation == AllocationDraw {
		seed, err := draw.NewSeed()
		if err != nil {
			return err
		}
		in.DrawSeed = seed
	}
	in.CheckAllocation = func(cur *CurrentAllocation) error { return CheckDrawSettings(cur, ds, now) }
	return nil
}

// adminOf is a row's admin view with its draw's counts (when it is a draw).
func (s *Service) adminOf(ctx context.Context, row ProductRow) (AdminProduct, error) {
	a := row.Admin()
	if row.Draw != nil {
		c, err := s.Store.DrawCounts(ctx, row.ID)
		if err != nil {
			return a, err
		}
		a.Draw = &c
	}
	return a, nil
}

// drawProduct reads a product from the catalog for the entry routes: 404 if unknown, 409
// invalid_state if it is not a draw.
func (s *Service) drawProduct(ctx context.Context, productID string) (Product, error) {
	if !ValidProductID(productID) {
		return Product{}, Invalid("id", "product id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	p, found, err := s.catalogProduct(ctx, productID)
	if err != nil {
		return Product{}, err
	}
	if !found {
		return Product{}, Errorf(CodeNotFound, "no product %q", productID)
	}
	if p.Allocation != AllocationDraw {
		return Product{}, Errorf(CodeInvalidState, "product %q is not sold by draw", productID)
	}
	return p, nil
}

// EntryRequest is a shopper's entry: variant_ids nil means the product's one variant,
// quantity 0 means 1.
type EntryRequest struct {
	UserID     string
	ProductID  string
	VariantIDs []string
	Quantity   int64
}

// Enter creates or replaces the shopper's entry in a draw during its entry period. The entry
// is durable in Postgres before the answer (one statement); the product's details come from
// the catalog in Redis.
func (s *Service) Enter(ctx context.Context, req EntryRequest) (Entry, error) {
	if !ValidProductID(req.ProductID) {
		return Entry{}, Invalid("id", "product id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	if err := s.limitRate(ctx, req.UserID); err != nil {
		return Entry{}, err
	}
	p, err := s.drawProduct(ctx, req.ProductID)
	if err != nil {
		return Entry{}, err
	}
	row := ProductRow{ID: p.ID, MaxPerUser: p.MaxPerUser}
	for _, v := range p.Variants {
		row.Variants = append(row.Variants, VariantRow{ID: v.ID})
	}
	vids, q, err := CheckEntry(row, req.VariantIDs, req.Quantity)
	if err != nil {
		return Entry{}, err
	}
	e, ok, err := s.Store.PutEntry(ctx, Entry{ProductID: p.ID, UserID: req.UserID, VariantIDs: vids, Quantity: q}, s.now())
	if err != nil {
		return Entry{}, err
	}
	if !ok {
		return Entry{}, s.entryClosed(ctx, p.ID)
	}
	return e, nil
}

// entryClosed is the answer to an entry change outside the entry period, from Postgres's view
// of the draw: 409 not_open (before the opening or from the close on), or invalid_state for a
// product that is not a draw.
func (s *Service) entryClosed(ctx context.Context, productID string) error {
	d, err := s.Store.Draw(ctx, productID)
	if errors.Is(err, ErrNotFound) {
		return Errorf(CodeInvalidState, "product %q is not sold by draw", productID)
	}
	if err != nil {
		return err
	}
	if s.now().Before(d.OpensAt) {
		e := Errorf(CodeNotOpen, "the entry period has not opened yet")
		e.Details = map[string]any{"opens_at": d.OpensAt.UTC()}
		return e
	}
	e := Errorf(CodeNotOpen, "the entry period has closed")
	e.Details = map[string]any{"closes_at": d.ClosesAt.UTC()}
	return e
}

// MyEntry returns the shopper's entry in a draw; 404 without one.
func (s *Service) MyEntry(ctx context.Context, userID, productID string) (Entry, error) {
	if _, err := s.drawProduct(ctx, productID); err != nil {
		return Entry{}, err
	}
	e, err := s.Store.Entry(ctx, productID, userID)
	if errors.Is(err, ErrNotFound) {
		return Entry{}, Errorf(CodeNotFound, "no entry in this draw")
	}
	return e, err
}

// Withdraw deletes the shopper's entry during the entry period (204 also when there is none);
// after it, 409 invalid_state. Before the opening there is nothing to withdraw (204).
func (s *Service) Withdraw(ctx context.Context, userID, productID string) error {
	if !ValidProductID(productID) {
		return Invalid("id", "product id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	if err := s.limitRate(ctx, userID); err != nil {
		return err
	}
	if _, err := s.drawProduct(ctx, productID); err != nil {
		return err
	}
	now := s.now()
	open, err := s.Store.DeleteEntry(ctx, productID, userID, now)
	if errors.Is(err, ErrNotFound) {
		return Errorf(CodeInvalidState, "product %q is not sold by draw", productID)
	}
	if err != nil || open {
		return err
	}
	d, err := s.Store.Draw(ctx, productID)
	if err != nil {
		return err
	}
	if now.Before(d.OpensAt) {
		return nil
	}
	return Errorf(CodeInvalidState, "the entry period has closed: an entry can no longer be withdrawn")
}

// DrawRecord returns a draw's public record (404 for an unknown product, 409 invalid_state
// for one that is not a draw).
func (s *Service) DrawRecord(ctx context.Context, productID string) (draw.Record, error) {
	if !ValidProductID(productID) {
		return draw.Record{}, Invalid("id", "product id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	rec, err := s.Store.DrawRecord(ctx, productID)
	if err == nil && rec.EntriesDigest == nil {
		// Past closes_at the record shows the digest and the entries at once, not after the sweep.
		if d, derr := s.Store.Draw(ctx, productID); derr == nil && !s.now().Before(d.ClosesAt) {
			if _, err = s.Store.FixEntries(ctx, productID, s.now()); err == nil {
				rec, err = s.Store.DrawRecord(ctx, productID)
			}
		}
	}
	if errors.Is(err, ErrNotFound) {
		if _, err := s.drawProduct(ctx, productID); err != nil {
			return draw.Record{}, err
		}
		return draw.Record{}, Errorf(CodeNotFound, "product %q has no draw", productID)
	}
	return rec, err
}

// SetBeacon sets a draw's public beacon, once, between closes_at and draw_at.
func (s *Service) SetBeacon(ctx context.Context, productID, beacon string) (AdminProduct, error) {
	if !ValidProductID(productID) {
		return AdminProduct{}, Invalid("id", "product id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	if len(beacon) < 1 || len(beacon) > MaxBeaconLen {
		return AdminProduct{}, Invalid("beacon", "beacon must be 1 to %d visible ASCII characters", MaxBeaconLen)
	}
	for i := 0; i < len(beacon); i++ {
		if beacon[i] < 0x21 || beacon[i] > 0x7e {
			return AdminProduct{}, Invalid("beacon", "beacon must be 1 to %d visible ASCII characters", MaxBeaconLen)
		}
	}
	row, err := s.Store.Product(ctx, productID)
	if errors.Is(err, ErrNotFound) {
		return AdminProduct{}, Errorf(CodeNotFound, "no product %q", productID)
	}
	if err != nil {
		return AdminProduct{}, err
	}
	if row.Draw == nil {
		return AdminProduct{}, Errorf(CodeInvalidState, "product %q is not sold by draw", productID)
	}
	set, err := s.Store.SetBeacon(ctx, productID, beacon, s.now())
	if err != nil {
		return AdminProduct{}, err
	}
	if !set {
		return AdminProduct{}, Errorf(CodeInvalidState, "a beacon is set once, between closes_at and draw_at")
	}
	return s.adminOf(ctx, row)
}

// fixDue shows a draw's digest from closes_at on, without waiting for the sweep: a catalog
// entry of a draw past its close without a digest has it fixed (FixEntries, idempotent) and is
// written again, once per process at a time; until then every read costs nothing in Postgres.
// A failure leaves the product as it was (the sweep fixes the digest).
func (s *Service) fixDue(ctx context.Context, p Product) Product {
	if p.Allocation != AllocationDraw || p.DrawEntriesDigest != nil || p.ClosesAt == nil || s.now().Before(*p.ClosesAt) {
		return p
	}
	v, err, _ := s.rebuilds.Do("\x00fix:"+p.ID, func() (any, error) {
		if _, err := s.Store.FixEntries(ctx, p.ID, s.now()); err != nil {
			return nil, err
		}
		row, err := s.Store.Product(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		if err := s.Gate.PutCatalog(ctx, catalogEntries(row), false); err != nil {
			s.Log.Warn("write catalog entry", "product_id", p.ID, "err", err)
		}
		return row.product(), nil
	})
	if err != nil {
		s.Log.Warn("fix a draw's entries on read", "product_id", p.ID, "err", err)
		return p
	}
	return v.(Product)
}

// offerRule is the rule of the draw and of every backfill: the entry's first variant that has
// its quantity free (Allocate for one entry).
func offerRule(free map[string]int64, w Waiting) (Offer, bool) {
	os := Allocate(free, []Waiting{w})
	if len(os) == 0 {
		return Offer{}, false
	}
	return os[0], true
}

// sweepDraws is the sweep's draw step: for every draw with work, fix the digest at closes_at,
// rank at draw_at (exactly once: the store's lock and drawn_at), then a round of offers.
func (s *Service) sweepDraws(ctx context.Context, now time.Time) error {
	ids, err := s.Store.DrawsDue(ctx, now)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := s.sweepDraw(ctx, id, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) sweepDraw(ctx context.Context, id string, now time.Time) error {
	if _, err := s.Store.FixEntries(ctx, id, now); err != nil {
		return err
	}
	ran, err := s.Store.RankDraw(ctx, id, now)
	if err != nil {
		return err
	}
	if _, err := s.Offers(ctx, id, ran); err != nil {
		return err
	}
	// The product's digest and seed are public from now on: the catalog follows.
	row, err := s.Store.Product(ctx, id)
	if err != nil {
		return err
	}
	return s.Gate.PutCatalog(ctx, catalogEntries(row), false)
}

// Offers runs one round of a drawn draw's offers (OfferRound) and then takes every offer of
// the round, and the recent ones again, in the gate (offer.lua, at most once per offer id).
// Postgres records an offer before the gate takes it, so Postgres never has fewer holds than
// the gate; a gate that refuses a hold Postgres recorded is rebuilt from Postgres. drawn says
// this sweep ran the draw (the counts are sent even if no offer was made).
func (s *Service) Offers(ctx context.Context, productID string, drawn bool) (DrawRound, error) {
	round, err := s.Store.OfferRound(ctx, productID, s.now(), s.offerWindow(), func(u string) string { return OfferID(productID, u) }, offerRule)
	if err != nil || !round.Drawn {
		return round, err
	}
	if err := s.fault("draw.before_gate"); err != nil {
		return round, err // the process "dies": the next round takes the offers in the gate (Recent)
	}
	taken := map[string]bool{}
	rebuild := false
	for _, h := range append(round.Offers, round.Recent...) {
		if taken[h.ID] {
			continue
		}
		taken[h.ID] = true
		res, err := s.Gate.Offer(ctx, GateOffer{ProductID: productID, VariantID: h.VariantID, ID: h.ID, UserID: h.UserID, Quantity: h.Quantity, Deadline: h.ExpiresAt})
		if err != nil {
			return round, err
		}
		switch res.Outcome {
		case GateOK:
			s.changed(ctx, productID)
		case GateReplay:
		default:
			// No gate, or one that disagrees with Postgres (a release it has not seen yet): it is
			// set again from Postgres, which has this hold.
			rebuild = true
		}
	}
	// A hold released between the commit and the gate's take (its release found nothing to give
	// back) would stay in the gate until its deadline: give it back now.
	if len(taken) > 0 && !rebuild {
		ids := make([]string, 0, len(taken))
		for id := range taken {
			ids = append(ids, id)
		}
		status, err := s.Store.HoldStatuses(ctx, ids)
		if err != nil {
			return round, err
		}
		for _, h := range append(round.Offers, round.Recent...) {
			if st := status[h.ID]; st != StatusReserved && st != StatusCheckedOut && st != StatusFulfilled {
				if _, err := s.Gate.Release(ctx, GateRelease{ProductID: productID, ID: h.ID, Deadline: h.ExpiresAt, FromReserved: true}); err != nil {
					return round, err
				}
				s.changed(ctx, productID)
			}
		}
	}
	if rebuild {
		if err := s.Gate.Invalidate(ctx, productID, math.MaxInt64); err != nil {
			return round, err
		}
		if err := s.ensureGate(ctx, productID); err != nil {
			return round, err
		}
	}
	if drawn || len(round.Offers) > 0 || round.Expired > 0 {
		s.drawChanged(ctx, productID, round.Counts)
	}
	return round, nil
}

func (s *Service) offerWindow() time.Duration {
	if s.DrawOfferWindow > 0 {
		return s.DrawOfferWindow
	}
	return DefaultDrawOfferWindow
}

// drawChanged publishes a draw's counts for its room (coalesced by the broadcaster).
func (s *Service) drawChanged(ctx context.Context, productID string, c DrawCounts) {
	if s.DrawNotify == nil {
		return
	}
	if err := s.DrawNotify.DrawChanged(context.WithoutCancel(ctx), productID, c); err != nil {
		s.Log.Warn("publish draw counts", "product_id", productID, "err", err)
		return
	}
	s.changed(ctx, productID)
}

// DrawNotifier hears a draw's new counts (the WebSocket's draw message).
type DrawNotifier interface {
	DrawChanged(ctx context.Context, productID string, c DrawCounts) error
}

// holdsEnded backfills at once the draws whose offers are among holds that just ended: the
// entry becomes expired and its units go to the best-ranked waitlisted entry that fits. A
// failure here is repaired by the next sweep's round.
func (s *Service) holdsEnded(ctx context.Context, holds ...Reservation) {
	done := map[string]bool{}
	for _, h := range holds {
		if done[h.ProductID] || h.UserID == "" || h.ID != OfferID(h.ProductID, h.UserID) {
			continue
		}
		done[h.ProductID] = true
		if _, err := s.Offers(context.WithoutCancel(ctx), h.ProductID, false); err != nil {
			s.Log.Error("backfill a draw", "product_id", h.ProductID, "err", err)
		}
	}
}
