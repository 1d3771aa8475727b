// Package store is lastunit's Postgres adapter: products, holds and idempotency records.
// It translates driver errors at the boundary (no rows → shop.ErrNotFound, connection
// failures → shop.ErrUnavailable) and makes every status change a compare-and-set.
package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"lastunit/shared/shop"
)

// Store implements shop.Store on a pgx pool.
type Store struct {
	pool *pgxpool.Pool
	// Pause, when set, is called at named points inside transactions (tests widen race
	// windows with it): "rebuild.locked" after RebuildGate locked the product row.
	Pause func(step string)
}

var _ shop.Store = (*Store)(nil)

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Open builds a pool on url without connecting: connections are made on first use, so a
// cold start never waits on (or fails with) Postgres, and a database that is down costs only
// the requests that need it (503). maxConns caps the pool (0: pgxpool's default).
//
// Queries run in a mode that never creates a named prepared statement (the statement's
// description is cached and it runs as the unnamed statement in one round trip), so the pool
// works through PgBouncer in transaction pooling mode and does not pin RDS Proxy sessions.
func Open(ctx context.Context, url string, maxConns int32, opts ...Option) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	for _, o := range opts {
		o(cfg)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.MinConns = 0
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", translate(err))
	}
	return pool, nil
}

// Option changes the pool Open builds.
type Option func(*pgxpool.Config)

// WithPassword makes each new connection take its password from password instead of the
// URL: in AWS the database secret rotates under a warm function, whose open connections keep
// working while new ones need the new password. An error from password fails that
// connection as shop.ErrUnavailable (the request answers 503).
func WithPassword(password func(context.Context) (string, error)) Option {
	return func(cfg *pgxpool.Config) {
		cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
			pw, err := password(ctx)
			if err != nil {
				return fmt.Errorf("%w: database password: %w", shop.ErrUnavailable, err)
			}
			cc.Password = pw
			return nil
		}
	}
}

// Ping checks that the database answers (for health checks; never at a cold start).
func Ping(ctx context.Context, pool *pgxpool.Pool) error {
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", translate(err))
	}
	return nil
}

// translate maps driver errors to the shop's: no rows → ErrNotFound, a database that cannot
// be reached or refuses the login (class 28: a password rotation's moment between the
// database's change and the secret's, WithPassword) → ErrUnavailable. Anything else is
// returned as it is, for the logs.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return shop.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || pe.Code == "53300" || strings.HasPrefix(pe.Code, "28") {
			return fmt.Errorf("%w: %w", shop.ErrUnavailable, err)
		}
		return err
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%w: %w", shop.ErrUnavailable, err)
	}
	return err
}

// neverSent reports whether a failed statement certainly did not run: Postgres refused it, no
// connection could be made, pgx had not sent it, or the context ended while it waited for a
// connection of the pool (a plain context error: one that ends a statement in flight comes
// wrapped by pgconn, and then the outcome is unknown).
func neverSent(err error) bool {
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	return errors.As(err, &pe) || errors.As(err, &ce) || pgconn.SafeToRetry(err) ||
		err == context.DeadlineExceeded || err == context.Canceled //nolint:errorlint // only the unwrapped ones
}

func isUniqueViolation(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == constraint
}

// codeShort is the SQLSTATE lu_take_units raises when a product's free units cannot cover a
// hold becoming live (migration 0004); codeOverLimit the one lu_user_units raises when a hold
// would take its shopper past max_per_user (migration 0031). Either means the gate that
// granted the hold counted from an older state.
const (
	codeShort     = "LU001"
	codeOverLimit = "LU003"
	// codeNoFreeSlot: lu_take_hold's fast path found the hold's own slot short; the error
	// gave back every lock the call took.
	codeNoFreeSlot = "LU005"
)

// slotOf is the slot (0..63) a hold takes its units from on the fast path.
func slotOf(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % 64)
}

