package shop

import (
	"context"
	"time"
)

// Order statuses.
const (
	OrderPaymentPending = "payment_pending"
	OrderPaid           = "paid"
	OrderFulfilled      = "fulfilled"
	OrderExpired        = "expired"
	OrderCancelled      = "cancelled"
	OrderRefunded       = "refunded"
)

// Order is a checked-out cart waiting for, or past, its payment.
type Order struct {
	ID               string      `json:"id"`
	UserID           string      `json:"-"`
	Status           string      `json:"status"`
	AmountCents      int64       `json:"amount_cents"`
	Currency         string      `json:"currency"`
	Items            []OrderItem `json:"items"`
	PaymentIntentID  *string     `json:"payment_intent_id"`
	ClientSecret     *string     `json:"client_secret,omitempty"`
	PaymentExpiresAt time.Time   `json:"payment_expires_at"`
	CreatedAt        time.Time   `json:"created_at"`
	UpdatedAt        time.Time   `json:"updated_at"`
	Attempts         int         `json:"-"`
	LastError        string      `json:"-"`
	FailedAt         *time.Time  `json:"-"`
	// RefundRequestedAt is when a cancel recorded its intent to refund (the order stays paid
	// until the refund is done; fulfillment refuses it meanwhile).
	RefundRequestedAt *time.Time `json:"-"`
}

// OrderItem is one hold in an order.
type OrderItem struct {
	ReservationID  string    `json:"reservation_id"`
	ProductID      string    `json:"product_id"`
	VariantID      string    `json:"variant_id"`
	Quantity       int64     `json:"quantity"`
	UnitPriceCents int64     `json:"unit_price_cents"`
	HoldExpiresAt  time.Time `json:"-"` // the hold's deadline before checkout
}

// CartHold is one of a shopper's holds with its variant's price, as checkout reads it.
type CartHold struct {
	Reservation
	UnitPriceCents int64
	Currency       string
}

