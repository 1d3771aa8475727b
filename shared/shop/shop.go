// Package shop holds lastunit's business rules: holds on scarce stock, their expiry, and the
// admin's product tools. It talks to Postgres (the truth) and to the Redis gate (the fast,
// atomic check) through the small interfaces below, and to nothing else.
package shop

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"log/slog"
	"time"

	"golang.org/x/sync/singleflight"

	"lastunit/shared/draw"
)

// Hold statuses (the status of a Reservation).
const (
	StatusReserved   = "reserved"
	StatusCheckedOut = "checked_out"
	StatusFulfilled  = "fulfilled"
	StatusReleased   = "released"
	StatusExpired    = "expired"
	StatusCancelled  = "cancelled"
)

// DefaultVariant is the id of the one variant of a product created or updated with stock (and
// of every product from before variants).
const DefaultVariant = "default"

// Variant is one variant (a size) of a product as shoppers see it.
type Variant struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Available  int64  `json:"available"`
}

// AdminVariant is a variant with its ledger: Available + Held == Stock.
type AdminVariant struct {
	Variant
	Stock int64 `json:"stock"`
	Held  int64 `json:"held"`
	Sold  int64 `json:"sold"`
}

// Product is a product as shoppers see it.
type Product struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Currency   string `json:"currency"`
	Available  int64  `json:"available"`
	MaxPerUser int64  `json:"max_per_user"`
	// OpensAt and ClosesAt are the sale window (nil: open from creation / never closes).
	OpensAt  *time.Time `json:"opens_at"`
	ClosesAt *time.Time `json:"closes_at"`
	// QueueRate is the waiting room's admissions per second (0: no waiting room).
	QueueRate int64 `json:"queue_rate"`
	// Variants are the product's 1..100 variants in the admin's order; Available is their sum.
	Variants []Variant `json:"variants"`
	// Allocation is first_come or draw; the draw fields are null unless it is a draw (API.md
	// "Draws"): the seed's commitment from the start, the entries' digest from closes_at, the
	// seed (hex) after the draw.
	Allocation        string     `json:"allocation"`
	DrawAt            *time.Time `json:"draw_at"`
	DrawCommitment    *string    `json:"draw_commitment"`
	DrawEntriesDigest *string    `json:"draw_entries_digest"`
	DrawSeed          *string    `json:"draw_seed"`
}

// AdminProduct is a product with its ledger: Available + Held == Stock, and Stock + Sold
// changes only by restocking.
type AdminProduct struct {
	Product
	Stock int64 `json:"stock"`
	Held  int64 `json:"held"`
	Sold  int64 `json:"sold"`
	// Variants carry their own ledger (they shadow Product.Variants in JSON).
	Variants []AdminVariant `json:"variants"`
	// Queue is the waiting room's state, for a product with one (dashboard only).
	Queue *QueueStats `json:"queue,omitempty"`
	// Draw counts a draw's entries by state (absent for a first-come product).
	Draw *DrawCounts `json:"draw,omitempty"`
}

// ProductInput is what an admin sets on a product.
type ProductInput struct {
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Currency   string `json:"currency"`
	Stock      int64  `json:"stock"`
	MaxPerUser int64  `json:"max_per_user"`
	// The drop fields: sale window and waiting room (see Product).
	OpensAt   *time.Time `json:"opens_at"`
	ClosesAt  *time.Time `json:"closes_at"`
	QueueRate int64      `json:"queue_rate"`
	// Variants, when not nil, are exactly the product's variants (then Stock is unused);
	// nil: the product has one variant holding Stock.
	Variants []VariantInput `json:"variants"`
	// Allocation ("" or first_come, or draw) and DrawAt: API.md "Draws". DrawSeed is the seed a
	// product that becomes a draw now gets (never replaces the seed of a draw).
	Allocation string     `json:"allocation"`
	DrawAt     *time.Time `json:"draw_at"`
	DrawSeed   draw.Seed  `json:"-"`
	// CheckAllocation, when set, is called by the store under the product's lock with what the
	// product is now (nil: it did not exist); an error from it changes nothing.
	CheckAllocation func(cur *CurrentAllocation) error `json:"-"`
}

// VariantInput is what an admin sets on one variant.
type VariantInput struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Stock int64  `json:"stock"`
	// PriceCents nil: the product's price.
	PriceCents *int64 `json:"price_cents"`
}