// isDeadlock reports whether Postgres aborted a statement to break a deadlock.
func isDeadlock(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "40P01"
}

// isNoFreeSlot reports whether lu_take_hold found the hold's own slot short (LU005,
// migration 0063): call it again with no slot.
func isNoFreeSlot(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == codeNoFreeSlot
}

// isShort reports whether err is Postgres refusing a hold for want of free units, or because
// it would take its shopper past max_per_user.
func isShort(err error) (*pgconn.PgError, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == codeShort || pe.Code == codeOverLimit) {
		return pe, true
	}
	return nil, false
}

const liveStatuses = `('reserved', 'checked_out')`

// productCols are a product's own columns; its stock, sold and held units are the sums over
// its variants, read with them (loadVariants) in one statement, so that available + held ==
// stock holds in every answer.
// A draw's public fields come from its row in draws (one primary-key lookup each).
const productCols = `p.id, p.name, p.price_cents, p.currency, p.max_per_user, p.gate_gen,
	p.opens_at, p.closes_at, p.queue_rate,
	(SELECT d.draw_at FROM draws d WHERE d.product_id = p.id),
	(SELECT encode(sha256(d.seed), 'hex') FROM draws d WHERE d.product_id = p.id),
	(SELECT d.entries_digest FROM draws d WHERE d.product_id = p.id),
	(SELECT encode(d.seed, 'hex') FROM draws d WHERE d.product_id = p.id AND d.drawn_at IS NOT NULL)`

func scanProduct(row pgx.Row) (shop.ProductRow, error) {
	var p shop.ProductRow
	var drawAt *time.Time
	var commitment, digest, seed *string
	err := row.Scan(&p.ID, &p.Name, &p.PriceCents, &p.Currency, &p.MaxPerUser, &p.Gen,
		&p.OpensAt, &p.ClosesAt, &p.QueueRate, &drawAt, &commitment, &digest, &seed)
	for _, t := range []*time.Time{p.OpensAt, p.ClosesAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	if drawAt != nil && commitment != nil {
		p.Draw = &shop.DrawInfo{DrawAt: drawAt.UTC(), Commitment: *commitment, EntriesDigest: digest, Seed: seed}
	}
	return p, err
}

type querier interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}

// loadVariants reads the variants of the given products (in each product's order) with their
// held units, and sets each product's stock, sold and held to the sums over them.
func loadVariants(ctx context.Context, q querier, ps []shop.ProductRow) error {
	if len(ps) == 0 {
		return nil
	}
	at := make(map[string]int, len(ps))
	ids := make([]string, len(ps))
	for i, p := range ps {
		at[p.ID], ids[i] = i, p.ID
		ps[i].Variants, ps[i].Stock, ps[i].Sold, ps[i].Held = nil, 0, 0, 0
	}
	rows, err := q.Query(ctx, `SELECT v.product_id, v.id, v.name, v.price_cents, v.stock, v.sold,
		COALESCE((SELECT sum(r.quantity) FROM reservations r WHERE r.product_id = v.product_id AND r.variant_id = v.id
			AND r.status IN `+liveStatuses+`), 0)
		FROM product_variants v WHERE v.product_id = ANY($1) ORDER BY v.product_id, v.position, v.id`, ids)
	if err != nil {
		return fmt.Errorf("select variants: %w", translate(err))
	}
	var pid string
	var v shop.VariantRow
	_, err = pgx.ForEachRow(rows, []any{&pid, &v.ID, &v.Name, &v.PriceCents, &v.Stock, &v.Sold, &v.Held}, func() error {
		p := &ps[at[pid]]
		vv := v
		if v.PriceCents != nil {
			n := *v.PriceCents
			vv.PriceCents = &n
		}
		p.Variants = append(p.Variants, vv)
		p.Stock += v.Stock
		p.Sold += v.Sold
		p.Held += v.Held
		return nil
	})
	if err != nil {
		return fmt.Errorf("select variants: %w", translate(err))
	}
	return nil
}

