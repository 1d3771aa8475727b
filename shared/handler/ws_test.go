package handler_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/golang-jwt/jwt/v5"

	"lastunit/shared/handler"
	"lastunit/shared/jwtauth"
	"lastunit/shared/rooms"
	"lastunit/shared/stock"
	"lastunit/shared/testenv"
)

var wsQuiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

const wsSecret = "ws-test-secret"

// loadSample reads a sample event from testdata/ with its placeholders replaced.
func loadSample(t *testing.T, name string, v any, replace ...string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(replace...).Replace(string(b))
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func wsToken(t *testing.T, sub string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": exp.Unix()}).SignedString([]byte(wsSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWSSampleEvents runs the wsconnect function on API Gateway's sample WebSocket events:
// connect without and with a token, subscribe (answered with the current value), unsubscribe,
// $default (an error message) and disconnect (no trace left in the table).
func TestWSSampleEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t)
	env.Product(t, "tee", 12, 5)
	tab := rooms.NewTable(env.Redis)
	fn := handler.WSConnect(env.Shop, tab, jwtauth.HS256([]byte(wsSecret)), wsQuiet)
	const conn = "L0SM9cOFvHcCIhw="
	run := func(name string, replace ...string) events.APIGatewayProxyResponse {
		t.Helper()
		var ev events.APIGatewayWebsocketProxyRequest
		loadSample(t, name, &ev, replace...)
		// The sample's connection opened now, by the test's clock.
		ev.RequestContext.ConnectedAt, ev.RequestContext.RequestTimeEpoch = testenv.Start.UnixMilli(), testenv.Start.UnixMilli()
		resp, err := fn(ctx, ev)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return resp
	}
	good := wsToken(t, "alice", time.Now().Add(time.Hour))
	cases := []struct {
		name, file, token string
		status            int
	}{
		{"anonymous viewer", "ws-connect.json", "", 200},
		{"valid token", "ws-connect-token.json", good, 200},
		{"expired token", "ws-connect-token.json", wsToken(t, "alice", time.Now().Add(-time.Minute)), 401},
		{"badly signed token", "ws-connect-token.json", good[:len(good)-2] + "xx", 401},
		{"empty token", "ws-connect-token.json", "", 401},
		{"not a token", "ws-connect-token.json", "hello", 401},
	}
	for _, c := range cases {
		resp := run(c.file, "TOKEN", c.token)
		if resp.StatusCode != c.status {
			t.Fatalf("%s: status %d %s", c.name, resp.StatusCode, resp.Body)
		}
		if c.status == 401 && !strings.Contains(resp.Body, `"unauthenticated"`) {
			t.Fatalf("%s: body %s", c.name, resp.Body)
		}
	}

	resp := run("ws-subscribe.json", "PRODUCT", "tee")
	var m rooms.Stock
	json.Unmarshal([]byte(resp.Body), &m)
	ver, _ := env.Redis.Get(ctx, stock.KeysFor("tee").Version).Int64()
	if resp.StatusCode != 200 || !reflect.DeepEqual(m, rooms.NewStock("tee", 12, ver, map[string]int64{"default": 12})) {
		t.Fatalf("subscribe: %d %s", resp.StatusCode, resp.Body)
	}
	if members, _ := tab.Members(ctx, "tee", testenv.Start); !slices.Equal(members, []string{conn}) {
		t.Fatalf("room after subscribe: %v", members)
	}
	if resp := run("ws-subscribe.json", "PRODUCT", "nope"); !strings.Contains(resp.Body, `"not_found"`) {
		t.Fatalf("subscribe to an unknown product: %s", resp.Body)
	}
	if resp := run("ws-default.json"); !strings.Contains(resp.Body, `"type":"error","code":"invalid_request"`) {
		t.Fatalf("$default: %s", resp.Body)
	}
	if resp := run("ws-unsubscribe.json", "PRODUCT", "tee"); resp.StatusCode != 200 || resp.Body != "" {
		t.Fatalf("unsubscribe: %d %s", resp.StatusCode, resp.Body)
	}
	if members, _ := tab.Members(ctx, "tee", testenv.Start); len(members) != 0 {
		t.Fatalf("room after unsubscribe: %v", members)
	}
	run("ws-subscribe.json", "PRODUCT", "tee")
	if resp := run("ws-disconnect.json"); resp.StatusCode != 200 {
		t.Fatalf("disconnect: %d", resp.StatusCode)
	}
	if keys, _ := env.Redis.Keys(ctx, "{c:*}:rooms").Result(); len(keys) != 0 {
		t.Fatalf("connection keys left after disconnect: %v", keys)
	}
	if n, _ := env.Redis.Exists(ctx, rooms.RoomKey("tee")).Result(); n != 0 {
		t.Fatal("room left after its only viewer disconnected")
	}
}

type recordingPoster struct {
	mu    sync.Mutex
	posts []rooms.Stock
}

func (p *recordingPoster) Post(_ context.Context, _ string, data []byte) error {
	var m rooms.Stock
	json.Unmarshal(data, &m)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.posts = append(p.posts, m)
	return nil
}

// TestBroadcastSampleBatch: a batch with two notices of one product, one of another and one
// malformed posts each product's value once and acknowledges everything; with Redis down
// every well-formed notice comes back.
func TestBroadcastSampleBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.NewEnv(t)
	env.Product(t, "tee", 12, 5)
	env.Product(t, "cap", 3, 5)
	post := &recordingPoster{}
	b := rooms.NewBroadcaster(env.Redis, post, wsQuiet)
	for _, p := range []string{"tee", "cap"} {
		if err := b.Table.Join(ctx, "viewer-"+p, p, time.Now(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	var ev events.SQSEvent
	loadSample(t, "sqs-stock-updates.json", &ev, "PRODUCT", "tee", "OTHER", "cap")
	resp, err := handler.Broadcast(b, wsQuiet)(ctx, ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("broadcast: %+v %v", resp, err)
	}
	slices.SortFunc(post.posts, func(a, b rooms.Stock) int { return strings.Compare(a.ProductID, b.ProductID) })
	if len(post.posts) != 2 || post.posts[0].ProductID != "cap" || post.posts[0].Available != 3 || post.posts[1].Available != 12 {
		t.Fatalf("posts: %+v", post.posts)
	}

	env.Redis.Close()
	resp, err = handler.Broadcast(b, wsQuiet)(ctx, ev)
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	slices.Sort(failed)
	if err != nil || !slices.Equal(failed, []string{"s-1", "s-2", "s-3"}) {
		t.Fatalf("broadcast with Redis down: failures %v, err %v", failed, err)
	}
}