// OrderStore is the Postgres side of orders.
type OrderStore interface {
	// CartHolds returns the user's holds among ids (any status), or with no ids every
	// reserved hold of the user whose deadline is after now.
	CartHolds(ctx context.Context, userID string, ids []string, now time.Time) ([]CartHold, error)
	// CreateOrder inserts the order and moves its holds from reserved (and live at now) to
	// checked_out with the payment deadline, in one transaction. It returns the holds it could
	// not move; then nothing was written.
	CreateOrder(ctx context.Context, o Order, now time.Time) (failed []string, err error)
	// AttachPayment records the order's PaymentIntent while it is payment_pending.
	AttachPayment(ctx context.Context, orderID, paymentIntentID, clientSecret string, now time.Time) error
	// UndoCheckout puts the order's holds back to reserved with their original deadlines and
	// deletes the order; it returns the holds it put back.
	UndoCheckout(ctx context.Context, orderID string, now time.Time) ([]OrderItem, error)
	// Order returns one order with its items; ErrNotFound if there is none.
	Order(ctx context.Context, id string) (Order, error)
	// OrderByPaymentIntent returns the order paid by a PaymentIntent; ErrNotFound if none.
	OrderByPaymentIntent(ctx context.Context, paymentIntentID string) (Order, error)
	// DuePayments returns up to limit payment_pending orders whose deadline is not after now.
	DuePayments(ctx context.Context, now time.Time, limit int) ([]Order, error)
	// EndOrder moves an order from one status to another (compare-and-set) and its
	// checked-out holds to holdStatus, in one transaction. It returns the holds it ended and
	// whether this call moved the order.
	EndOrder(ctx context.Context, orderID, from, to, holdStatus string, now time.Time) ([]Reservation, bool, error)
	// MarkPaid moves an order from payment_pending to paid (compare-and-set), recording the
	// PaymentIntent if the order did not have it yet; it reports whether this call did it.
	MarkPaid(ctx context.Context, orderID, paymentIntentID string, now time.Time) (bool, error)
	// RetakeOrder locks an expired order, calls take to take its units in the gate, and
	// moves it to paid with its holds checked out again, only while every product's gate
	// generation is still the one take returned. ErrMaybeWritten when the commit's outcome is
	// unknown (the order may be paid with its units taken): then nothing may be given back.
	RetakeOrder(ctx context.Context, orderID string, deadline, now time.Time, take func() (gens map[string]int64, short string, err error)) (RetakeResult, error)
	// FulfillOrder locks the order and, if it is paid with no refund requested, takes its units from stock on hand into
	// sold, moves its holds and itself to fulfilled and counts the attempt, in one transaction.
	FulfillOrder(ctx context.Context, orderID string, now time.Time) (FulfillResult, error)
	// RecordFailure counts a failed fulfillment attempt with its error; deadLettered marks
	// the order as a failed job (out of automatic retries) if it is still paid.
	RecordFailure(ctx context.Context, orderID, lastError string, deadLettered bool, now time.Time) error
	// MarkStalePaid marks as failed jobs the paid orders not fulfilled and not touched since
	// before: their job was dead-lettered without the last attempt recording it (the
	// database was down, or the function died); it returns how many it marked.
	MarkStalePaid(ctx context.Context, before, now time.Time) (int64, error)
	// FailedJobs returns paid orders marked as failed jobs, oldest first; with before set,
	// only those that failed before it.
	FailedJobs(ctx context.Context, before *time.Time) ([]Order, error)
	// ClearFailed unmarks failed jobs that were queued again and restarts their wait for
	// fulfillment at now (updated_at), so the sweep does not mark them failed at once again.
	ClearFailed(ctx context.Context, orderIDs []string, now time.Time) error
	// RequestRefund durably records the intent to refund a paid order that is a failed job (or
	// already has it), the first step of a cancel; from then on FulfillOrder refuses it. It
	// returns the order as it is and whether it now has a refund requested.
	RequestRefund(ctx context.Context, orderID string, now time.Time) (o Order, requested bool, err error)
	// FinishCancel moves a paid order with a refund requested to cancelled and its checked-out
	// holds to cancelled, in one transaction (compare-and-set). It returns the holds it ended
	// and whether this call moved the order.
	FinishCancel(ctx context.Context, orderID string, now time.Time) ([]Reservation, bool, error)
	// RefundsDue returns up to limit paid orders with a refund requested: cancels a crash
	// left unfinished (or in progress now).
	RefundsDue(ctx context.Context, limit int) ([]Order, error)
	// ReconcileDue returns up to limit orders Stripe may still have a say about (expired or
	// refunded, with a PaymentIntent, not settled) not checked since checkedBefore, least
	// recently checked first, with their items.
	ReconcileDue(ctx context.Context, checkedBefore time.Time, limit int) ([]Order, error)
	// NoteChecked records that Stripe was asked about the order at now and, with settled,
	// that it has nothing more to say (the order is never asked about again).
	NoteChecked(ctx context.Context, orderID string, settled bool, now time.Time) error
	// NoteRefundFailure records a requested refund's failed attempt (last_error, updated_at),
	// so that RefundsDue tries the orders least recently tried first.
	NoteRefundFailure(ctx context.Context, orderID, reason string, now time.Time) error
	// Orders lists orders, newest first, optionally of one status.
	Orders(ctx context.Context, status string, limit int) ([]Order, error)
	// TryLock takes the lease named key for ttl unless another holder's lease is still
	// running at now; unlock gives it back (a holder that dies frees it when ttl runs out).
	TryLock(ctx context.Context, key string, now time.Time, ttl time.Duration) (unlock func(), ok bool, err error)
	// EventSeen reports whether a Stripe event was handled already.
	EventSeen(ctx context.Context, eventID string) (bool, error)
	// RecordEvent remembers a handled Stripe event.
	RecordEvent(ctx context.Context, eventID, eventType string, now time.Time) error
}

// RetakeResult is how a RetakeOrder ended.
type RetakeResult struct {
	Outcome string
	Short   string // the product that is sold out, for RetakeShort
	Took    bool   // take took units in the gate (to give back unless RetakeDone)
	// Stale names a product whose gate granted units Postgres does not have, or took them
	// under a generation Postgres no longer has (an older copy after a failover) (RetakeGateChanged):
	// its gate of generation StaleGen must be dropped and rebuilt before trying again.
	Stale    string
	StaleGen int64
}

// RetakeOrder outcomes.
const (
	RetakeDone        = "done"         // order paid, holds checked out
	RetakeShort       = "short"        // a product is sold out; the order is now refunded (refund it)
	RetakeGone        = "gone"         // the order is no longer expired
	RetakeGateChanged = "gate_changed" // a gate was rebuilt meanwhile; give back and retry
	// RetakeOverLimit: the shopper is at max_per_user in Postgres (they hold or bought units of
	// the product since, or an admin lowered the limit); the order is now refunded (refund it).
	RetakeOverLimit = "over_limit"
)