// Reservation is one hold of one product by one user.
type Reservation struct {
	ID        string    `json:"id"`
	ProductID string    `json:"product_id"`
	VariantID string    `json:"variant_id"`
	UserID    string    `json:"-"`
	Quantity  int64     `json:"quantity"`
	Status    string    `json:"status"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
	OrderID   *string   `json:"order_id"`
}

// Reserved is the answer to a reserve: the hold and the product's available units after it.
type Reserved struct {
	Reservation
	Available int64 `json:"available"`
}

// ProductRow is a product as Postgres keeps it.
type ProductRow struct {
	ID         string
	Name       string
	PriceCents int64
	Currency   string
	Stock      int64
	Sold       int64
	Held       int64
	MaxPerUser int64
	Gen        int64
	OpensAt    *time.Time
	ClosesAt   *time.Time
	QueueRate  int64
	// Variants in the product's order; Stock, Sold and Held are their sums.
	Variants []VariantRow
	// Draw is the product's draw, nil for a first-come product.
	Draw *DrawInfo
}

// DrawInfo is what a product row carries of its draw: its public fields.
type DrawInfo struct {
	DrawAt        time.Time
	Commitment    string
	EntriesDigest *string
	// Seed is the seed in hex once the draw ran (nil before: it is secret until then).
	Seed *string
}

// VariantRow is a variant as Postgres keeps it.
type VariantRow struct {
	ID   string
	Name string
	// PriceCents nil: the product's price.
	PriceCents *int64
	Stock      int64
	Sold       int64
	Held       int64
}

// Price returns the variant's unit price in a product of price productPrice.
func (v VariantRow) Price(productPrice int64) int64 {
	if v.PriceCents != nil {
		return *v.PriceCents
	}
	return productPrice
}

// GateVariant is one variant's available units as a rebuild sets them.
type GateVariant struct {
	ID        string
	Available int64
}

// GateState is what a product's gate is rebuilt from: Postgres's view under a new generation.
type GateState struct {
	ProductID  string
	Available  int64 // summed over the variants
	MaxPerUser int64
	Gen        int64
	// Variants in the product's order, each with its available units.
	Variants []GateVariant
	Holds    []Reservation // live holds: reserved or checked out
	// The drop fields: the sale window and the waiting room's rate.
	OpensAt, ClosesAt *time.Time
	QueueRate         int64
	// Purchased is, per shopper, the units of the product in fulfilled holds: they left the
	// gate's holds but still count against max_per_user (paid holds are live holds already).
	Purchased map[string]int64
	// Row is the product as the rebuild read it, under the new generation (for the catalog).
	Row ProductRow
	// Draw says the product is sold by draw: the gate refuses every reserve (not_admitted) and
	// takes only offers.
	Draw bool
}

// IdemRecord is a stored answer to a request that carried an Idempotency-Key.
type IdemRecord struct {
	UserID      string
	Key         string
	RequestHash string
	Status      int
	Body        []byte
	CreatedAt   time.Time
}

// Store is Postgres, the source of truth.
type Store interface {
	// Product returns one product with its held units; ErrNotFound if there is none.
	Product(ctx context.Context, id string) (ProductRow, error)
	// Products returns every product with its held units, ordered by id.
	Products(ctx context.Context) ([]ProductRow, error)
	// UpsertProduct creates or updates a product and bumps its gate generation.
	// Setting stock below the held units is an invalid_state *Error.
	UpsertProduct(ctx context.Context, id string, in ProductInput, now time.Time) (ProductRow, error)
	// Restock adds delta (maybe negative) to a variant's stock ("": the product's one variant)
	// and bumps the gate generation.
	Restock(ctx context.Context, id, variantID string, delta int64, now time.Time) (ProductRow, error)
	// RebuildGate locks the product, bumps its generation, reads its live holds and passes the
	// state to apply; it commits only if apply reports that it set the gate.
	RebuildGate(ctx context.Context, id string, apply func(GateState) (bool, error)) error
	// InsertHold records a new hold taken under gate generation gen at live-stock version
	// version, with its idempotency record when idem is not nil. It returns false when the generation is no longer the
	// product's (the gate was rebuilt meanwhile) or the deadline is not after now,
	// ErrIdemTaken when the user already used idem.Key, and ErrGateStale when Postgres does
	// not have the units free (it never holds more than stock).
	InsertHold(ctx context.Context, r Reservation, gen, version int64, now time.Time, idem *IdemRecord) (bool, error)
	// VersionFloor returns the highest live-stock version at which a gate granted a hold
	// Postgres recorded (InsertHold's version): a gate below it lost acknowledged writes.
	VersionFloor(ctx context.Context, productID string) (int64, error)
	// Idem returns a stored idempotency record; ErrNotFound if there is none.
	Idem(ctx context.Context, userID, key string) (IdemRecord, error)
	// ReleaseHold moves the user's hold from reserved to released (compare-and-set). It returns
	// the hold as it is now and whether this call released it; ErrNotFound if the user has no
	// such hold.
	ReleaseHold(ctx context.Context, id, userID string, now time.Time) (Reservation, bool, error)
	// LiveHolds returns the user's reserved holds not past now and checked-out holds.
	LiveHolds(ctx context.Context, userID string, now time.Time) ([]Reservation, error)
	// ExpireDue moves up to limit reserved holds whose deadline is not after now to expired
	// and returns those this call moved.
	ExpireDue(ctx context.Context, now time.Time, limit int) ([]Reservation, error)
	// HoldStatuses returns the status of each of the given holds that Postgres has.
	HoldStatuses(ctx context.Context, ids []string) (map[string]string, error)
	// SettledHolds returns the product's live holds (id -> quantity) that no transition
	// touched since before.
	SettledHolds(ctx context.Context, productID string, before time.Time) (map[string]int64, error)
	// DeleteIdemBefore forgets idempotency records created before t.
	DeleteIdemBefore(ctx context.Context, t time.Time) (int64, error)
	// ClaimIdem records a pending idempotency record for (userID, key) unless one exists,
	// and returns the existing one (claimed false) when it does. A pending record older than
	// staleBefore is taken over.
	ClaimIdem(ctx context.Context, userID, key, requestHash string, now, staleBefore time.Time) (IdemRecord, bool, error)
	// CompleteIdem stores the answer of a claimed record.
	CompleteIdem(ctx context.Context, userID, key string, status int, body []byte) error
	// DropIdem forgets a claimed record that is still pending (the request changed nothing).
	DropIdem(ctx context.Context, userID, key string) error

	OrderStore
	ControlStore
	DrawStore
}

// ErrMaybeWritten marks a write whose outcome is unknown: the statement may have committed
// before the connection failed. Nothing is undone on it; the sweep settles it.
var ErrMaybeWritten = errors.New("the write may have been committed")

// ErrGateStale is returned by Store.InsertHold when Postgres refuses the hold because the
// product's free units (stock minus live holds) cannot cover it: the gate that granted the
// units is stale (a Redis failover lost acknowledged writes). The gate must be rebuilt.
var ErrGateStale = errors.New("postgres refused the hold: the gate granted units it does not have")

// ErrIdemTaken is returned by Store.InsertHold when the Idempotency-Key was used already.
var ErrIdemTaken = Errorf(CodeIdempotencyConflict, "this Idempotency-Key was already used")

// Gate is the Redis stock gate: the fast, atomic check in front of Postgres.
type Gate interface {
	// Reserve runs reserve.lua for one hold.
	Reserve(ctx context.Context, a GateReserve) (GateResult, error)
	// Release runs release.lua for one hold.
	Release(ctx context.Context, r GateRelease) (GateResult, error)
	// Rebuild runs rebuild.lua and reports whether it set the gate.
	Rebuild(ctx context.Context, s GateState, now time.Time) (bool, error)
	// Invalidate drops the product's gate if its generation is below gen.
	Invalidate(ctx context.Context, productID string, gen int64) error
	// Available returns the available units of each product that has a gate, in total and
	// per variant.
	Available(ctx context.Context, ids []string) (map[string]Availability, error)
	// Due returns the holds of the product whose deadline is not after now, with their
	// deadlines; ErrNotFound when the product has no gate.
	Due(ctx context.Context, productID string, now time.Time) (map[string]time.Time, error)
	// Holds returns the gate's generation, version and holds (id -> quantity), read
	// together; ErrNotFound when the product has no gate.
	Holds(ctx context.Context, productID string) (gen, version int64, holds map[string]int64, err error)

	DrawGate

	CartGate
	Catalog
	Drops
	Meter
}

// Catalog is every product's shopper-facing details kept in Redis beside the gates, so that
// the product reads every viewer of a drop makes need no Postgres query.
type Catalog interface {
	// PutCatalog writes products (an entry is replaced only by one of the same or a newer
	// generation); complete says these are every product Postgres has.
	PutCatalog(ctx context.Context, entries []CatalogEntry, complete bool) error
	// Catalog returns every product in the catalog by id, without available units; complete
	// is false when the catalog was never filled or was lost with Redis.
	Catalog(ctx context.Context) (products []Product, complete bool, err error)
	// CatalogProduct returns one product; found false means unknown only when complete.
	CatalogProduct(ctx context.Context, id string) (p Product, found, complete bool, err error)
}

// CatalogEntry is one product in the catalog, with the gate generation of the row it was read
// from (every admin change bumps it).
type CatalogEntry struct {
	Product Product
	Gen     int64
}

// Notifier hears that products' available units changed, for the live stock fan-out. It
// must not block: the request path does not wait on the fan-out.
type Notifier interface {
	StockChanged(ctx context.Context, productIDs ...string)
}

// changed tells the notifier, if any, that products' available units changed.
func (s *Service) changed(ctx context.Context, productIDs ...string) {
	if s.Notify != nil && len(productIDs) > 0 {
		s.Notify.StockChanged(context.WithoutCancel(ctx), productIDs...)
	}
}

// Availability is a product's available units in its gate: the total and each variant's.
type Availability struct {
	Total    int64
	Variants map[string]int64
}

// GateRelease is one release.lua call.
type GateRelease struct {
	ProductID, ID string
	// Deadline is the deadline the caller knows the hold by; a hold whose deadline changed
	// since is left alone. Zero: any deadline.
	Deadline time.Time
	// FromReserved says Postgres has just moved the hold from reserved (with Deadline) to an
	// end state: then a gate hold marked checked out under another deadline is released too.
	// It belongs to a checkout whose order can never be recorded (the process died between
	// checkout.lua and the order, or this release won the race with it); without this its units
	// would wait for the payment deadline.
	FromReserved bool
	// UserID and IdemKey name an Idempotency-Key entry to forget with the hold (undoing a
	// reserve that Postgres refused); empty for none.
	UserID, IdemKey string
	// Count is what a release by this call counts in the second of At for the control room
	// (CountReleased, CountExpired, CountUndo, CountLevels); "" or a zero At: nothing.
	Count string
	At    time.Time
}

// GateReserve is one reserve.lua call.
type GateReserve struct {
	ProductID string
	// VariantID is the variant asked for, "" for the product's one variant.
	VariantID   string
	ID          string
	UserID      string
	Quantity    int64
	Now         time.Time
	Deadline    time.Time
	IdemKey     string // "" when the request has none
	RequestHash string
	// Seed is a fresh secret random seed (hex) for the waiting room's shuffle, should this
	// call be the first touch after the opening.
	Seed string
	// Charge takes a token from the shopper's bucket (false for a retry of the same request).
	Charge bool
	// Limits: the admission window, and the shopper's rate (per second, 0: none) and burst.
	AdmissionWindow time.Duration
	ShopperRate     float64
	ShopperBurst    int64
	// Latencies are reserve latencies this process measured earlier for the product (bucket →
	// count, LatencyBucket), recorded by this call in its second's histogram.
	Latencies map[int]int64
}

// Gate outcomes (GateResult.Outcome).
const (
	GateOK         = "ok"
	GateReplay     = "replay"
	GateConflict   = "conflict"
	GateOutOfStock = "out_of_stock"
	GateLimit      = "limit"
	GateMissing    = "missing"
	GateReleased   = "released"
	GateAbsent     = "absent"
	// GateRateLimited: the shopper's token bucket is empty (GateResult.Wait says how long).
	GateRateLimited = "rate_limited"
	// GateNotOpen: before opens_at (Which "opens") or from closes_at on (Which "closes").
	GateNotOpen = "not_open"
	// GateNotAdmitted: the product has a waiting room and the caller has no admitted ticket
	// (GateResult.Ahead, -1 before the opening).
	GateNotAdmitted = "not_admitted"
	// GateNoVariant: the product has no such variant.
	GateNoVariant = "no_variant"
	// GateNeedVariant: no variant was named, and the product has more than one.
	GateNeedVariant = "need_variant"
)

// GateResult is what a gate script answered.
type GateResult struct {
	Outcome   string
	Available int64
	Gen       int64
	Version   int64
	Limit     int64
	Quantity  int64
	// ID is, for a replay, the hold first taken under the same Idempotency-Key.
	ID string
	// VariantID is, for ok, the variant the hold took (the one named, or the product's only one).
	VariantID string
	// Wait is, for rate_limited, how long until the shopper's next token.
	Wait time.Duration
	// Which is, for not_open, "opens" or "closes".
	Which string
	// Ahead is, for not_admitted, how many shoppers are ahead (-1: before the opening).
	Ahead int64
}

// Service runs the rules. Build it once per cold start.
type Service struct {
	Store Store
	Gate  Gate
	Pay   Payments    // nil where no function needs Stripe
	Jobs  Jobs        // nil where no function queues fulfillment
	Dead  DeadLetters // nil where no function handles dead letters
	// Notify hears of every change of a product's available units (live stock); nil: nobody.
	Notify Notifier
	Log    *slog.Logger
	// Now is the clock; tests move it.
	Now func() time.Time
	// HoldTTL is how long a reservation holds its units (RESERVATION_TTL).
	HoldTTL time.Duration
	// IdemTTL is how long an Idempotency-Key answers with its first response (>= 24 h).
	IdemTTL time.Duration
	// PaymentWindow is how long a checked-out order waits for its payment (PAYMENT_WINDOW).
	PaymentWindow time.Duration
	// FailedJobMaxAge is how long a failed job waits for an admin before the janitor
	// cancels it (FAILED_JOB_MAX_AGE).
	FailedJobMaxAge time.Duration
	// FulfillDeadline is how long a paid order may wait for fulfillment before the sweep
	// lists it as a failed job (more than the queue's retries take: 3 × visibility).
	FulfillDeadline time.Duration
	// ReconcileBatch bounds the orders one sweep asks Stripe about (reconcilePayments), so a
	// sweep costs Stripe a bounded number of calls; ReconcileEvery is how often one order is
	// asked about; ReconcileWindow how long after an order ended Stripe may still deliver a
	// webhook for it (Stripe retries for up to three days).
	ReconcileBatch  int
	ReconcileEvery  time.Duration
	ReconcileWindow time.Duration
	// AdmissionWindow is how long an admitted ticket may reserve (ADMISSION_WINDOW).
	AdmissionWindow time.Duration
	// ShopperRate and ShopperBurst are each shopper's token bucket for POST /reservations,
	// POST /checkout and POST /products/{id}/queue (SHOPPER_RATE per second, SHOPPER_BURST);
	// a rate of 0 turns the limit off.
	ShopperRate  float64
	ShopperBurst int64
	// DrawOfferWindow is how long a draw's offer holds its units (DRAW_OFFER_WINDOW; 0: 1 h).
	DrawOfferWindow time.Duration
	// DrawNotify hears a draw's counts when they change (the WebSocket's draw message); nil:
	// nobody.
	DrawNotify DrawNotifier
	// Fault, when set, is called between two steps that a crash could separate (its step
	// names: reserve.before_record, release.before_gate, sweep.before_gate, checkout.before_order,
	// checkout.before_payment, fulfill, fulfill.before_drop, cancel.after_request,
	// cancel.after_refund); an error from it stands for the process dying there (tests inject
	// crashes).
	Fault func(step string) error
	// LatencyBatch is how many reserve latencies of a product this process gathers before a
	// reserve hands them to the gate's histogram (DefaultLatencyBatch; 1: every reserve).
	LatencyBatch int
	// Figures hears the figures a function emits as CloudWatch metrics (shared/metric); nil:
	// nobody.
	Figures Figures

	rebuilds singleflight.Group // one gate rebuild per product at a time in this process
	latency  latencyBook        // reserve latencies measured, not yet handed to the gate
}

// NewService returns a Service with the default clock, TTLs and logger.
func NewService(st Store, g Gate) *Service {
	return &Service{Store: st, Gate: g, Log: slog.Default(), Now: time.Now, HoldTTL: 10 * time.Minute, AdmissionWindow: 2 * time.Minute, ShopperRate: 5, ShopperBurst: 10, IdemTTL: 24 * time.Hour, PaymentWindow: 15 * time.Minute, FailedJobMaxAge: 24 * time.Hour, FulfillDeadline: 15 * time.Minute,
		ReconcileBatch: 20, LatencyBatch: DefaultLatencyBatch, ReconcileEvery: 10 * time.Minute, ReconcileWindow: 72*time.Hour + PaymentGrace}
}

func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Millisecond) }

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// lowerIDEncoding is idEncoding in lower case: what strings.ToLower makes of its output.
var lowerIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a new random id with the given prefix, e.g. "r_…" for reservations.
func NewID(prefix string) string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, len(prefix)+lowerIDEncoding.EncodedLen(len(b)))
	lowerIDEncoding.Encode(out[copy(out, prefix):], b[:])
	return string(out)
}