// productIn reads one product with its variants.
func productIn(ctx context.Context, q querier, id string) (shop.ProductRow, error) {
	p, err := scanProduct(q.QueryRow(ctx, `SELECT `+productCols+` FROM products p WHERE p.id = $1`, id))
	if err != nil {
		return shop.ProductRow{}, fmt.Errorf("select product: %w", translate(err))
	}
	ps := []shop.ProductRow{p}
	if err := loadVariants(ctx, q, ps); err != nil {
		return shop.ProductRow{}, err
	}
	return ps[0], nil
}

// Product returns one product with its variants and held units.
func (s *Store) Product(ctx context.Context, id string) (shop.ProductRow, error) {
	var out shop.ProductRow
	// One snapshot for the product and its variants.
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY`); err != nil {
			return err
		}
		var err error
		out, err = productIn(ctx, tx, id)
		return err
	})
	return out, err
}

// Products returns every product with its variants and held units, ordered by id.
func (s *Store) Products(ctx context.Context) ([]shop.ProductRow, error) {
	var out []shop.ProductRow
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+productCols+` FROM products p ORDER BY p.id`)
		if err != nil {
			return fmt.Errorf("select products: %w", translate(err))
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (shop.ProductRow, error) { return scanProduct(r) })
		if err != nil {
			return fmt.Errorf("select products: %w", translate(err))
		}
		return loadVariants(ctx, tx, out)
	})
	return out, err
}

// lockProduct locks a product row against holds being recorded (they take FOR KEY SHARE)
// and returns it with its variants and held units.
func lockProduct(ctx context.Context, tx pgx.Tx, id string) (shop.ProductRow, error) {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM products WHERE id = $1 FOR UPDATE`, id); err != nil {
		return shop.ProductRow{}, translate(err)
	}
	return productIn(ctx, tx, id)
}

func errBelowHeld(variantID string, stock, held int64) error {
	e := shop.Errorf(shop.CodeInvalidState, "stock %d of variant %s would be below the %d units held", stock, variantID, held)
	e.Details = map[string]any{"held": held, "variant_id": variantID}
	return e
}

// lockFree locks every slot of a product's variants in (variant, slot) order (the order every
// path that locks more than one takes) and returns each variant's free units: its stock minus
// its live holds, exact while the slots are locked, since every change of a hold's units
// changes a slot in the same transaction (migration 0041's triggers).
func lockFree(ctx context.Context, tx pgx.Tx, id string, variantIDs ...string) (map[string]int64, error) {
	q := `SELECT variant_id, COALESCE(sum(free), 0) FROM
		(SELECT variant_id, free FROM product_slots WHERE product_id = $1 ORDER BY variant_id, slot FOR UPDATE) x GROUP BY variant_id`
	args := []any{id}
	if len(variantIDs) > 0 {
		q = `SELECT variant_id, COALESCE(sum(free), 0) FROM
		(SELECT variant_id, free FROM product_slots WHERE product_id = $1 AND variant_id = ANY($2) ORDER BY variant_id, slot FOR UPDATE) x GROUP BY variant_id`
		args = append(args, variantIDs)
	}
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("lock product slots: %w", translate(err))
	}
	out := map[string]int64{}
	var v string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&v, &n}, func() error { out[v] = n; return nil }); err != nil {
		return nil, fmt.Errorf("lock product slots: %w", translate(err))
	}
	return out, nil
}

// spread sets a variant's free units (its slots are locked, or it is new).
func spread(ctx context.Context, tx pgx.Tx, id, variantID string, free int64) error {
	if _, err := tx.Exec(ctx, `SELECT lu_vspread($1, $2, $3)`, id, variantID, free); err != nil {
		return fmt.Errorf("set free units: %w", translate(err))
	}
	return nil
}

