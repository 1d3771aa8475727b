// Command fanoutbench measures the live stock fan-out of a running local runner (`make
// bench-fanout` starts one): viewers spread over products on /ws, a burst of changes (holds of
// one unit) on one product at a fixed rate over HTTP, and then, in one table, the messages per
// viewer per second in the burst's room, the delay until each viewer holds the exact final
// value (p50/p99), the messages that reached other rooms (must be 0), and what a design that
// broadcasts every change to every viewer would have sent.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "the runner's URL")
	viewers := flag.Int("viewers", 1000, "WebSocket viewers")
	products := flag.Int("products", 10, "products, the viewers spread evenly over them")
	rate := flag.Int("rate", 1000, "changes per second on the burst's product")
	duration := flag.Duration("duration", 5*time.Second, "how long the burst lasts")
	workers := flag.Int("workers", 100, "concurrent HTTP clients making the changes")
	flag.Parse()
	if err := run(*base, *viewers, *products, *rate, *duration, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "fanoutbench:", err)
		os.Exit(1)
	}
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

func do(method, url, token string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		json.Unmarshal(b, out) //nolint:errcheck
	}
	return resp.StatusCode, nil
}

func token(base, sub string, groups ...string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	st, err := do("POST", base+"/_local/token", "", map[string]any{"sub": sub, "groups": groups, "ttl": "1h"}, &out)
	if err != nil || st != 200 {
		return "", fmt.Errorf("mint a token: %d %v", st, err)
	}
	return out.Token, nil
}

type msg struct {
	Type      string `json:"type"`
	ProductID string `json:"product_id"`
	Available int64  `json:"available"`
	Version   int64  `json:"version"`
	at        time.Time
}

// viewer is one WebSocket client following one product.
type viewer struct {
	product string
	c       *websocket.Conn
	mu      sync.Mutex
	msgs    []msg
	first   chan struct{}
}

func (v *viewer) read() {
	once := sync.Once{}
	for {
		_, data, err := v.c.Read(context.Background())
		if err != nil {
			return
		}
		var m msg
		json.Unmarshal(data, &m) //nolint:errcheck
		m.at = time.Now()
		v.mu.Lock()
		v.msgs = append(v.msgs, m)
		v.mu.Unlock()
		once.Do(func() { close(v.first) })
	}
}

func (v *viewer) received() []msg {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.msgs)
}

