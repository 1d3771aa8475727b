package metric_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"lastunit/shared/metric"
	"lastunit/shared/shop"
)

// Each figure is one EMF line that parses as CloudWatch reads it: namespace lastunit, the
// dimension sets [Service] and [Service, ProductId] with their values as members, every
// declared metric's value as a member with its unit; a figure without a product has only
// [Service]. Lines written from many goroutines stay whole.
func TestEmitterWritesParsableEMF(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	at := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	e := &metric.Emitter{Service: "reserve", W: &buf, Now: func() time.Time { return at }}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Figure("p1", shop.FigureReserveOK, 1)
			e.Figure("p1", shop.FigureReserveLatency, 1.25)
		}()
	}
	wg.Wait()
	e.Emit("", map[string]float64{shop.FigureStaleGates: 2, shop.FigureRefundsStuck: 0})

	counts := map[string]int{}
	sc := bufio.NewScanner(&buf)
	n := 0
	for sc.Scan() {
		n++
		var raw map[string]any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", n, err, sc.Bytes())
		}
		var l metric.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		if l.AWS.Timestamp != at.UnixMilli() || len(l.AWS.CloudWatchMetrics) != 1 {
			t.Fatalf("line %d: metadata %+v", n, l.AWS)
		}
		d := l.AWS.CloudWatchMetrics[0]
		if d.Namespace != "lastunit" {
			t.Errorf("line %d: namespace %q", n, d.Namespace)
		}
		if raw["Service"] != "reserve" {
			t.Errorf("line %d: Service %v", n, raw["Service"])
		}
		_, hasProduct := raw["ProductId"]
		wantDims := `[["Service"]]`
		if hasProduct {
			wantDims = `[["Service"],["Service","ProductId"]]`
			if raw["ProductId"] != "p1" {
				t.Errorf("line %d: ProductId %v", n, raw["ProductId"])
			}
		}
		if got, _ := json.Marshal(d.Dimensions); string(got) != wantDims {
			t.Errorf("line %d: dimensions %s, want %s", n, got, wantDims)
		}
		for _, m := range d.Metrics {
			v, ok := raw[m.Name].(float64)
			if !ok {
				t.Errorf("line %d: metric %s declared without a value", n, m.Name)
			}
			wantUnit := "Count"
			if m.Name == "ReserveLatency" {
				wantUnit = "Milliseconds"
				if v != 1.25 {
					t.Errorf("latency %v", v)
				}
			}
			if m.Unit != wantUnit {
				t.Errorf("line %d: %s in %s, want %s", n, m.Name, m.Unit, wantUnit)
			}
			counts[m.Name]++
		}
	}
	if n != 101 || counts["ReserveOK"] != 50 || counts["ReserveLatency"] != 50 || counts["StaleGates"] != 1 || counts["RefundsStuck"] != 1 {
		t.Fatalf("%d lines, metrics %v; want 101 lines: 50 ReserveOK, 50 ReserveLatency, one StaleGates and RefundsStuck", n, counts)
	}
}

// A nil Emitter, or one without a writer (the local runner's), writes nothing and does not fail.
func TestEmitterOff(t *testing.T) {
	t.Parallel()
	var e *metric.Emitter
	e.Figure("p1", shop.FigureReserveOK, 1)
	(&metric.Emitter{Service: "reserve"}).Figure("p1", shop.FigureReserveOK, 1)
}