// UpsertProduct creates or updates a product and its variants and bumps its gate generation.
// The units held are read from the variants' slots under their locks, so the checks against
// the new stock and the new free units come from one consistent count.
func (s *Store) UpsertProduct(ctx context.Context, id string, in shop.ProductInput, now time.Time) (shop.ProductRow, error) {
	var out shop.ProductRow
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// Create the row first (empty: a trigger gives it the variant `default`, stock 0) unless
		// it exists, then always lock it and its slots: two creating PUTs are serialized on the
		// row, and a reserve that took units from a new product in between is counted.
		tag, err := tx.Exec(ctx, `
			INSERT INTO products (id, name, price_cents, currency, stock, max_per_user, gate_gen, created_at, updated_at,
				opens_at, closes_at, queue_rate)
			VALUES ($1, $2, $3, $4, 0, $5, nextval('gate_generations'), $6, $6, $7, $8, $9)
			ON CONFLICT (id) DO NOTHING`,
			id, in.Name, in.PriceCents, in.Currency, in.MaxPerUser, now, in.OpensAt, in.ClosesAt, in.QueueRate)
		if err != nil {
			return fmt.Errorf("create product: %w", translate(err))
		}
		cur, err := lockProduct(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("lock product: %w", translate(err))
		}
		if in.CheckAllocation != nil {
			if err := checkAllocation(ctx, tx, cur, tag.RowsAffected() == 1, in.CheckAllocation); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM product_variants WHERE product_id = $1 ORDER BY id FOR UPDATE`, id); err != nil {
			return fmt.Errorf("lock variants: %w", translate(err))
		}
		free, err := lockFree(ctx, tx, id)
		if err != nil {
			return err
		}
		target := in.Variants
		if target == nil { // the stock form: the product's one variant
			if len(cur.Variants) > 1 {
				return shop.Invalid("stock", "product %s has %d variants: set their stock in variants", id, len(cur.Variants))
			}
			v := shop.VariantInput{ID: shop.DefaultVariant, Name: in.Name, Stock: in.Stock}
			if len(cur.Variants) == 1 && cur.Variants[0].ID != shop.DefaultVariant {
				v = shop.VariantInput{ID: cur.Variants[0].ID, Name: cur.Variants[0].Name, Stock: in.Stock, PriceCents: cur.Variants[0].PriceCents}
			}
			target = []shop.VariantInput{v}
		}
		keep := make(map[string]bool, len(target))
		for _, v := range target {
			keep[v.ID] = true
		}
		held := make(map[string]int64, len(cur.Variants))
		for _, v := range cur.Variants {
			held[v.ID] = v.Stock - free[v.ID]
			if keep[v.ID] {
				continue
			}
			var ever bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM reservations WHERE product_id = $1 AND variant_id = $2)`,
				id, v.ID).Scan(&ever); err != nil {
				return fmt.Errorf("look for holds of a variant: %w", translate(err))
			}
			if ever {
				e := shop.Errorf(shop.CodeInvalidState, "variant %s was held: it cannot be removed (set its stock to 0 instead)", v.ID)
				e.Details = map[string]any{"variant_id": v.ID}
				return e
			}
			if _, err := tx.Exec(ctx, `DELETE FROM product_variants WHERE product_id = $1 AND id = $2`, id, v.ID); err != nil {
				return fmt.Errorf("remove variant: %w", translate(err))
			}
		}
		for i, v := range target {
			if v.Stock < held[v.ID] {
				return errBelowHeld(v.ID, v.Stock, held[v.ID])
			}
			if _, err := tx.Exec(ctx, `INSERT INTO product_variants AS pv (product_id, id, name, price_cents, stock, sold, position, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $7)
				ON CONFLICT (product_id, id) DO UPDATE SET name = $3, price_cents = $4, stock = $5, position = $6, updated_at = $7`,
				id, v.ID, v.Name, v.PriceCents, v.Stock, i, now); err != nil {
				return fmt.Errorf("set variant %s: %w", v.ID, translate(err))
			}
			if err := spread(ctx, tx, id, v.ID, v.Stock-held[v.ID]); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `
			UPDATE products SET name = $2, price_cents = $3, currency = $4,
				max_per_user = $5, gate_gen = nextval('gate_generations'), updated_at = $6,
				opens_at = $7, closes_at = $8, queue_rate = $9
			WHERE id = $1`,
			id, in.Name, in.PriceCents, in.Currency, in.MaxPerUser, now, in.OpensAt, in.ClosesAt, in.QueueRate)
		if err != nil {
			return fmt.Errorf("update product: %w", translate(err))
		}
		if err := setAllocation(ctx, tx, id, in, now); err != nil {
			return err
		}
		out, err = productIn(ctx, tx, id)
		return err
	})
	return out, err
}