func run(base string, nViewers, nProducts, rate int, duration time.Duration, nWorkers int) error {
	admin, err := token(base, "bench-admin", "admin")
	if err != nil {
		return err
	}
	changes := int(float64(rate) * duration.Seconds())
	ids := make([]string, nProducts)
	for i := range ids {
		ids[i] = fmt.Sprintf("fanout-%d", i)
		st, err := do("PUT", base+"/admin/products/"+ids[i], admin, map[string]any{
			"name": "Fan-out " + ids[i], "price_cents": 100, "currency": "usd", "stock": 2*changes + 10, "max_per_user": 2*changes + 10,
		}, nil)
		if err != nil || st != 200 {
			return fmt.Errorf("create %s: %d %v", ids[i], st, err)
		}
	}
	hot := ids[0]

	// Viewers: connect and subscribe, 50 at a time; each must get its current value first.
	wsBase := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	vs := make([]*viewer, nViewers)
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	var dialErr atomic.Pointer[error]
	for i := range vs {
		vs[i] = &viewer{product: ids[i%nProducts], first: make(chan struct{})}
		wg.Add(1)
		sem <- struct{}{}
		go func(v *viewer) {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, wsBase, nil)
			if err != nil {
				dialErr.Store(&err)
				return
			}
			v.c = c
			go v.read()
			if err := c.Write(ctx, websocket.MessageText, []byte(`{"action":"subscribe","product_id":"`+v.product+`"}`)); err != nil {
				dialErr.Store(&err)
				return
			}
			select {
			case <-v.first:
			case <-ctx.Done():
				err := errors.New("no current value within 10 s of subscribing")
				dialErr.Store(&err)
			}
		}(vs[i])
	}
	wg.Wait()
	if e := dialErr.Load(); e != nil {
		return fmt.Errorf("viewers: %w", *e)
	}
	defer func() {
		for _, v := range vs {
			v.c.Close(websocket.StatusNormalClosure, "") //nolint:errcheck
		}
	}()
	time.Sleep(500 * time.Millisecond) // let the products' creation notices settle

	// The burst: one hold of one unit per change, paced at rate, from nWorkers clients.
	tokens := make([]string, 50)
	for i := range tokens {
		if tokens[i], err = token(base, fmt.Sprintf("bench-user-%d", i)); err != nil {
			return err
		}
	}
	jobs := make(chan int, changes)
	var failed atomic.Int64
	var lastDone atomic.Int64
	for w := range nWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				st, err := do("POST", base+"/reservations", tokens[(w+j)%len(tokens)], map[string]any{"product_id": hot, "quantity": 1}, nil)
				if err != nil || st != 201 {
					failed.Add(1)
				}
				now := time.Now().UnixNano()
				for {
					old := lastDone.Load()
					if now <= old || lastDone.CompareAndSwap(old, now) {
						break
					}
				}
			}
		}()
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range changes {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	end := time.Unix(0, lastDone.Load())
	burst := end.Sub(start)
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d of %d changes failed", f, changes)
	}
	var p struct {
		Available int64 `json:"available"`
	}
	if st, err := do("GET", base+"/products/"+hot, "", nil, &p); err != nil || st != 200 {
		return fmt.Errorf("read the final value: %d %v", st, err)
	}
	final := p.Available
	time.Sleep(3 * time.Second) // anything later than this is a failure anyway

	var lat []time.Duration
	var hotMsgs, otherRooms, total, holding, hotViewers int
	worst := 0.0
	for _, v := range vs {
		ms := v.received()
		n := 0
		var best msg
		for _, m := range ms {
			if m.at.Before(start) {
				continue // the answer to subscribe
			}
			total++
			if m.ProductID != v.product || v.product != hot {
				otherRooms++
				continue
			}
			n++
			if m.Version > best.Version {
				best = m
			}
		}
		if v.product != hot {
			continue
		}
		hotViewers++
		hotMsgs += n
		worst = max(worst, float64(n)/burst.Seconds())
		if best.Available == final {
			holding++
			// When the final value first reached this viewer.
			for _, m := range ms {
				if m.Version == best.Version {
					lat = append(lat, max(0, m.at.Sub(end)))
					break
				}
			}
		}
	}
	slices.Sort(lat)
	pct := func(q float64) string {
		if len(lat) == 0 {
			return "n/a"
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))].Round(time.Millisecond).String()
	}
	perViewer := float64(hotMsgs) / float64(hotViewers) / burst.Seconds()
	naive := changes * nViewers
	fmt.Printf("fan-out: %d viewers over %d products, %d changes of %s in %.2f s (%.0f/s)\n\n", nViewers, nProducts, changes, hot, burst.Seconds(), float64(changes)/burst.Seconds())
	fmt.Println("| measure | value | target |")
	fmt.Println("|---|---:|---|")
	fmt.Printf("| messages per viewer per second, burst room (mean / worst viewer) | %.1f / %.1f | ≤ 20 |\n", perViewer, worst)
	fmt.Printf("| final value delivered, p50 / p99 after the last change | %s / %s | p99 ≤ 1s |\n", pct(0.50), pct(0.99))
	fmt.Printf("| viewers of the burst room holding the exact final value (%d) | %d / %d | all |\n", final, holding, hotViewers)
	fmt.Printf("| messages to viewers of other rooms | %d | 0 |\n", otherRooms)
	fmt.Printf("| messages sent in all during the burst | %d | |\n", total)
	fmt.Printf("| a broadcast-to-everyone design would have sent | %d (%d per viewer per second) | |\n", naive, rate)
	ok := perViewer <= 20 && worst <= 20 && holding == hotViewers && otherRooms == 0 && len(lat) > 0 && lat[min(len(lat)-1, int(0.99*float64(len(lat))))] <= time.Second
	if !ok {
		return errors.New("a target was missed")
	}
	return nil
}
