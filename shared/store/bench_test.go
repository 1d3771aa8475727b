package store_test

import (
	"context"
	"testing"
	"time"

	"lastunit/shared/shop"
	"lastunit/shared/store"
	"lastunit/shared/testenv"
)

// BenchmarkInsertHold measures the reserve's Postgres statement on one hot product from 50
// goroutines: store.InsertHold (the units taken from one of 16 slot rows in the same
// statement) against the statement before Postgres enforced the count (gate generation
// check and insert only, in a database without the slots' trigger work).
// Both run here, one after the other, so the machine's noise hits both alike:
//
//	go test -run '^$' -bench InsertHold -benchtime 5s ./shared/store/
func BenchmarkInsertHold(b *testing.B) {
	for _, bc := range []struct {
		name  string
		slots bool
	}{{"slots", true}, {"without-slots", false}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			pool, _ := testenv.Postgres(b)
			st := store.New(pool)
			now := time.Now().UTC().Truncate(time.Millisecond)
			p, err := st.UpsertProduct(ctx, "hot", shop.ProductInput{Name: "hot", Currency: "usd", Stock: shop.MaxStock, MaxPerUser: shop.MaxStock}, now)
			if err != nil {
				b.Fatal(err)
			}
			if !bc.slots {
				if _, err := pool.Exec(ctx, `ALTER TABLE reservations DISABLE TRIGGER reservations_take_units`); err != nil {
					b.Fatal(err)
				}
			}
			insert := func(r shop.Reservation) (bool, error) {
				if bc.slots {
					return st.InsertHold(ctx, r, p.Gen, 1, now, nil)
				}
				var n int
				err := pool.QueryRow(ctx, `
					WITH p AS (SELECT id FROM products WHERE id = $2 AND gate_gen = $7 FOR KEY SHARE),
					r AS (INSERT INTO reservations (id, product_id, user_id, quantity, status, expires_at, created_at, updated_at)
						SELECT $1, p.id, $3, $4, 'reserved', $5, $6, $6 FROM p WHERE $5::timestamptz > $8::timestamptz
						RETURNING id)
					SELECT count(*) FROM r`, r.ID, r.ProductID, r.UserID, r.Quantity, r.ExpiresAt, r.CreatedAt, p.Gen, now).Scan(&n)
				return n == 1, err
			}
			b.SetParallelism(benchParallel) // × GOMAXPROCS 2: 50 goroutines as make bench's c=50
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := shop.Reservation{ID: shop.NewID("r_"), ProductID: "hot", UserID: "u", Quantity: 1, ExpiresAt: now.Add(time.Hour), CreatedAt: now}
					if ok, err := insert(r); err != nil || !ok {
						b.Errorf("insert: %v, %v", ok, err)
						return
					}
				}
			})
		})
	}
}

// benchParallel × GOMAXPROCS is the number of goroutines inserting.
var benchParallel = 25
