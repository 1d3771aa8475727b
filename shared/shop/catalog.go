package shop

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

var currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)

// Limits on what an admin may set.
const (
	MaxStock      = 1_000_000_000
	MaxPriceCents = 100_000_000_00
	MaxNameLen    = 200
)

// ValidText reports whether s is valid UTF-8 without control characters (C0, DEL or C1):
// what a name or a user id may hold. Postgres refuses NUL in text, and the others would reach
// logs, pages and CSV exports as they are.
func ValidText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// Products lists every product with its available units, from Redis alone (the catalog and
// the gates) once they are there: the read every viewer of a drop makes costs Postgres nothing.
// A catalog or gate lost with Redis is filled again from Postgres, once per process at a time.
func (s *Service) Products(ctx context.Context) ([]Product, error) {
	ps, complete, err := s.Gate.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	if !complete || !allHaveVariants(ps) {
		if ps, err = s.fillCatalog(ctx); err != nil {
			return nil, err
		}
	}
	for i := range ps {
		ps[i] = s.fixDue(ctx, ps[i])
	}
	return s.withAvailable(ctx, ps)
}

// Product returns one product with its available units, from Redis alone once the catalog and
// its gate are there; an unknown product is answered from the catalog too.
func (s *Service) Product(ctx context.Context, id string) (Product, error) {
	if !ValidProductID(id) {
		return Product{}, Invalid("id", "product id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	p, found, err := s.catalogProduct(ctx, id)
	if err != nil {
		return Product{}, err
	}
	if !found {
		return Product{}, Errorf(CodeNotFound, "no product %q", id)
	}
	ps, err := s.withAvailable(ctx, []Product{s.fixDue(ctx, p)})
	if err != nil {
		return Product{}, err
	}
	return ps[0], nil
}

// catalogProduct looks a product up in the catalog, filling the catalog from Postgres first
// when it is not complete.
func (s *Service) catalogProduct(ctx context.Context, id string) (Product, bool, error) {
	p, found, complete, err := s.Gate.CatalogProduct(ctx, id)
	if err != nil || (found && len(p.Variants) > 0) || (!found && complete) {
		return p, found, err
	}
	// Not in a catalog that is not complete, or an entry written before variants: from Postgres.
	all, err := s.fillCatalog(ctx)
	if err != nil {
		return Product{}, false, err
	}
	for _, p := range all {
		if p.ID == id {
			return p, true, nil
		}
	}
	return Product{}, false, nil
}

// fillCatalog writes every product Postgres has into the catalog and marks it complete.
// Concurrent callers in one process share one Postgres read.
func (s *Service) fillCatalog(ctx context.Context) ([]Product, error) {
	v, err, _ := s.rebuilds.Do("\x00catalog", func() (any, error) {
		rows, err := s.Store.Products(ctx)
		if err != nil {
			return nil, err
		}
		if err := s.Gate.PutCatalog(ctx, catalogEntries(rows...), true); err != nil {
			return nil, err
		}
		ps := make([]Product, len(rows))
		for i, r := range rows {
			ps[i] = r.product()
		}
		return ps, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]Product), nil
}

// allHaveVariants is false when a catalog entry was written before variants (it is filled again).
func allHaveVariants(ps []Product) bool {
	for _, p := range ps {
		if len(p.Variants) == 0 {
			return false
		}
	}
	return true
}

func catalogEntries(rows ...ProductRow) []CatalogEntry {
	out := make([]CatalogEntry, len(rows))
	for i, r := range rows {
		out[i] = CatalogEntry{Product: r.product(), Gen: r.Gen}
	}
	return out
}

// withAvailable reads available units from the gates, rebuilding any gate that is missing.
func (s *Service) withAvailable(ctx context.Context, ps []Product) ([]Product, error) {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	avail, err := s.Gate.Available(ctx, ids)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, id := range ids {
		if _, ok := avail[id]; !ok {
			if err := s.ensureGate(ctx, id); err != nil && ErrorCode(err) != CodeNotFound {
				return nil, err
			}
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		again, err := s.Gate.Available(ctx, missing)
		if err != nil {
			return nil, err
		}
		for id, n := range again {
			avail[id] = n
		}
	}
	out := make([]Product, 0, len(ps))
	for _, p := range ps {
		a := avail[p.ID]
		p.Available = a.Total
		vs := make([]Variant, len(p.Variants))
		for i, v := range p.Variants {
			v.Available = a.Variants[v.ID]
			vs[i] = v
		}
		p.Variants = vs
		if p.Allocation == "" {
			p.Allocation = AllocationFirstCome // a catalog entry written before draws
		}
		out = append(out, p)
	}
	return out, nil
}

func (r ProductRow) product() Product {
	vs := make([]Variant, len(r.Variants))
	for i, v := range r.Variants {
		vs[i] = Variant{ID: v.ID, Name: v.Name, PriceCents: v.Price(r.PriceCents)}
	}
	p := Product{ID: r.ID, Name: r.Name, PriceCents: r.PriceCents, Currency: r.Currency, MaxPerUser: r.MaxPerUser,
		OpensAt: r.OpensAt, ClosesAt: r.ClosesAt, QueueRate: r.QueueRate, Variants: vs, Allocation: AllocationFirstCome}
	if d := r.Draw; d != nil {
		at, c := d.DrawAt, d.Commitment
		p.Allocation, p.DrawAt, p.DrawCommitment, p.DrawEntriesDigest, p.DrawSeed = AllocationDraw, &at, &c, d.EntriesDigest, d.Seed
	}
	return p
}

// Admin returns the admin's view of a row: available is stock on hand minus live holds, as
// Postgres counts them, so available + held == stock in every answer, per variant too.
func (r ProductRow) Admin() AdminProduct {
	p := r.product()
	p.Available = r.Stock - r.Held
	vs := make([]AdminVariant, len(r.Variants))
	for i, v := range r.Variants {
		vs[i] = AdminVariant{Variant: p.Variants[i], Stock: v.Stock, Held: v.Held, Sold: v.Sold}
		vs[i].Available = v.Stock - v.Held
		p.Variants[i].Available = vs[i].Available
	}
	return AdminProduct{Product: p, Stock: r.Stock, Held: r.Held, Sold: r.Sold, Variants: vs}
}

// AdminProducts lists every product with its ledger.
func (s *Service) AdminProducts(ctx context.Context) ([]AdminProduct, error) {
	rows, err := s.Store.Products(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]AdminProduct, 0, len(rows))
	for _, r := range rows {
		a, err := s.adminOf(ctx, r)
		if err != nil {
			return nil, err
		}
		if r.QueueRate > 0 {
			if a.Queue, err = s.queueStats(ctx, r.ID); err != nil {
				s.Log.Warn("read waiting room", "product_id", r.ID, "err", err)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// UpsertProduct creates or updates a product. Its gate is rebuilt from Postgres at once, so
// available follows the new stock.
func (s *Service) UpsertProduct(ctx context.Context, id string, in ProductInput) (AdminProduct, error) {
	if !ValidProductID(id) {
		return AdminProduct{}, Invalid("id", "product id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	switch {
	case in.Name == "" || len(in.Name) > MaxNameLen:
		return AdminProduct{}, Invalid("name", "name must be 1 to %d bytes", MaxNameLen)
	case !ValidText(in.Name):
		return AdminProduct{}, Invalid("name", "name must not contain control characters")
	case in.PriceCents < 0 || in.PriceCents > MaxPriceCents:
		return AdminProduct{}, Invalid("price_cents", "price_cents must be from 0 to %d", int64(MaxPriceCents))
	case !currencyPattern.MatchString(in.Currency):
		return AdminProduct{}, Invalid("currency", "currency must be a lower-case ISO code such as usd")
	case in.Variants == nil && (in.Stock < 0 || in.Stock > MaxStock):
		return AdminProduct{}, Invalid("stock", "stock must be from 0 to %d", MaxStock)
	case in.MaxPerUser < 1 || in.MaxPerUser > MaxStock:
		return AdminProduct{}, Invalid("max_per_user", "max_per_user must be from 1 to %d", MaxStock)
	}
	if err := validVariants(in.Variants); err != nil {
		return AdminProduct{}, err
	}
	in.OpensAt, in.ClosesAt = msUTC(in.OpensAt), msUTC(in.ClosesAt)
	if err := validDrop(in); err != nil {
		return AdminProduct{}, err
	}
	if err := s.prepareDraw(&in); err != nil {
		return AdminProduct{}, err
	}
	row, err := s.Store.UpsertProduct(ctx, id, in, s.now())
	if err != nil {
		return AdminProduct{}, err
	}
	s.refreshGate(ctx, row)
	return s.adminOf(ctx, row)
}

// Restock adds delta units (maybe negative, never below what is held) to the stock on hand of
// a product with one variant.
func (s *Service) Restock(ctx context.Context, id string, delta int64) (AdminProduct, error) {
	return s.RestockVariant(ctx, id, "", delta)
}

// RestockVariant adds delta units (maybe negative, never below what is held) to a variant's
// stock on hand; variantID "" names the product's one variant (a product with more is invalid).
func (s *Service) RestockVariant(ctx context.Context, id, variantID string, delta int64) (AdminProduct, error) {
	if !ValidProductID(id) {
		return AdminProduct{}, Invalid("id", "product id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	if variantID != "" && !ValidVariantID(variantID) {
		return AdminProduct{}, Invalid("variant_id", "variant_id must match [a-z0-9][a-z0-9._-]{0,31}")
	}
	if delta < -MaxStock || delta > MaxStock {
		return AdminProduct{}, Invalid("delta", "delta must be from %d to %d", -MaxStock, MaxStock)
	}
	row, err := s.Store.Restock(ctx, id, variantID, delta, s.now())
	if errors.Is(err, ErrNotFound) {
		return AdminProduct{}, Errorf(CodeNotFound, "no product %q", id)
	}
	if err != nil {
		return AdminProduct{}, err
	}
	s.refreshGate(ctx, row)
	if row.Draw != nil {
		// New units of a drawn draw go to its waitlist at once, never to a first-come pool.
		if _, err := s.Offers(context.WithoutCancel(ctx), id, false); err != nil {
			s.Log.Error("offer restocked units", "product_id", id, "err", err) // the sweep's round does it
		}
	}
	return s.adminOf(ctx, row)
}

// Variant limits (API.md, "Variants").
const (
	MaxVariants       = 100
	MaxVariantNameLen = 100
)

var variantIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

// ValidVariantID reports whether id fits API.md's variant id pattern.
func ValidVariantID(id string) bool { return variantIDPattern.MatchString(id) }

// validVariants checks a PUT's variants (nil: the stock form, nothing to check).
func validVariants(vs []VariantInput) error {
	if vs == nil {
		return nil
	}
	if len(vs) < 1 || len(vs) > MaxVariants {
		return Invalid("variants", "a product has 1 to %d variants", MaxVariants)
	}
	seen := make(map[string]bool, len(vs))
	for i, v := range vs {
		field := func(f string) string { return fmt.Sprintf("variants[%d].%s", i, f) }
		switch n := utf8.RuneCountInString(v.Name); {
		case !ValidVariantID(v.ID):
			return Invalid(field("id"), "a variant id must match [a-z0-9][a-z0-9._-]{0,31}")
		case seen[v.ID]:
			return Invalid(field("id"), "variant %q is listed twice", v.ID)
		case !ValidText(v.Name) || n < 1 || n > MaxVariantNameLen:
			return Invalid(field("name"), "a variant name is 1 to %d characters, none of them a control character", MaxVariantNameLen)
		case v.Stock < 0 || v.Stock > MaxStock:
			return Invalid(field("stock"), "stock must be from 0 to %d", MaxStock)
		case v.PriceCents != nil && (*v.PriceCents < 0 || *v.PriceCents > MaxPriceCents):
			return Invalid(field("price_cents"), "price_cents must be from 0 to %d", int64(MaxPriceCents))
		}
		seen[v.ID] = true
	}
	return nil
}

// refreshGate drops a gate older than the row's generation and rebuilds it. Postgres already
// holds the change, so a failure here only delays it: a reserve recorded under the old
// generation is refused and retried, and the next use or sweep rebuilds the gate.
func (s *Service) refreshGate(ctx context.Context, row ProductRow) {
	ctx = context.WithoutCancel(ctx)
	if err := s.Gate.PutCatalog(ctx, catalogEntries(row), false); err != nil {
		// The next sweep writes the catalog again from Postgres.
		s.Log.Warn("refresh catalog", "product_id", row.ID, "err", err)
	}
	err := s.Gate.Invalidate(ctx, row.ID, row.Gen)
	if err == nil {
		err = s.ensureGate(ctx, row.ID)
	}
	if err != nil {
		s.Log.Warn("refresh gate", "product_id", row.ID, "err", err)
	}
}

// SweepReport says what one sweep did.
type SweepReport struct {
	Expired      int `json:"expired"`       // holds moved to expired in Postgres
	UnitsFreed   int `json:"units_freed"`   // units given back to available
	Orphans      int `json:"orphans"`       // gate holds Postgres never recorded or already ended
	GatesRebuilt int `json:"gates_rebuilt"` // missing gates set again from Postgres
	// StaleGates counts gates found lying (an older generation, or missing holds Postgres
	// has had live for a while: a failover to a replica that missed writes), then rebuilt.
	StaleGates int `json:"stale_gates"`
	// OrdersExpired counts payment_pending orders past their deadline that were ended.
	OrdersExpired int `json:"orders_expired"`
	// StalePaid counts paid orders not fulfilled within FulfillDeadline, now failed jobs.
	StalePaid int `json:"stale_paid"`
	// CancelsFinished counts cancels left between their steps (refund requested, not yet
	// cancelled) that this sweep refunded and cancelled.
	CancelsFinished int `json:"cancels_finished"`
	// Reconciled counts orders checked against Stripe (reconcilePayments), and
	// PaymentsReconciled those Stripe said were paid while Postgres had them expired.
	Reconciled         int `json:"reconciled"`
	PaymentsReconciled int `json:"payments_reconciled"`
	// RefundsStuck counts refunds requested more than an hour ago and not done, DrawsOverdue
	// draws whose draw_at is more than 5 minutes past and not drawn (alarms, docs/control-room.md).
	RefundsStuck int `json:"refunds_stuck"`
	DrawsOverdue int `json:"draws_overdue"`
}

// sweepBatch is how many holds one Postgres statement of the sweep expires.
const sweepBatch = 500

// Sweep is the expiry pass, safe to run concurrently with itself and with shoppers:
// reserved holds past their deadline become expired and their units return exactly once;
// gate holds whose deadline passed but that Postgres never recorded (a process died between
// the two steps) or already ended return their units; missing gates are rebuilt; old
// idempotency records are forgotten.
func (s *Service) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	now := s.now()
	for {
		holds, err := s.Store.ExpireDue(ctx, now, sweepBatch)
		if err != nil {
			return rep, err
		}
		rep.Expired += len(holds)
		if err := s.fault("sweep.before_gate"); err != nil {
			return rep, err // the orphan pass of a later sweep gives the units back
		}
		for _, h := range holds {
			// FromReserved: Postgres expired it from reserved, so a checkout mark in the gate
			// is a checkout that died before its order (else the units would wait 15 minutes).
			res, err := s.Gate.Release(ctx, GateRelease{ProductID: h.ProductID, ID: h.ID, Deadline: h.ExpiresAt, FromReserved: true, Count: CountExpired, At: now})
			if err != nil {
				return rep, err // the orphan pass of a later sweep finds it
			}
			if res.Outcome == GateReleased {
				s.figure(h.ProductID, FigureExpired, 1)
				rep.UnitsFreed += int(res.Quantity)
				s.changed(ctx, h.ProductID)
			}
		}
		s.holdsEnded(ctx, holds...)
		if len(holds) < sweepBatch {
			break
		}
	}
	stale, err := s.Store.MarkStalePaid(ctx, now.Add(-s.FulfillDeadline), now)
	if err != nil {
		return rep, err
	}
	rep.StalePaid = int(stale)
	rows, err := s.Store.Products(ctx)
	if err != nil {
		return rep, err
	}
	// The catalog follows Postgres within one sweep, whatever Redis lost or an admin change
	// that died before writing it left behind.
	var errs []error
	if err := s.Gate.PutCatalog(ctx, catalogEntries(rows...), true); err != nil {
		errs = append(errs, err)
	}
	for _, p := range rows {
		// One product's trouble must not stop the repair of the others.
		if err := s.sweepGate(ctx, p, now, &rep); err != nil {
			errs = append(errs, fmt.Errorf("sweep gate of %s: %w", p.ID, err))
		}
	}
	if _, err := s.Store.DeleteIdemBefore(ctx, now.Add(-s.IdemTTL-time.Hour)); err != nil {
		errs = append(errs, err)
	}
	if err := s.controlRoom(ctx, rows, now, &rep); err != nil {
		errs = append(errs, err)
	}
	// Draws: the digest at closes_at, the ranking at draw_at, and a round of offers for every
	// drawn draw (which repairs a backfill or an offer a death left half-done).
	if err := s.sweepDraws(ctx, now); err != nil {
		errs = append(errs, err)
	}
	// The passes that call Stripe come last: a slow or failing Stripe must not keep the gates
	// and the catalog from being repaired, nor a failing gate the payments from being settled.
	if s.Pay != nil {
		if err := s.expirePayments(ctx, &rep); err != nil {
			errs = append(errs, err)
		}
		if err := s.finishCancels(ctx, &rep); err != nil {
			errs = append(errs, err)
		}
		if err := s.reconcilePayments(ctx, &rep); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return rep, err
	}
	return rep, nil
}

// settleTime is how long a hold must have been unchanged in Postgres before the sweep
// expects the gate to have it: a hold enters the gate before Postgres records it and leaves
// it after Postgres ends it, so only a request stalled longer than this between its two
// steps could make a healthy gate look stale (and then it is only rebuilt, which is safe).
const settleTime = time.Minute

// checkGate rebuilds a gate that lies: one of an older generation than Postgres's (restored
// from an older copy, or an admin change whose refresh failed), one whose version is below
// one a recorded hold was granted at (restored from a copy older than that reserve), or one
// missing a hold that Postgres has had live for a while (a failover to a replica that missed
// the reserve, or a late payment's retake).
// Postgres never holds more than stock either way; this brings available back to the truth.
func (s *Service) checkGate(ctx context.Context, p ProductRow, now time.Time, rep *SweepReport) error {
	// Postgres first: every version it has recorded was handed out by the gate before.
	floor, err := s.Store.VersionFloor(ctx, p.ID)
	if err != nil {
		return err
	}
	gen, ver, holds, err := s.Gate.Holds(ctx, p.ID)
	if errors.Is(err, ErrNotFound) {
		return nil // rebuilt by the next use or sweep
	}
	if err != nil {
		return err
	}
	why := ""
	switch {
	case gen < p.Gen:
		why = fmt.Sprintf("gate generation %d, postgres %d", gen, p.Gen)
	case ver < floor:
		why = fmt.Sprintf("gate version %d, but postgres recorded a hold granted at %d", ver, floor)
	default:
		settled, err := s.Store.SettledHolds(ctx, p.ID, now.Add(-settleTime))
		if err != nil {
			return err
		}
		for id, q := range settled {
			if holds[id] != q {
				why = fmt.Sprintf("hold %s is %d units in postgres, %d in the gate", id, q, holds[id])
				break
			}
		}
	}
	if why == "" {
		return nil
	}
	s.Log.Warn("stale gate: rebuilt from postgres", "product_id", p.ID, "why", why)
	if err := s.Gate.Invalidate(ctx, p.ID, max(gen+1, p.Gen)); err != nil {
		return err
	}
	rep.StaleGates++
	return s.ensureGate(ctx, p.ID)
}

// sweepGate repairs one product's gate: rebuilds it if missing or stale, else releases its
// due holds that Postgres does not have as live.
func (s *Service) sweepGate(ctx context.Context, p ProductRow, now time.Time, rep *SweepReport) error {
	productID := p.ID
	if err := s.checkGate(ctx, p, now, rep); err != nil {
		return err
	}
	due, err := s.Gate.Due(ctx, productID, now)
	if errors.Is(err, ErrNotFound) {
		if err := s.ensureGate(ctx, productID); err != nil {
			return err
		}
		rep.GatesRebuilt++
		return nil
	}
	if err != nil || len(due) == 0 {
		return err
	}
	ids := make([]string, 0, len(due))
	for id := range due {
		ids = append(ids, id)
	}
	status, err := s.Store.HoldStatuses(ctx, ids)
	if err != nil {
		return err
	}
	var fulfilled []Reservation
	orphans := 0
	for id, deadline := range due {
		st, ok := status[id]
		if ok && (st == StatusReserved || st == StatusCheckedOut) {
			continue // live in Postgres: its own transition releases it
		}
		if st == StatusFulfilled {
			fulfilled = append(fulfilled, Reservation{ID: id, ProductID: productID}) // its units were sold
			continue
		}
		// Released only if its deadline is still the one read: a late payment may have
		// taken the hold again since Postgres was asked.
		res, err := s.Gate.Release(ctx, GateRelease{ProductID: productID, ID: id, Deadline: deadline, Count: CountLevels, At: now})
		if err != nil {
			return err
		}
		if res.Outcome == GateReleased {
			rep.Orphans++
			orphans++
			rep.UnitsFreed += int(res.Quantity)
			s.changed(ctx, productID)
		}
	}
	if err := s.Gate.Drop(ctx, fulfilled, now); err != nil {
		return err
	}
	if orphans > 0 {
		// A crash, or a failover to a copy that missed the release: in the second case the
		// version went back with it, so the gate is rebuilt under a new generation, whose
		// version is above every one handed out before.
		if err := s.Gate.Invalidate(ctx, productID, math.MaxInt64); err != nil {
			return err
		}
		return s.ensureGate(ctx, productID)
	}
	return nil
}
