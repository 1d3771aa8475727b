package shop

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// The control room (API.md "The control room", docs/control-room.md): per product and second,
// the gate scripts count what happened (lua/metric.lua) in Redis for 15 minutes; the sweep
// rolls each finished minute into Postgres (sale_minutes); GET …/live reads the seconds and
// GET …/report reads Postgres.

// Counted events (the fields of a second's counts, lua/metric.lua).
const (
	CountReserveOK     = "ok"
	CountOutOfStock    = "oos"
	CountLimitExceeded = "lim"
	CountNotAdmitted   = "na"
	CountNotOpen       = "no"
	CountRateLimited   = "rl"
	CountReleased      = "rel"
	CountExpired       = "exp"
	CountCheckedOut    = "co"
	CountPaid          = "paid"
	CountQueueJoined   = "qj"
	// CountUndo is a release that takes back a reserve Postgres refused (its ok no longer counts).
	CountUndo = "undo"
	// CountLevels is a release that counts nothing but records available and held.
	CountLevels = "-"
)

// LiveMax is the longest window GET …/live serves, in seconds (the counts live 15 minutes).
const LiveMax = 900

// Second is one product's counts of one second as Redis keeps them.
type Second struct {
	T int64 // unix second
	// Counts by field (Count*).
	Counts map[string]int64
	// Avail, Held and Serving as the second's last change left them; nil: no change.
	Avail, Held, Serving *int64
	// AvailBefore and HeldBefore: the values before the second's first change (nil: none).
	AvailBefore, HeldBefore *int64
	// SoldOutAt is the first moment (ms) in the second at which available reached 0, 0: none.
	SoldOutAt int64
	// Latency is the reserve latency histogram: bucket → count (LatencyBucket).
	Latency map[int]int64
}

// LiveRead is what Meter.Seconds reads: the seconds, and the gate's values now.
type LiveRead struct {
	Seconds []Second // one per second asked for, oldest first
	// HasGate is false when the product has no gate (then Avail and Held are 0).
	HasGate     bool
	Avail, Held int64
}

// Meter is the per-second counting in Redis (stock.Gate).
type Meter interface {
	// Count adds n events of a field to the product's second at (an event with no gate script
	// on its path: a paid order).
	Count(ctx context.Context, productID, field string, n int64, at time.Time) error
	// Seconds reads the product's seconds from..to (unix seconds, inclusive) and its gate.
	Seconds(ctx context.Context, productID string, from, to int64) (LiveRead, error)
	// MinutesWithCounts returns, of the minutes starting at the given unix seconds, those for
	// which Redis has any second (one cheap read per minute).
	MinutesWithCounts(ctx context.Context, productID string, minutes []int64) ([]int64, error)
}

// LatencyBucket is the histogram bucket of a latency: bucket i holds (2^((i-1)/4), 2^(i/4)]
// microseconds (four buckets per doubling: about 19 % wide), 0 holds up to 1 µs.
func LatencyBucket(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	return min(int(math.Ceil(4*math.Log2(us))), 160)
}

// BucketMillis is the upper edge of a latency bucket in milliseconds (3 decimals).
func BucketMillis(i int) float64 {
	return math.Round(math.Pow(2, float64(i)/4)) / 1000
}

// Quantile returns the upper edge (ms) of the bucket holding quantile q of a histogram; nil
// when it is empty.
func Quantile(h map[int]int64, q float64) *float64 {
	var n int64
	keys := make([]int, 0, len(h))
	for b, c := range h {
		if c > 0 {
			n += c
			keys = append(keys, b)
		}
	}
	if n == 0 {
		return nil
	}
	sort.Ints(keys)
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for _, b := range keys {
		seen += h[b]
		if seen >= rank {
			v := BucketMillis(b)
			return &v
		}
	}
	v := BucketMillis(keys[len(keys)-1])
	return &v
}

// latencyBook keeps, per product, the reserve latencies this process measured and has not yet
// handed to the gate: the next reserve of the product carries them (a Lambda environment may
// freeze right after it answers, so nothing is written after the answer).
type latencyBook struct {
	mu    sync.Mutex
	m     map[string]map[int]int64
	n     map[string]int       // samples pending per product
	first map[string]time.Time // when the oldest pending sample was taken (wall clock)
}

// DefaultLatencyBatch is how many reserve latencies of a product a process gathers before a
// reserve hands them to the gate (Service.LatencyBatch): fewer writes in the script, at the
// cost of recording them up to latencyMaxWait later.
const DefaultLatencyBatch = 8

