package handler

import (
	"encoding/csv"
	"mime"
	"strconv"
	"strings"
	"time"

	"lastunit/shared/shop"
)

// CSVHeader is the header row of a report's per-minute CSV.
var CSVHeader = []string{"minute", "reserve_ok", "out_of_stock", "limit_exceeded", "not_admitted", "not_open",
	"rate_limited", "released", "expired", "checked_out", "paid", "queue_joined", "available", "held", "serving",
	"reserve_ms_p50", "reserve_ms_p99", "peak_reserves_per_s", "sold_out_at"}

// WantsCSV reports whether an Accept header asks for text/csv (with a q above 0): then the
// report answers its per-minute CSV, else its JSON.
func WantsCSV(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt != "text/csv" {
			continue
		}
		if q, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(q, 64); err != nil || f <= 0 {
				continue
			}
		}
		return true
	}
	return false
}

// ReportCSV writes a report's per-minute series: the header row, then one row per rolled
// minute, oldest first (an empty cell: unknown, such as no reserve measured in that minute).
func ReportCSV(r shop.Report) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write(CSVHeader)
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	pi := func(n *int64) string {
		if n == nil {
			return ""
		}
		return i(*n)
	}
	pf := func(f *float64) string {
		if f == nil {
			return ""
		}
		return strconv.FormatFloat(*f, 'f', -1, 64)
	}
	for _, m := range r.Minutes {
		sold := ""
		if m.SoldOutAt != nil {
			sold = m.SoldOutAt.UTC().Format(time.RFC3339Nano)
		}
		_ = w.Write([]string{m.Minute.UTC().Format(time.RFC3339), i(m.ReserveOK), i(m.OutOfStock), i(m.LimitExceeded),
			i(m.NotAdmitted), i(m.NotOpen), i(m.RateLimited), i(m.Released), i(m.Expired), i(m.CheckedOut), i(m.Paid),
			i(m.QueueJoined), pi(m.Available), pi(m.Held), pi(m.Serving), pf(m.ReserveMsP50), pf(m.ReserveMsP99),
			i(m.PeakReservesPerS), sold})
	}
	w.Flush()
	return b.String()
}
