package handler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/handler"
	"lastunit/shared/testenv"
)

// reserveEvent is the event API Gateway sends the reserve function for POST /reservations.
func reserveEvent(user, body string) events.APIGatewayV2HTTPRequest {
	return events.APIGatewayV2HTTPRequest{
		Version:  "2.0",
		RouteKey: handler.RouteReserve,
		RawPath:  "/reservations",
		Headers:  map[string]string{"content-type": "application/json"},
		Body:     body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:   handler.RouteReserve,
			RequestID:  "test",
			HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/reservations"},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": user}}},
		},
	}
}

// TestLastUnitsUnderContention: 1000 shoppers press reserve on 50 units at once through the
// real handler; exactly 50 get one, everyone else gets 409 out_of_stock, and Redis and
// Postgres agree afterwards.
func TestLastUnitsUnderContention(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	env.Product(t, "drop", 50, 1)
	h := handler.Reserve(env.Shop, slog.New(slog.NewJSONHandler(io.Discard, nil)))

	const shoppers = 1000
	statuses := make([]int, shoppers)
	ids := make([]string, shoppers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < shoppers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := h.Serve(context.Background(), reserveEvent(fmt.Sprintf("shopper-%d", i), `{"product_id":"drop","quantity":1}`))
			if err != nil {
				t.Errorf("serve: %v", err)
				return
			}
			statuses[i] = resp.StatusCode
			var body struct {
				ID    string `json:"id"`
				Error struct {
					Code    string         `json:"code"`
					Details map[string]any `json:"details"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
				t.Errorf("answer %d is not JSON: %q", resp.StatusCode, resp.Body)
			}
			ids[i] = body.ID
			if resp.StatusCode == 409 && body.Error.Code != "out_of_stock" {
				t.Errorf("409 with code %q", body.Error.Code)
			}
		}()
	}
	close(start)
	wg.Wait()

	count := map[int]int{}
	seen := map[string]bool{}
	for i, s := range statuses {
		count[s]++
		if s == 201 {
			if seen[ids[i]] {
				t.Errorf("hold %s granted twice", ids[i])
			}
			seen[ids[i]] = true
		}
	}
	if count[201] != 50 || count[409] != shoppers-50 {
		t.Fatalf("answers %v; want 50 × 201 and %d × 409", count, shoppers-50)
	}
	l := env.CheckLedger(t, "drop", 50)
	if l.Available != 0 || l.HeldPG != 50 || len(l.HoldsPG) != 50 {
		t.Fatalf("ledger: available %d, held %d in %d holds; want 0, 50, 50", l.Available, l.HeldPG, len(l.HoldsPG))
	}
	for id := range seen {
		if _, ok := l.HoldsPG[id]; !ok {
			t.Errorf("granted hold %s is not in postgres", id)
		}
	}
}