// CartGate is the Redis side of checkout.
type CartGate interface {
	// Checkout runs checkout.lua over the whole cart in one call. It returns the holds that
	// failed (nothing changed then), or the product whose gate is missing.
	Checkout(ctx context.Context, userID string, holds []Reservation, now, deadline time.Time) (failed []string, missing string, err error)
	// Uncheckout puts checked-out holds back to reserved with their original deadlines.
	Uncheckout(ctx context.Context, items []OrderItem) error
	// Drop forgets fulfilled holds without changing available units (drop.lua), recording
	// available and held in the counts of the second now (the caller's clock).
	Drop(ctx context.Context, holds []Reservation, now time.Time) error
	// Retake takes an order's units again (retake.lua) and returns each product's gate
	// generation, or the product that is out of stock or has no gate.
	Retake(ctx context.Context, userID string, items []OrderItem, deadline time.Time) (gens map[string]int64, short, missing string, err error)
}

// Payments is the payment provider (Stripe).
type Payments interface {
	// CreateIntent creates a PaymentIntent for the order's total; the idempotency key comes
	// from the order id, so a retry never charges twice.
	CreateIntent(ctx context.Context, orderID string, amountCents int64, currency string) (id, clientSecret string, err error)
	// CancelIntent cancels a PaymentIntent. ErrAlreadyPaid when it succeeded meanwhile.
	// attempt (the caller's clock) makes each attempt's idempotency key its own, so a refusal
	// is never replayed to a later attempt.
	CancelIntent(ctx context.Context, orderID, paymentIntentID string, attempt time.Time) error
	// Refund refunds a PaymentIntent in full, with an idempotency key from the order id.
	Refund(ctx context.Context, orderID, paymentIntentID string) error
	// Intent reads a PaymentIntent's status (IntentSucceeded, IntentCanceled, or another of
	// Stripe's) and, when it succeeded, returns it as the event Stripe sends.
	Intent(ctx context.Context, paymentIntentID string) (ev PaymentEvent, status string, err error)
}

// PaymentIntent statuses the shop acts on.
const (
	IntentSucceeded = "succeeded" // the shopper paid: the order ends fulfilled or refunded
	IntentCanceled  = "canceled"  // final: it can never be paid
)

// PaymentGrace is how long past its payment deadline an order whose PaymentIntent succeeded
// waits for the webhook before the sweep applies the payment itself.
const PaymentGrace = 10 * time.Minute

// ErrAlreadyPaid is what Payments.CancelIntent returns for a PaymentIntent that succeeded.
var ErrAlreadyPaid = Errorf(CodeInvalidState, "the payment succeeded already")

// Jobs is the fulfillment queue.
type Jobs interface {
	// EnqueueFulfill durably queues the fulfillment of a paid order.
	EnqueueFulfill(ctx context.Context, orderID string) error
}

// DeadLetters is the fulfill queue's dead-letter queue.
type DeadLetters interface {
	// RetryDead moves the order's dead-lettered jobs back to the queue; found is false when
	// none was there.
	RetryDead(ctx context.Context, orderID string) (found bool, err error)
	// RedriveDead moves every dead-lettered job back to the queue and returns their orders.
	RedriveDead(ctx context.Context) ([]string, error)
	// ForgetDead deletes the order's dead-lettered jobs.
	ForgetDead(ctx context.Context, orderID string) error
}

// FulfillResult is how a FulfillOrder ended.
type FulfillResult struct {
	Status string // the order's status before: only "paid" is fulfilled now
	// RefundRequested: the order is paid but being cancelled; it was left alone.
	RefundRequested bool
	Holds           []Reservation // the holds fulfilled now
}

// PaymentEvent is a verified Stripe event, reduced to what the shop needs.
type PaymentEvent struct {
	ID              string
	Type            string
	PaymentIntentID string
	OrderID         string // from the PaymentIntent's metadata
	AmountCents     int64
	Currency        string
}

// Stripe event types the shop handles; every other type is acknowledged and ignored.
const (
	EventPaymentSucceeded = "payment_intent.succeeded"
	EventPaymentFailed    = "payment_intent.payment_failed"
	EventPaymentCanceled  = "payment_intent.canceled"
)
