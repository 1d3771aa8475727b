package stock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/redis/go-redis/v9"

	"lastunit/lua"
	"lastunit/shared/shop"
)

// CatalogKey is the Redis hash of every product's shopper-facing details (catalog.lua).
const CatalogKey = "{catalog}"

// catalogComplete is the catalog's field that says every product was written into it.
const catalogComplete = ".complete"

var catalogScript = redis.NewScript(lua.Catalog)

// PutCatalog writes products into the catalog (an entry is replaced only by one of the same or
// a newer generation); complete says these are every product, so one the catalog lacks is unknown.
func (g *Gate) PutCatalog(ctx context.Context, entries []shop.CatalogEntry, complete bool) error {
	flag := "0"
	if complete {
		flag = "1"
	}
	args := make([]any, 0, 1+3*len(entries))
	args = append(args, flag)
	for _, e := range entries {
		p := e.Product
		p.Available = 0
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("encode catalog entry %s: %w", p.ID, err)
		}
		args = append(args, p.ID, e.Gen, string(b))
	}
	if err := catalogScript.Run(ctx, g.rdb, []string{CatalogKey}, args...).Err(); err != nil {
		return fmt.Errorf("run catalog.lua: %w", Translate(err))
	}
	return nil
}

// Catalog returns every product in the catalog, ordered by id, without available units;
// complete is false when the catalog was never filled or was lost with Redis.
func (g *Gate) Catalog(ctx context.Context) (products []shop.Product, complete bool, err error) {
	all, err := g.rdb.HGetAll(ctx, CatalogKey).Result()
	if err != nil {
		return nil, false, fmt.Errorf("read catalog: %w", Translate(err))
	}
	products = make([]shop.Product, 0, len(all))
	for id, v := range all {
		if id == catalogComplete {
			complete = true
			continue
		}
		p, err := decodeCatalogEntry(id, v)
		if err != nil {
			return nil, false, err
		}
		products = append(products, p)
	}
	sort.Slice(products, func(i, j int) bool { return products[i].ID < products[j].ID })
	return products, complete, nil
}

// CatalogProduct returns one product from the catalog; found is false when the catalog lacks
// it, which means it is unknown only when complete is true.
func (g *Gate) CatalogProduct(ctx context.Context, id string) (p shop.Product, found, complete bool, err error) {
	v, err := g.rdb.HMGet(ctx, CatalogKey, id, catalogComplete).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return shop.Product{}, false, false, fmt.Errorf("read catalog entry %s: %w", id, Translate(err))
	}
	complete = len(v) == 2 && v[1] != nil
	if len(v) == 0 || v[0] == nil {
		return shop.Product{}, false, complete, nil
	}
	s, _ := v[0].(string)
	p, err = decodeCatalogEntry(id, s)
	return p, err == nil, complete, err
}

func decodeCatalogEntry(id, v string) (shop.Product, error) {
	_, js, ok := strings.Cut(v, "|")
	var p shop.Product
	if !ok || json.Unmarshal([]byte(js), &p) != nil || p.ID != id {
		return shop.Product{}, fmt.Errorf("catalog entry %s is malformed", id)
	}
	return p, nil
}
