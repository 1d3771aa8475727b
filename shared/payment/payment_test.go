package payment_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"lastunit/shared/payment"
)

// TestRefundAlreadyRefundedIsDone: a refund Stripe refuses because the charge is refunded
// already (an operator did it in the dashboard, or our first call's answer was lost) is what
// the call is for: done, so a cancel that recorded its intent to refund can finish instead of
// being retried forever; any other refusal is an error.
func TestRefundAlreadyRefundedIsDone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		wantErr bool
	}{
		{"refunded now", 200, `{"id":"re_1","object":"refund","status":"succeeded"}`, false},
		{"already refunded", 400, `{"error":{"type":"invalid_request_error","code":"charge_already_refunded","message":"Charge ch_1 has already been refunded."}}`, false},
		{"disputed", 400, `{"error":{"type":"invalid_request_error","code":"charge_disputed","message":"Charge ch_1 has been charged back."}}`, true},
		{"stripe down", 500, `{"error":{"type":"api_error","message":"boom"}}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/refunds" || r.Header.Get("Idempotency-Key") != "lastunit-refund-o_1" {
					t.Errorf("unexpected request %s %s key %q", r.Method, r.URL.Path, r.Header.Get("Idempotency-Key"))
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body)) //nolint:errcheck
			}))
			defer srv.Close()
			s := payment.New(payment.Config{SecretKey: "sk_test_x", APIBase: srv.URL, WebhookSecret: "whsec_x", Timeout: 2 * time.Second})
			err := s.Refund(context.Background(), "o_1", "pi_1")
			if (err != nil) != tc.wantErr {
				t.Fatalf("refund: %v, want error %v", err, tc.wantErr)
			}
		})
	}
}