// Restock adds delta to a variant's stock on hand and free units ("" names the product's one
// variant), and bumps the gate generation.
func (s *Store) Restock(ctx context.Context, id, variantID string, delta int64, now time.Time) (shop.ProductRow, error) {
	var out shop.ProductRow
	err := s.tx(ctx, func(tx pgx.Tx) error {
		cur, err := lockProduct(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("lock product: %w", translate(err))
		}
		var v *shop.VariantRow
		for i := range cur.Variants {
			if cur.Variants[i].ID == variantID || (variantID == "" && len(cur.Variants) == 1) {
				v = &cur.Variants[i]
			}
		}
		switch {
		case v == nil && variantID == "":
			return shop.Invalid("variant_id", "product %s has %d variants: name one in variant_id", id, len(cur.Variants))
		case v == nil:
			return shop.Errorf(shop.CodeNotFound, "product %q has no variant %q", id, variantID)
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM product_variants WHERE product_id = $1 AND id = $2 FOR UPDATE`, id, v.ID); err != nil {
			return fmt.Errorf("lock variant: %w", translate(err))
		}
		free, err := lockFree(ctx, tx, id, v.ID)
		if err != nil {
			return err
		}
		// The variant's stock as of the lock (read again: the first read came before it).
		if err := tx.QueryRow(ctx, `SELECT stock FROM product_variants WHERE product_id = $1 AND id = $2`, id, v.ID).Scan(&v.Stock); err != nil {
			return fmt.Errorf("read variant stock: %w", translate(err))
		}
		held := v.Stock - free[v.ID]
		stock := v.Stock + delta
		if stock < held || stock < 0 {
			return errBelowHeld(v.ID, stock, held)
		}
		if stock > shop.MaxStock {
			return shop.Invalid("delta", "stock would pass %d", shop.MaxStock)
		}
		if _, err := tx.Exec(ctx, `UPDATE product_variants SET stock = $3, updated_at = $4 WHERE product_id = $1 AND id = $2`,
			id, v.ID, stock, now); err != nil {
			return fmt.Errorf("restock: %w", translate(err))
		}
		if _, err := tx.Exec(ctx, `UPDATE products SET gate_gen = nextval('gate_generations'), updated_at = $2 WHERE id = $1`, id, now); err != nil {
			return fmt.Errorf("restock: %w", translate(err))
		}
		if err := spread(ctx, tx, id, v.ID, stock-held); err != nil {
			return err
		}
		out, err = productIn(ctx, tx, id)
		return err
	})
	return out, err
}

// RebuildGate locks the product, bumps its generation and passes its live holds to apply;
// it commits only when apply set the gate. Holds recorded under an older generation wait
// for the lock and are then refused, so the gate never misses a hold. Available units are
// stock (fixed while the row is locked) minus the holds of one statement, so a hold that
// ends while the rebuild runs is either in the gate with its units or in neither.
func (s *Store) RebuildGate(ctx context.Context, id string, apply func(shop.GateState) (bool, error)) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		p, err := lockProduct(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("lock product: %w", translate(err))
		}
		if s.Pause != nil {
			s.Pause("rebuild.locked")
		}
		st := shop.GateState{ProductID: id, MaxPerUser: p.MaxPerUser,
			OpensAt: p.OpensAt, ClosesAt: p.ClosesAt, QueueRate: p.QueueRate, Draw: p.Draw != nil}
		if st.Purchased, err = purchased(ctx, tx, id); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `UPDATE products SET gate_gen = nextval('gate_generations') WHERE id = $1 RETURNING gate_gen`, id).Scan(&st.Gen); err != nil {
			return fmt.Errorf("bump gate generation: %w", translate(err))
		}
		st.Row = p
		st.Row.Gen = st.Gen
		rows, err := tx.Query(ctx, `SELECT `+reservationCols+` FROM reservations WHERE product_id = $1 AND status IN `+liveStatuses, id)
		if err != nil {
			return fmt.Errorf("select live holds: %w", translate(err))
		}
		st.Holds, err = pgx.CollectRows(rows, scanReservation)
		if err != nil {
			return fmt.Errorf("select live holds: %w", translate(err))
		}
		if len(p.Variants) == 0 {
			return fmt.Errorf("product %s has no variant", id)
		}
		held := map[string]int64{}
		for _, h := range st.Holds {
			held[h.VariantID] += h.Quantity
		}
		for _, v := range p.Variants {
			a := v.Stock - held[v.ID]
			st.Variants = append(st.Variants, shop.GateVariant{ID: v.ID, Available: a})
			st.Available += a
		}
		set, err := apply(st)
		if err != nil {
			return err
		}
		if !set {
			return errNotSet // another rebuild won: keep its generation
		}
		return nil
	})
	if errors.Is(err, errNotSet) {
		return nil
	}
	return err
}

var errNotSet = errors.New("gate already present")

// purchased returns, per shopper, the units of the product in fulfilled holds: bought units
// that count against max_per_user (drops; paid holds are still live holds).
func purchased(ctx context.Context, tx pgx.Tx, productID string) (map[string]int64, error) {
	rows, err := tx.Query(ctx, `SELECT user_id, sum(quantity) FROM reservations
		WHERE product_id = $1 AND status = 'fulfilled' GROUP BY user_id`, productID)
	if err != nil {
		return nil, fmt.Errorf("select bought units: %w", translate(err))
	}
	out := map[string]int64{}
	var u string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&u, &n}, func() error { out[u] = n; return nil }); err != nil {
		return nil, fmt.Errorf("select bought units: %w", translate(err))
	}
	return out, nil
}

const reservationCols = `id, product_id, variant_id, user_id, quantity, status, expires_at, created_at, order_id`

func scanReservation(row pgx.CollectableRow) (shop.Reservation, error) {
	var r shop.Reservation
	err := row.Scan(&r.ID, &r.ProductID, &r.VariantID, &r.UserID, &r.Quantity, &r.Status, &r.ExpiresAt, &r.CreatedAt, &r.OrderID)
	r.ExpiresAt, r.CreatedAt = r.ExpiresAt.UTC(), r.CreatedAt.UTC()
	return r, err
}

// InsertHold records a new hold in one statement, only while the product's gate generation
// is still gen (checked under FOR KEY SHARE, which a rebuild's FOR UPDATE waits for) and the
// deadline is after now: the units come from the hold's variant's slots and are counted
// against the shopper's max_per_user, and version, the gate's live-stock version when it
// granted them, is recorded. With idem, the idempotency record is written in the same
// transaction. It runs lu_take_hold (migrations 0062 and 0063), whose statements' plans
// Postgres keeps per connection: the statement sent is a one-line SELECT, cheap to parse and
// plan. When the hold's own slot cannot give the units, a second call takes them on the slow
// path (the insert trigger: another slot, or the variant's slots pooled), in a fresh
// transaction that holds no slot yet.
func (s *Store) InsertHold(ctx context.Context, r shop.Reservation, gen, version int64, now time.Time, idem *shop.IdemRecord) (bool, error) {
	const q = `SELECT lu_take_hold($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`
	args := []any{r.ID, r.ProductID, r.VariantID, r.UserID, r.Quantity, r.ExpiresAt, r.CreatedAt, gen, now, version, slotOf(r.ID),
		nil, nil, nil, nil}
	if idem != nil {
		args[11], args[12], args[13], args[14] = idem.Key, idem.RequestHash, idem.Status, idem.Body
	}
	var ok bool
	err := s.pool.QueryRow(ctx, q, args...).Scan(&ok)
	if isNoFreeSlot(err) {
		// The hold's slot could not give the units: nothing was written and every lock given
		// back. The slow path, from fresh: the trigger takes the units from the variant's
		// other slots (pooled when need be) or refuses the hold.
		args[10] = nil
		err = s.pool.QueryRow(ctx, q, args...).Scan(&ok)
	}
	for tries := 0; isDeadlock(err) && tries < 3; tries++ {
		// Postgres aborted the statement (nothing written) to break a lock cycle. None is
		// known since migration 0063; a lock cycle with a statement this code does not know
		// of is still broken this way.
		err = s.pool.QueryRow(ctx, q, args...).Scan(&ok)
	}
	if err != nil {
		if isUniqueViolation(err, "idempotency_keys_pkey") {
			return false, shop.ErrIdemTaken
		}
		if pe, ok := isShort(err); ok {
			// Postgres counts fewer free units than the gate granted: the gate is stale.
			return false, fmt.Errorf("insert reservation: %w: %s", shop.ErrGateStale, pe.Message)
		}
		if !neverSent(err) {
			// Sent but unanswered: the autocommit statement may have committed.
			return false, fmt.Errorf("insert reservation: %w: %w", shop.ErrMaybeWritten, translate(err))
		}
		return false, fmt.Errorf("insert reservation: %w", translate(err))
	}
	return ok, nil
}

// Idem returns a stored idempotency record; shop.ErrNotFound if there is none.
func (s *Store) Idem(ctx context.Context, userID, key string) (shop.IdemRecord, error) {
	rec := shop.IdemRecord{UserID: userID, Key: key}
	err := s.pool.QueryRow(ctx, `SELECT request_hash, status, body, created_at FROM idempotency_keys WHERE user_id = $1 AND key = $2`,
		userID, key).Scan(&rec.RequestHash, &rec.Status, &rec.Body, &rec.CreatedAt)
	if err != nil {
		return shop.IdemRecord{}, fmt.Errorf("select idempotency record: %w", translate(err))
	}
	return rec, nil
}

// ReleaseHold moves the user's hold from reserved to released (compare-and-set).
func (s *Store) ReleaseHold(ctx context.Context, id, userID string, now time.Time) (shop.Reservation, bool, error) {
	rows, err := s.pool.Query(ctx, `UPDATE reservations SET status = 'released', updated_at = $3
		WHERE id = $1 AND user_id = $2 AND status = 'reserved' RETURNING `+reservationCols, id, userID, now)
	if err != nil {
		return shop.Reservation{}, false, fmt.Errorf("release reservation: %w", translate(err))
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanReservation)
	if err == nil {
		return r, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return shop.Reservation{}, false, fmt.Errorf("release reservation: %w", translate(err))
	}
	rows, err = s.pool.Query(ctx, `SELECT `+reservationCols+` FROM reservations WHERE id = $1 AND user_id = $2`, id, userID)
	if err != nil {
		return shop.Reservation{}, false, fmt.Errorf("select reservation: %w", translate(err))
	}
	r, err = pgx.CollectExactlyOneRow(rows, scanReservation)
	if err != nil {
		return shop.Reservation{}, false, fmt.Errorf("select reservation: %w", translate(err))
	}
	return r, false, nil
}

// LiveHolds returns the user's reserved holds not past now and checked-out holds.
func (s *Store) LiveHolds(ctx context.Context, userID string, now time.Time) ([]shop.Reservation, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+reservationCols+` FROM reservations
		WHERE user_id = $1 AND (status = 'checked_out' OR (status = 'reserved' AND expires_at > $2))
		ORDER BY created_at, id`, userID, now)
	if err != nil {
		return nil, fmt.Errorf("select reservations: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, scanReservation)
	if err != nil {
		return nil, fmt.Errorf("select reservations: %w", translate(err))
	}
	return out, nil
}

// ExpireDue moves up to limit reserved holds due at now to expired. Concurrent sweeps skip
// each other's rows, and the status check makes each move happen once.
func (s *Store) ExpireDue(ctx context.Context, now time.Time, limit int) ([]shop.Reservation, error) {
	rows, err := s.pool.Query(ctx, `UPDATE reservations SET status = 'expired', updated_at = $1
		WHERE id IN (SELECT id FROM reservations WHERE status = 'reserved' AND expires_at <= $1
			ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		AND status = 'reserved'
		RETURNING `+reservationCols, now, limit)
	if err != nil {
		return nil, fmt.Errorf("expire reservations: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, scanReservation)
	if err != nil {
		return nil, fmt.Errorf("expire reservations: %w", translate(err))
	}
	return out, nil
}

// HoldStatuses returns the status of each of the given holds that Postgres has.
func (s *Store) HoldStatuses(ctx context.Context, ids []string) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, status FROM reservations WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("select hold statuses: %w", translate(err))
	}
	out := make(map[string]string, len(ids))
	var id, st string
	_, err = pgx.ForEachRow(rows, []any{&id, &st}, func() error { out[id] = st; return nil })
	if err != nil {
		return nil, fmt.Errorf("select hold statuses: %w", translate(err))
	}
	return out, nil
}

// VersionFloor returns the highest live-stock version a gate granted a recorded hold at.
func (s *Store) VersionFloor(ctx context.Context, productID string) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(ver), 0) FROM product_slots WHERE product_id = $1`, productID).Scan(&v); err != nil {
		return 0, fmt.Errorf("select version floor: %w", translate(err))
	}
	return v, nil
}

// SettledHolds returns the product's live holds (id -> quantity) not updated since before.
func (s *Store) SettledHolds(ctx context.Context, productID string, before time.Time) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, quantity FROM reservations
		WHERE product_id = $1 AND status IN `+liveStatuses+` AND updated_at < $2`, productID, before)
	if err != nil {
		return nil, fmt.Errorf("select settled holds: %w", translate(err))
	}
	out := map[string]int64{}
	var id string
	var q int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &q}, func() error { out[id] = q; return nil }); err != nil {
		return nil, fmt.Errorf("select settled holds: %w", translate(err))
	}
	return out, nil
}

// DeleteIdemBefore forgets idempotency records created before t.
func (s *Store) DeleteIdemBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, t)
	if err != nil {
		return 0, fmt.Errorf("delete idempotency records: %w", translate(err))
	}
	return tag.RowsAffected(), nil
}

// tx runs fn in a transaction; errors starting or ending it are translated too.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return translate(pgx.BeginFunc(ctx, s.pool, fn))
}

// txCommitUnknown is tx for transactions whose caller must not undo anything when the COMMIT
// was sent but never answered: that failure is marked shop.ErrMaybeWritten (it may have
// committed). An error from fn, or a COMMIT that Postgres refused, rolled everything back.
func (s *Store) txCommitUnknown(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return translate(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return translate(err)
	}
	if err := tx.Commit(ctx); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return translate(err)
		}
		return fmt.Errorf("commit: %w: %w", shop.ErrMaybeWritten, translate(err))
	}
	return nil
}
