// Package metric writes the functions' figures as CloudWatch Embedded Metric Format (EMF)
// lines on stdout: CloudWatch Logs turns each line into metrics, so the hot path never calls
// PutMetricData. Namespace lastunit; dimension sets [Service] and [Service, ProductId] (only
// [Service] for a figure without a product); docs/control-room.md lists the metrics.
package metric

import (
	"encoding/json"
	"io"
	"sync"
	"time"

	"lastunit/shared/shop"
)

// Namespace is the CloudWatch namespace of every figure.
const Namespace = "lastunit"

// Units of the figures: milliseconds for ReserveLatency, a count for the others.
const (
	UnitCount        = "Count"
	UnitMilliseconds = "Milliseconds"
)

// Unit returns a metric's unit.
func Unit(name string) string {
	if name == shop.FigureReserveLatency {
		return UnitMilliseconds
	}
	return UnitCount
}

// Emitter writes one EMF line per figure to W. It implements shop.Figures. Safe for
// concurrent use; a nil *Emitter or one without W writes nothing.
type Emitter struct {
	// Service is the function's name (reserve, checkout, webhook, fulfill, expire, janitor,
	// wsconnect): the Service dimension.
	Service string
	W       io.Writer
	// Now is the clock of the lines' timestamps; nil: time.Now.
	Now func() time.Time

	mu sync.Mutex
}

var _ shop.Figures = (*Emitter)(nil)

// New returns an Emitter of a function writing to w (os.Stdout in a function).
func New(service string, w io.Writer) *Emitter { return &Emitter{Service: service, W: w} }

// Figure writes one figure: a metric name, the product ("" for none) and its value.
func (e *Emitter) Figure(productID, name string, value float64) {
	e.Emit(productID, map[string]float64{name: value})
}

// Emit writes several figures of one product ("" for none) in one line.
func (e *Emitter) Emit(productID string, values map[string]float64) {
	if e == nil || e.W == nil || len(values) == 0 {
		return
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	b, err := json.Marshal(line(e.Service, productID, values, now()))
	if err != nil {
		return
	}
	b = append(b, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.W.Write(b) // figures are not the ledger: a failed write loses a point, nothing else
}

// Line is one EMF line as it is encoded (exported for the tests that parse them).
type Line struct {
	AWS AWS `json:"_aws"`
}

// AWS is an EMF line's metadata.
type AWS struct {
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []Directive `json:"CloudWatchMetrics"`
}

// Directive names the namespace, the dimension sets and the metrics of a line.
type Directive struct {
	Namespace  string     `json:"Namespace"`
	Dimensions [][]string `json:"Dimensions"`
	Metrics    []Def      `json:"Metrics"`
}

// Def is one metric of a directive.
type Def struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

// line builds the JSON object of one EMF line: the metadata, the dimensions' values and the
// metrics' values as top-level members.
func line(service, productID string, values map[string]float64, at time.Time) map[string]any {
	dims := [][]string{{"Service"}}
	out := map[string]any{"Service": service}
	if productID != "" {
		dims = append(dims, []string{"Service", "ProductId"})
		out["ProductId"] = productID
	}
	defs := make([]Def, 0, len(values))
	for name, v := range values {
		defs = append(defs, Def{Name: name, Unit: Unit(name)})
		out[name] = v
	}
	out["_aws"] = AWS{Timestamp: at.UnixMilli(), CloudWatchMetrics: []Directive{{Namespace: Namespace, Dimensions: dims, Metrics: defs}}}
	return out
}