// latencyMaxWait is how long a latency waits for its batch before the next reserve of the
// product hands over what there is.
const latencyMaxWait = time.Second

// maxPendingBuckets bounds one product's pending histogram (it never grows past its buckets).
const maxPendingBuckets = 161

func (b *latencyBook) add(productID string, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m, b.n, b.first = map[string]map[int]int64{}, map[string]int{}, map[string]time.Time{}
	}
	h := b.m[productID]
	if h == nil {
		if len(b.m) >= 1000 { // many products, few reserves each: forget rather than grow
			clear(b.m)
			clear(b.n)
			clear(b.first)
		}
		h = make(map[int]int64, 8)
		b.m[productID] = h
		b.first[productID] = time.Now()
	}
	if len(h) < maxPendingBuckets {
		h[LatencyBucket(d)]++
		b.n[productID]++
	}
}

// take hands over the product's pending latencies once there are batch of them or the oldest
// has waited latencyMaxWait; else nil.
func (b *latencyBook) take(productID string, batch int) map[int]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.m[productID]
	if h == nil || (b.n[productID] < batch && time.Since(b.first[productID]) < latencyMaxWait) {
		return nil
	}
	delete(b.m, productID)
	delete(b.n, productID)
	delete(b.first, productID)
	return h
}

// putBack returns samples a gate call could not deliver.
func (b *latencyBook) putBack(productID string, h map[int]int64) {
	if len(h) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m, b.n, b.first = map[string]map[int]int64{}, map[string]int{}, map[string]time.Time{}
	}
	cur := b.m[productID]
	if cur == nil {
		cur = map[int]int64{}
		b.m[productID], b.first[productID] = cur, time.Now()
	}
	for k, v := range h {
		cur[k] += v
		b.n[productID] += int(v)
	}
}

// LivePoint is one second of GET /admin/products/{id}/live.
type LivePoint struct {
	T             time.Time `json:"t"`
	ReserveOK     int64     `json:"reserve_ok"`
	OutOfStock    int64     `json:"out_of_stock"`
	LimitExceeded int64     `json:"limit_exceeded"`
	NotAdmitted   int64     `json:"not_admitted"`
	NotOpen       int64     `json:"not_open"`
	RateLimited   int64     `json:"rate_limited"`
	Released      int64     `json:"released"`
	Expired       int64     `json:"expired"`
	CheckedOut    int64     `json:"checked_out"`
	Paid          int64     `json:"paid"`
	Available     int64     `json:"available"`
	Held          int64     `json:"held"`
	QueueJoined   int64     `json:"queue_joined"`
	Serving       int64     `json:"serving"`
	ReserveMsP50  *float64  `json:"reserve_ms_p50"`
	ReserveMsP99  *float64  `json:"reserve_ms_p99"`
}

// Live is GET /admin/products/{id}/live.
type Live struct {
	ProductID string      `json:"product_id"`
	StepS     int         `json:"step_s"`
	Points    []LivePoint `json:"points"`
}

// meter returns the gate as a Meter.
func (s *Service) meter() Meter { return s.Gate }

