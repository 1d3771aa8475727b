package shop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

var (
	productIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	holdIDPattern    = idPattern("r_")
)

// idPattern matches the ids NewID(prefix) makes.
func idPattern(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`^` + prefix + `[a-z2-7]{24}$`)
}

// MaxQuantity is the largest quantity one reserve may ask for.
const MaxQuantity = 1000

// ValidProductID reports whether id fits API.md's product id pattern.
func ValidProductID(id string) bool { return productIDPattern.MatchString(id) }

// ValidIdempotencyKey reports whether k is 1..255 visible ASCII characters.
func ValidIdempotencyKey(k string) bool {
	if len(k) < 1 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// ReserveRequest is one shopper's request for units of one product.
type ReserveRequest struct {
	UserID    string
	ProductID string
	// VariantID is the variant asked for, "" for the product's one variant.
	VariantID string
	Quantity  int64
	// IdemKey is the request's Idempotency-Key, "" when it has none.
	IdemKey string
}

// maxReserveTries bounds one reserve's rounds against the gate (rebuilds, refusals, replays).
const maxReserveTries = 200

// replayWait bounds how long a repeated Idempotency-Key waits for the first request to land.
const replayWait = 3 * time.Second

// Reserve takes units for a new hold: first atomically in the Redis gate, then durably in
// Postgres. If the Postgres write fails the units go back before it answers; if the process
// dies in between, the sweep gives them back after the hold's deadline.
func (s *Service) Reserve(ctx context.Context, req ReserveRequest) (out Reserved, err error) {
	if !ValidProductID(req.ProductID) {
		return Reserved{}, Invalid("product_id", "product_id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	if req.VariantID != "" && !ValidVariantID(req.VariantID) {
		return Reserved{}, Invalid("variant_id", "variant_id must match [a-z0-9][a-z0-9._-]{0,31}")
	}
	if req.Quantity < 1 || req.Quantity > MaxQuantity {
		return Reserved{}, Invalid("quantity", "quantity must be an integer from 1 to %d", MaxQuantity)
	}
	if req.IdemKey != "" && !ValidIdempotencyKey(req.IdemKey) {
		return Reserved{}, Invalid("Idempotency-Key", "Idempotency-Key must be 1 to 255 visible ASCII characters")
	}
	hash := ""
	if req.IdemKey != "" {
		hash = reserveHash(req)
	}
	start := time.Now()             // the reserve's latency, for the control room (not business time)
	giveUp := start.Add(replayWait) // a wait bound, not business time
	charge := true                  // only the first gate call of a request takes a token from the bucket
	counted := ""                   // the last answer the gate counted
	defer func() {
		if err != nil {
			switch ErrorCode(err) {
			case CodeInternal, CodeUnavailable, CodePaymentProviderError:
				s.figure(req.ProductID, FigureReserve5xx, 1)
			}
		}
		if counted == "" {
			return
		}
		// Recorded by this process's next reserve of the product (metric.lua): nothing is
		// written after the answer, which a frozen Lambda environment might never send.
		d := time.Since(start)
		s.latency.add(req.ProductID, d)
		if err == nil || outcomeFigure(counted) != FigureReserveOK {
			s.figure(req.ProductID, outcomeFigure(counted), 1)
		}
		s.figure(req.ProductID, FigureReserveLatency, float64(d.Microseconds())/1000)
	}()
	for tries := 0; ; tries++ {
		if tries == maxReserveTries {
			// Gates rebuilt or refused again and again: a bug or a storm; the shopper may retry.
			return Reserved{}, Errorf(CodeUnavailable, "the stock gate keeps changing; try again")
		}
		now := s.now()
		a := GateReserve{
			ProductID: req.ProductID, VariantID: req.VariantID, ID: NewID("r_"), UserID: req.UserID, Quantity: req.Quantity,
			Now: now, Deadline: now.Add(s.HoldTTL), IdemKey: req.IdemKey, RequestHash: hash,
			Seed: Seed(), Charge: charge, AdmissionWindow: s.AdmissionWindow,
			ShopperRate: s.ShopperRate, ShopperBurst: s.ShopperBurst, Latencies: s.latency.take(req.ProductID, s.LatencyBatch),
		}
		res, err := s.Gate.Reserve(ctx, a)
		if err != nil {
			s.latency.putBack(req.ProductID, a.Latencies)
			return Reserved{}, err
		}
		if res.Outcome != GateMissing {
			charge = false
		}
		if outcomeFigure(res.Outcome) != "" {
			counted = res.Outcome
		}
		if req.IdemKey != "" && refusal(res.Outcome) {
			// A refusal stores nothing, but the key may have been answered 201 before, and
			// after a failover to an older copy Redis no longer knows it: Postgres, which keeps
			// every first answer, decides (one primary-key read; unkeyed refusals stay
			// Redis-only). With Postgres unreachable the refusal stands, so that a drop's
			// sold-out answers go on; only a failover at the same time can make it wrong.
			out, err := s.replay(ctx, req, hash)
			switch {
			case errors.Is(err, ErrNotFound):
			case errors.Is(err, ErrUnavailable):
				s.Log.Warn("keyed refusal answered from redis alone: postgres is unreachable", "product_id", req.ProductID, "err", err)
			default:
				return out, err
			}
		}
		switch res.Outcome {
		case GateRateLimited:
			return Reserved{}, RateLimited(res.Wait)
		case GateNotOpen:
			p, _, err := s.catalogProduct(ctx, req.ProductID)
			if err != nil {
				return Reserved{}, err
			}
			return Reserved{}, notOpen(p, res.Which)
		case GateNotAdmitted:
			return Reserved{}, notAdmitted(res.Ahead)
		case GateNoVariant:
			return Reserved{}, Errorf(CodeNotFound, "product %q has no variant %q", req.ProductID, req.VariantID)
		case GateNeedVariant:
			return Reserved{}, Invalid("variant_id", "product %q has several variants: name one in variant_id", req.ProductID)
		case GateMissing:
			// Postgres decides whether the product exists: after a failover to a copy that
			// missed a new product, the catalog may lack it too (the rebuild writes it back).
			if err := s.ensureGate(ctx, req.ProductID); err != nil {
				return Reserved{}, err
			}
			continue
		case GateConflict:
			return Reserved{}, Errorf(CodeIdempotencyConflict, "this Idempotency-Key was used with another request")
		case GateReplay:
			// The first request with this key holds units; answer with what it recorded.
			out, err := s.replay(ctx, req, hash)
			if !errors.Is(err, ErrNotFound) {
				return out, err
			}
			if time.Now().After(giveUp) {
				return Reserved{}, Errorf(CodeUnavailable, "the first request with this Idempotency-Key is still in progress")
			}
			sleep(ctx, 20*time.Millisecond)
			continue
		case GateOutOfStock, GateLimit:
			if res.Outcome == GateLimit {
				e := Errorf(CodeLimitExceeded, "at most %d units of this product per shopper", res.Limit)
				e.Details = map[string]any{"limit": res.Limit}
				return Reserved{}, e
			}
			e := Errorf(CodeOutOfStock, "only %d left", res.Available)
			e.Details = map[string]any{"available": res.Available}
			return Reserved{}, e
		case GateOK:
			out, retry, err := s.record(ctx, req, a, res, hash)
			if retry {
				continue
			}
			return out, err
		default:
			return Reserved{}, fmt.Errorf("reserve: unexpected gate outcome %q", res.Outcome)
		}
	}
}

// record writes a hold the gate granted to Postgres, undoing the gate's step if it cannot.
func (s *Service) record(ctx context.Context, req ReserveRequest, a GateReserve, res GateResult, hash string) (out Reserved, retry bool, err error) {
	out = Reserved{
		Reservation: Reservation{
			ID: a.ID, ProductID: a.ProductID, VariantID: res.VariantID, UserID: a.UserID, Quantity: a.Quantity,
			Status: StatusReserved, ExpiresAt: a.Deadline, CreatedAt: a.Now,
		},
		Available: res.Available,
	}
	var idem *IdemRecord
	if req.IdemKey != "" {
		body, err := json.Marshal(out)
		if err != nil {
			return Reserved{}, false, fmt.Errorf("encode reservation: %w", err)
		}
		idem = &IdemRecord{UserID: req.UserID, Key: req.IdemKey, RequestHash: hash, Status: 201, Body: body, CreatedAt: a.Now}
	}
	if s.Fault != nil {
		if err := s.Fault("reserve.before_record"); err != nil {
			return Reserved{}, false, err // the process "dies": nothing is undone here
		}
	}
	ok, err := s.Store.InsertHold(ctx, out.Reservation, res.Gen, res.Version, s.now(), idem)
	if err == nil && ok {
		s.changed(ctx, a.ProductID)
		return out, false, nil
	}
	if errors.Is(err, ErrMaybeWritten) {
		// Giving the units back could oversell if the hold was recorded; keeping them loses
		// nothing: past the deadline the sweep frees them unless Postgres has the hold.
		return Reserved{}, false, err
	}
	if uerr := s.undo(ctx, a); uerr != nil {
		s.Log.Error("undo reserve", "reservation_id", a.ID, "product_id", a.ProductID, "err", uerr)
	}
	switch {
	case errors.Is(err, ErrIdemTaken):
		out, err := s.replay(ctx, req, hash)
		return out, false, err
	case errors.Is(err, ErrGateStale):
		// The gate lied (an older copy after a failover): drop it and retry, which rebuilds
		// it from Postgres under a new generation and answers from the truth.
		s.Log.Warn("stale gate: postgres refused a hold the gate granted", "product_id", a.ProductID, "gen", res.Gen, "err", err)
		if err := s.Gate.Invalidate(context.WithoutCancel(ctx), a.ProductID, res.Gen+1); err != nil {
			return Reserved{}, false, err
		}
		return Reserved{}, true, nil
	case err != nil:
		return Reserved{}, false, err
	default:
		// The gate was rebuilt under a newer generation while we held units of the old one.
		if err := s.Gate.Invalidate(context.WithoutCancel(ctx), a.ProductID, res.Gen+1); err != nil {
			return Reserved{}, false, err
		}
		return Reserved{}, true, nil
	}
}

// refusal reports whether a gate outcome refuses the request for good (as opposed to a
// replay, a retry, or rate_limited's "slow down").
func refusal(outcome string) bool {
	switch outcome {
	case GateOutOfStock, GateLimit, GateNotOpen, GateNotAdmitted:
		return true
	}
	return false
}

// undo gives back the units the gate granted to a hold that Postgres did not record.
func (s *Service) undo(ctx context.Context, a GateReserve) error {
	_, err := s.Gate.Release(context.WithoutCancel(ctx), GateRelease{ProductID: a.ProductID, ID: a.ID, Deadline: a.Deadline, UserID: a.UserID, IdemKey: a.IdemKey,
		Count: CountUndo, At: a.Now})
	s.changed(ctx, a.ProductID)
	return err
}

// replay answers a repeated Idempotency-Key from its stored record: the first response again,
// or idempotency_conflict for another request. ErrNotFound when nothing is stored yet.
func (s *Service) replay(ctx context.Context, req ReserveRequest, hash string) (Reserved, error) {
	rec, err := s.Store.Idem(ctx, req.UserID, req.IdemKey)
	if err != nil {
		return Reserved{}, err
	}
	if rec.RequestHash != hash {
		return Reserved{}, Errorf(CodeIdempotencyConflict, "this Idempotency-Key was used with another request")
	}
	var out Reserved
	if err := json.Unmarshal(rec.Body, &out); err != nil {
		return Reserved{}, fmt.Errorf("decode stored response: %w", err)
	}
	out.UserID = req.UserID
	if out.VariantID == "" {
		out.VariantID = DefaultVariant // stored before variants
	}
	return out, nil
}

// reserveHash is a reserve's request hash. Naming no variant and naming `default` is the same
// request (on a product with one variant, `default`, both take it; on one with more, naming
// none is refused before anything is stored), and it hashes as a reserve did before variants,
// so the keys of requests answered then still replay.
func reserveHash(req ReserveRequest) string {
	if req.VariantID == "" || req.VariantID == DefaultVariant {
		return requestHash("POST /reservations", req.ProductID, req.Quantity)
	}
	return requestHash("POST /reservations", req.ProductID, req.Quantity, req.VariantID)
}

// requestHash identifies a request's meaning (route and fields), so that the same request
// sent with other formatting is still the same request.
func requestHash(route string, fields ...any) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s", route)
	for _, f := range fields {
		fmt.Fprintf(h, "\x00%v", f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ensureGate rebuilds a product's missing gate from Postgres; ErrNotFound → 404.
func (s *Service) ensureGate(ctx context.Context, productID string) error {
	_, err, _ := s.rebuilds.Do(productID, func() (any, error) {
		var holds []Reservation // the live holds a gate was set with
		err := s.Store.RebuildGate(ctx, productID, func(st GateState) (bool, error) {
			set, err := s.Gate.Rebuild(ctx, st, s.now())
			if set {
				holds = st.Holds
				s.changed(ctx, productID)
				// The catalog entry comes back with the gate (a failover may have lost both).
				if err := s.Gate.PutCatalog(ctx, catalogEntries(st.Row), false); err != nil {
					s.Log.Warn("write catalog entry", "product_id", productID, "err", err)
				}
			}
			return set, err
		})
		if err == nil && len(holds) > 0 {
			err = s.settleRebuilt(ctx, productID, holds)
		}
		return nil, err
	})
	if errors.Is(err, ErrNotFound) {
		return Errorf(CodeNotFound, "no product %q", productID)
	}
	return err
}

// settleRebuilt ends, in a gate just set, the holds that ended in Postgres while it was being
// rebuilt: their own release found no gate to give the units back to, so they would stay held
// until their deadline. A release that commits after this read finds the gate and does it itself.
func (s *Service) settleRebuilt(ctx context.Context, productID string, holds []Reservation) error {
	ids := make([]string, len(holds))
	for i, h := range holds {
		ids[i] = h.ID
	}
	status, err := s.Store.HoldStatuses(ctx, ids)
	if err != nil {
		return err
	}
	var fulfilled []Reservation
	for _, h := range holds {
		switch status[h.ID] {
		case StatusReserved, StatusCheckedOut:
			continue
		case StatusFulfilled:
			fulfilled = append(fulfilled, Reservation{ID: h.ID, ProductID: productID}) // sold: no units back
			continue
		}
		res, err := s.Gate.Release(ctx, GateRelease{ProductID: productID, ID: h.ID, Deadline: h.ExpiresAt})
		if err != nil {
			return err
		}
		if res.Outcome == GateReleased {
			s.changed(ctx, productID)
		}
	}
	if len(fulfilled) > 0 {
		return s.Gate.Drop(ctx, fulfilled, s.now())
	}
	return nil
}

// Release ends the user's reserved hold now and gives its units back. Releasing a hold that
// is already released or expired is fine; a checked-out one is invalid_state.
func (s *Service) Release(ctx context.Context, userID, id string) error {
	if !holdIDPattern.MatchString(id) {
		return Errorf(CodeNotFound, "no such reservation")
	}
	r, released, err := s.Store.ReleaseHold(ctx, id, userID, s.now())
	if errors.Is(err, ErrNotFound) {
		return Errorf(CodeNotFound, "no such reservation")
	}
	if err != nil {
		return err
	}
	if !released {
		switch r.Status {
		case StatusReleased, StatusExpired:
			return nil
		default:
			e := Errorf(CodeInvalidState, "a %s reservation cannot be released", r.Status)
			e.Details = map[string]any{"status": r.Status}
			return e
		}
	}
	if err := s.fault("release.before_gate"); err != nil {
		return err // the process "dies": the sweep gives the units back after the deadline
	}
	// FromReserved: a checkout of this hold that marked it in the gate can no longer record its
	// order, so its mark goes too and the units return now (API.md), not at the payment deadline.
	res, err := s.Gate.Release(context.WithoutCancel(ctx), GateRelease{ProductID: r.ProductID, ID: r.ID, Deadline: r.ExpiresAt, FromReserved: true,
		Count: CountReleased, At: s.now()})
	if err != nil {
		// Postgres says released; the sweep gives the units back after the deadline.
		s.Log.Error("release in gate", "reservation_id", r.ID, "product_id", r.ProductID, "err", err)
	} else if res.Outcome == GateReleased {
		s.figure(r.ProductID, FigureReleased, 1)
	}
	s.changed(ctx, r.ProductID)
	s.holdsEnded(ctx, r) // a draw's offer: its units go to the waitlist at once
	return nil
}

// ListMine returns the user's live holds: reserved and not past their deadline, or checked out.
func (s *Service) ListMine(ctx context.Context, userID string) ([]Reservation, error) {
	rs, err := s.Store.LiveHolds(ctx, userID, s.now())
	if rs == nil {
		rs = []Reservation{}
	}
	return rs, err
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