// Live reads the product's last `seconds` seconds (1..LiveMax), ending with the current one.
func (s *Service) Live(ctx context.Context, productID string, seconds int) (Live, error) {
	if !ValidProductID(productID) {
		return Live{}, Invalid("id", "product id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	if seconds < 1 || seconds > LiveMax {
		return Live{}, Invalid("seconds", "seconds must be an integer from 1 to %d", LiveMax)
	}
	p, err := s.Store.Product(ctx, productID)
	if errors.Is(err, ErrNotFound) {
		return Live{}, Errorf(CodeNotFound, "no product %q", productID)
	}
	if err != nil {
		return Live{}, err
	}
	now := s.now().Unix()
	read, err := s.meter().Seconds(ctx, productID, now-int64(seconds)+1, now)
	if err != nil {
		return Live{}, err
	}
	var serving int64
	if p.QueueRate > 0 && !anyServing(read.Seconds) {
		if st, err := s.queueStats(ctx, productID); err == nil && st != nil {
			serving = st.Serving
		}
	}
	return Live{ProductID: productID, StepS: 1, Points: livePoints(read, serving)}, nil
}

func anyServing(ss []Second) bool {
	for _, x := range ss {
		if x.Serving != nil {
			return true
		}
	}
	return false
}

// livePoints turns seconds into points: counts as they are, levels carried forward from the
// last change, and before the window's first change the value that change started from.
func livePoints(read LiveRead, serving int64) []LivePoint {
	avail, held := read.Avail, read.Held
	// The levels before the window's first change: that change's "before".
	for _, x := range read.Seconds {
		if x.AvailBefore != nil {
			avail, held = *x.AvailBefore, *x.HeldBefore
			break
		}
	}
	for _, x := range read.Seconds {
		if x.Serving != nil {
			serving = *x.Serving
			break
		}
	}
	out := make([]LivePoint, len(read.Seconds))
	for i, x := range read.Seconds {
		if x.Avail != nil {
			avail = *x.Avail
		}
		if x.Held != nil {
			held = *x.Held
		}
		if x.Serving != nil {
			serving = *x.Serving
		}
		c := x.Counts
		out[i] = LivePoint{
			T: time.Unix(x.T, 0).UTC(), ReserveOK: max(c[CountReserveOK], 0), OutOfStock: c[CountOutOfStock],
			LimitExceeded: c[CountLimitExceeded], NotAdmitted: c[CountNotAdmitted], NotOpen: c[CountNotOpen],
			RateLimited: c[CountRateLimited], Released: c[CountReleased], Expired: c[CountExpired],
			CheckedOut: c[CountCheckedOut], Paid: c[CountPaid], QueueJoined: c[CountQueueJoined],
			Available: max(avail, 0), Held: max(held, 0), Serving: serving,
			ReserveMsP50: Quantile(x.Latency, 0.50), ReserveMsP99: Quantile(x.Latency, 0.99),
		}
	}
	return out
}

// SaleMinute is one finished minute of a sale, rolled from Redis into Postgres by the sweep.
type SaleMinute struct {
	Minute                                                                  time.Time
	ReserveOK, OutOfStock, LimitExceeded, NotAdmitted, NotOpen, RateLimited int64
	Released, Expired, CheckedOut, Paid, QueueJoined                        int64
	Available, Held, Serving                                                *int64 // at the minute's end; nil: unknown
	ReserveMsP50, ReserveMsP99                                              *float64
	PeakReservesPerS                                                        int64 // the most reserve_ok in one second
	SoldOutAt                                                               *time.Time
}

// SaleFacts is what Postgres knows of a sale by itself (holds, orders, entries).
type SaleFacts struct {
	OpenedAt, FirstHoldAt                      *time.Time
	UnitsSold, UnitsRefunded, PeakReservesPerS int64
	Shoppers                                   int64
	Entered, CheckedOut, Paid, Fulfilled       int64
}

// ControlStore is the control room's part of Postgres.
type ControlStore interface {
	// SaleFacts reads the sale's holds, orders and entries; ErrNotFound for no product.
	SaleFacts(ctx context.Context, productID string) (SaleFacts, error)
	// SaleMinutes returns the product's rolled minutes, oldest first.
	SaleMinutes(ctx context.Context, productID string) ([]SaleMinute, error)
	// RolledTo returns, per product, the start of the first minute not yet rolled.
	RolledTo(ctx context.Context) (map[string]time.Time, error)
	// PutSaleMinutes inserts minutes not yet there (a minute is written once, whichever
	// sweep comes first) and moves the product's cursor forward to next (never back).
	PutSaleMinutes(ctx context.Context, productID string, rows []SaleMinute, next time.Time) error
	// Overdue counts the refunds requested before refundBefore and not done, and the draws
	// whose draw_at is before drawBefore and that have not run.
	Overdue(ctx context.Context, refundBefore, drawBefore time.Time) (refunds, draws int64, err error)
}

// Report is GET /admin/products/{id}/report.
type Report struct {
	ProductID        string         `json:"product_id"`
	OpenedAt         *time.Time     `json:"opened_at"`
	FirstHoldAt      *time.Time     `json:"first_hold_at"`
	SoldOutAt        *time.Time     `json:"sold_out_at"`
	UnitsSold        int64          `json:"units_sold"`
	UnitsRefunded    int64          `json:"units_refunded"`
	PeakReservesPerS int64          `json:"peak_reserves_per_s"`
	Shoppers         int64          `json:"shoppers"`
	Funnel           Funnel         `json:"funnel"`
	Refusals         map[Code]int64 `json:"refusals"`
	// Minutes is the per-minute series (the CSV), not part of the JSON.
	Minutes []SaleMinute `json:"-"`
}

// Funnel counts distinct shoppers at each stage of a sale.
type Funnel struct {
	QueueJoined int64 `json:"queue_joined"`
	Admitted    int64 `json:"admitted"`
	Entered     int64 `json:"entered"`
	Held        int64 `json:"held"`
	CheckedOut  int64 `json:"checked_out"`
	Paid        int64 `json:"paid"`
	Fulfilled   int64 `json:"fulfilled"`
}

// Report reads the sale as a whole from Postgres.
func (s *Service) Report(ctx context.Context, productID string) (Report, error) {
	if !ValidProductID(productID) {
		return Report{}, Invalid("id", "product id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	f, err := s.Store.SaleFacts(ctx, productID)
	if errors.Is(err, ErrNotFound) {
		return Report{}, Errorf(CodeNotFound, "no product %q", productID)
	}
	if err != nil {
		return Report{}, err
	}
	mins, err := s.Store.SaleMinutes(ctx, productID)
	if err != nil {
		return Report{}, err
	}
	r := Report{
		ProductID: productID, OpenedAt: f.OpenedAt, FirstHoldAt: f.FirstHoldAt, UnitsSold: f.UnitsSold,
		UnitsRefunded: f.UnitsRefunded, PeakReservesPerS: f.PeakReservesPerS, Shoppers: f.Shoppers,
		Funnel:   Funnel{Entered: f.Entered, Held: f.Shoppers, CheckedOut: f.CheckedOut, Paid: f.Paid, Fulfilled: f.Fulfilled},
		Refusals: map[Code]int64{CodeOutOfStock: 0, CodeLimitExceeded: 0, CodeNotAdmitted: 0, CodeNotOpen: 0, CodeRateLimited: 0},
		Minutes:  mins,
	}
	var serving int64
	for _, m := range mins {
		r.Refusals[CodeOutOfStock] += m.OutOfStock
		r.Refusals[CodeLimitExceeded] += m.LimitExceeded
		r.Refusals[CodeNotAdmitted] += m.NotAdmitted
		r.Refusals[CodeNotOpen] += m.NotOpen
		r.Refusals[CodeRateLimited] += m.RateLimited
		r.Funnel.QueueJoined += m.QueueJoined
		if m.Serving != nil {
			serving = max(serving, *m.Serving)
		}
		if m.SoldOutAt != nil && r.SoldOutAt == nil {
			t := m.SoldOutAt.UTC()
			r.SoldOutAt = &t
		}
		r.PeakReservesPerS = max(r.PeakReservesPerS, m.PeakReservesPerS)
	}
	r.Funnel.Admitted = min(serving, r.Funnel.QueueJoined)
	return r, nil
}

// rollGrace is how long after a minute ends the sweep waits before rolling it: a process whose
// clock is behind may still count into its last seconds.
const rollGrace = 5 * time.Second

// rollMinutes rolls every product's finished minutes (at most the last 15, which Redis still
// has) into Postgres. Each minute is written once, whichever overlapping sweep comes first:
// the minute's seconds no longer change once it is finished.
func (s *Service) rollMinutes(ctx context.Context, rows []ProductRow, now time.Time) error {
	cursors, err := s.Store.RolledTo(ctx)
	if err != nil {
		return err
	}
	last := now.Add(-rollGrace).Truncate(time.Minute) // the first minute not finished
	oldest := last.Add(-14 * time.Minute)
	var errs []error
	for _, p := range rows {
		from := oldest
		if c, ok := cursors[p.ID]; ok && c.After(from) {
			from = c
		}
		if !from.Before(last) {
			continue
		}
		if err := s.rollProduct(ctx, p.ID, from, last); err != nil {
			errs = append(errs, fmt.Errorf("roll minutes of %s: %w", p.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) rollProduct(ctx context.Context, productID string, from, to time.Time) error {
	var starts []int64
	for m := from; m.Before(to); m = m.Add(time.Minute) {
		starts = append(starts, m.Unix())
	}
	have, err := s.meter().MinutesWithCounts(ctx, productID, starts)
	if err != nil {
		return err
	}
	out := make([]SaleMinute, 0, len(have))
	for _, m := range have {
		read, err := s.meter().Seconds(ctx, productID, m, m+59)
		if err != nil {
			return err
		}
		out = append(out, minuteOf(m, read.Seconds))
	}
	return s.Store.PutSaleMinutes(ctx, productID, out, to)
}

// minuteOf sums a minute's seconds.
func minuteOf(start int64, secs []Second) SaleMinute {
	m := SaleMinute{Minute: time.Unix(start, 0).UTC()}
	lat := map[int]int64{}
	for _, x := range secs {
		c := x.Counts
		ok := max(c[CountReserveOK], 0)
		m.ReserveOK += ok
		m.PeakReservesPerS = max(m.PeakReservesPerS, ok)
		m.OutOfStock += c[CountOutOfStock]
		m.LimitExceeded += c[CountLimitExceeded]
		m.NotAdmitted += c[CountNotAdmitted]
		m.NotOpen += c[CountNotOpen]
		m.RateLimited += c[CountRateLimited]
		m.Released += c[CountReleased]
		m.Expired += c[CountExpired]
		m.CheckedOut += c[CountCheckedOut]
		m.Paid += c[CountPaid]
		m.QueueJoined += c[CountQueueJoined]
		if x.Avail != nil {
			m.Available, m.Held = x.Avail, x.Held
		}
		if x.Serving != nil {
			m.Serving = x.Serving
		}
		if x.SoldOutAt > 0 && m.SoldOutAt == nil {
			t := time.UnixMilli(x.SoldOutAt).UTC()
			m.SoldOutAt = &t
		}
		for b, n := range x.Latency {
			lat[b] += n
		}
	}
	m.ReserveMsP50, m.ReserveMsP99 = Quantile(lat, 0.50), Quantile(lat, 0.99)
	return m
}

// Figures hears what a function emits as CloudWatch metrics (shared/metric writes them as
// Embedded Metric Format lines): a figure's name (Figure*), the product ("" for none) and its
// value (a count, or milliseconds for FigureReserveLatency).
type Figures interface {
	Figure(productID, name string, value float64)
}

// The figures' metric names (docs/control-room.md lists them with their dimensions).
const (
	FigureReserveOK      = "ReserveOK"
	FigureOutOfStock     = "OutOfStock"
	FigureLimitExceeded  = "LimitExceeded"
	FigureNotAdmitted    = "NotAdmitted"
	FigureNotOpen        = "NotOpen"
	FigureRateLimited    = "RateLimited"
	FigureReleased       = "Released"
	FigureExpired        = "Expired"
	FigureCheckedOut     = "CheckedOut"
	FigurePaid           = "Paid"
	FigureReserveLatency = "ReserveLatency"
	FigureReserve5xx     = "Reserve5xx"
	FigureStaleGates     = "StaleGates"
	FigureRefundsStuck   = "RefundsStuck"
	FigureDrawsOverdue   = "DrawsOverdue"
)

// figure tells the Figures, if any.
func (s *Service) figure(productID, name string, v float64) {
	if s.Figures != nil {
		s.Figures.Figure(productID, name, v)
	}
}

// outcomeFigure is the figure of a reserve's gate outcome ("" for none).
func outcomeFigure(outcome string) string {
	switch outcome {
	case GateOK:
		return FigureReserveOK
	case GateOutOfStock:
		return FigureOutOfStock
	case GateLimit:
		return FigureLimitExceeded
	case GateNotAdmitted:
		return FigureNotAdmitted
	case GateNotOpen:
		return FigureNotOpen
	case GateRateLimited:
		return FigureRateLimited
	}
	return ""
}

// Alarm thresholds of the sweep's figures.
const (
	RefundStuckAfter = time.Hour
	DrawOverdueAfter = 5 * time.Minute
)

// controlRoom is the sweep's control-room pass: finished minutes into Postgres, and the
// figures an operator is alarmed on.
func (s *Service) controlRoom(ctx context.Context, rows []ProductRow, now time.Time, rep *SweepReport) error {
	err := s.rollMinutes(ctx, rows, now)
	refunds, draws, aerr := s.Store.Overdue(ctx, now.Add(-RefundStuckAfter), now.Add(-DrawOverdueAfter))
	if aerr == nil {
		rep.RefundsStuck, rep.DrawsOverdue = int(refunds), int(draws)
		s.figure("", FigureRefundsStuck, float64(refunds))
		s.figure("", FigureDrawsOverdue, float64(draws))
	}
	s.figure("", FigureStaleGates, float64(rep.StaleGates))
	return errors.Join(err, aerr)
}

// countPaid counts a paid order in each of its products' current second (count.lua: the
// webhook makes no other Redis call). The counts are not the ledger: a failure is logged.
func (s *Service) countPaid(ctx context.Context, o Order) {
	now := s.now()
	for _, id := range orderProducts(o) {
		if err := s.Gate.Count(context.WithoutCancel(ctx), id, CountPaid, 1, now); err != nil {
			s.Log.Warn("count a paid order", "order_id", o.ID, "product_id", id, "err", err)
		}
		s.figure(id, FigurePaid, 1)
	}
}

// orderProducts lists an order's products, each once, in item order.
func orderProducts(o Order) []string {
	var ids []string
	for _, it := range o.Items {
		if !slices.Contains(ids, it.ProductID) {
			ids = append(ids, it.ProductID)
		}
	}
	return ids
}
