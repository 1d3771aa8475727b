package handler_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"lastunit/shared/handler"
	"lastunit/shared/shop"
	"lastunit/shared/testenv"
)

func seconds(v string) func(*caseEnv, *events.APIGatewayV2HTTPRequest) {
	return func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) {
		ev.QueryStringParameters = map[string]string{"seconds": v}
		ev.RawQueryString = "seconds=" + v
	}
}

func unknownProduct(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) {
	setParam(ev, "id", c.unknown)
}

// The control room's routes refuse bad input as API.md says, and change nothing.
func TestControlRoomBadInput(t *testing.T) {
	t.Parallel()
	const live, report = "admin_live.json", "admin_report.json"
	runBadInput(t, []badCase{
		{name: "live seconds 0", event: live, mod: seconds("0"), status: 400, code: shop.CodeInvalidRequest, field: "seconds"},
		{name: "live seconds 901", event: live, mod: seconds("901"), status: 400, code: shop.CodeInvalidRequest, field: "seconds"},
		{name: "live seconds empty", event: live, mod: seconds(""), status: 400, code: shop.CodeInvalidRequest, field: "seconds"},
		{name: "live seconds not a number", event: live, mod: seconds("5m"), status: 400, code: shop.CodeInvalidRequest, field: "seconds"},
		{name: "live seconds signed", event: live, mod: seconds("+60"), status: 400, code: shop.CodeInvalidRequest, field: "seconds"},
		{name: "live seconds fraction", event: live, mod: seconds("1.5"), status: 400, code: shop.CodeInvalidRequest, field: "seconds"},
		{name: "live unknown product", event: live, mod: unknownProduct, status: 404, code: shop.CodeNotFound},
		{name: "live bad product id", event: live, mod: func(c *caseEnv, ev *events.APIGatewayV2HTTPRequest) { setParam(ev, "id", "Bad!") },
			status: 400, code: shop.CodeInvalidRequest, field: "id"},
		{name: "live as shopper", event: live, mod: groups("[shoppers]"), status: 403, code: shop.CodeForbidden},
		{name: "live without token", event: live, mod: noAuthorizer, status: 401, code: shop.CodeUnauthenticated},
		{name: "report unknown product", event: report, mod: unknownProduct, status: 404, code: shop.CodeNotFound},
		{name: "report unknown product as csv", event: report, mod: both(unknownProduct, header("Accept", "text/csv")), status: 404, code: shop.CodeNotFound},
		{name: "report as shopper", event: report, mod: groups(""), status: 403, code: shop.CodeForbidden},
		{name: "report without token", event: report, mod: noAuthorizer, status: 401, code: shop.CodeUnauthenticated},
	})
}

// live answers one point per second asked for, the last one the current second; the report
// answers JSON, or with Accept: text/csv its per-minute series with the header row.
func TestControlRoomRoutes(t *testing.T) {
	t.Parallel()
	env := testenv.NewEnv(t)
	admin := handler.Admin(env.Shop, discard)
	env.Product(t, "room", 3, 3)
	if _, err := env.Shop.Reserve(context.Background(), shop.ReserveRequest{UserID: "alice", ProductID: "room", Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	serve := func(name string, mod func(*events.APIGatewayV2HTTPRequest)) events.APIGatewayV2HTTPResponse {
		t.Helper()
		ev := loadEvent(t, name)
		retarget(&ev, "room", "ada")
		if mod != nil {
			mod(&ev)
		}
		resp, err := admin.Serve(context.Background(), ev)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s %v", name, resp.StatusCode, resp.Body, err)
		}
		return resp
	}
	for _, tc := range []struct {
		query map[string]string
		n     int
	}{{map[string]string{"seconds": "60"}, 60}, {nil, 300}, {map[string]string{"seconds": "900"}, 900}, {map[string]string{"seconds": "1"}, 1}} {
		resp := serve("admin_live.json", func(ev *events.APIGatewayV2HTTPRequest) { ev.QueryStringParameters = tc.query })
		var l shop.Live
		if err := json.Unmarshal([]byte(resp.Body), &l); err != nil {
			t.Fatal(err)
		}
		last := l.Points[len(l.Points)-1]
		if len(l.Points) != tc.n || !last.T.Equal(testenv.Start) || last.ReserveOK != 1 || last.Available != 1 || last.Held != 2 {
			t.Errorf("%v: %d points, last %+v; want %d ending at %s with the reserve", tc.query, len(l.Points), last, tc.n, testenv.Start)
		}
	}
	resp := serve("admin_report.json", nil)
	if ct := resp.Headers["Content-Type"]; ct != "application/json" {
		t.Errorf("report Content-Type %q", ct)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &r); err != nil || r["shoppers"] != 1.0 || r["product_id"] != "room" {
		t.Errorf("report %s: %v", resp.Body, err)
	}
	resp = serve("admin_report.json", func(ev *events.APIGatewayV2HTTPRequest) { ev.Headers["accept"] = "text/html, text/csv;q=0.9" })
	if ct := resp.Headers["Content-Type"]; !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("csv Content-Type %q", ct)
	}
	rows, err := csv.NewReader(strings.NewReader(resp.Body)).ReadAll()
	if err != nil || len(rows) != 1 || strings.Join(rows[0], ",") != strings.Join(handler.CSVHeader, ",") {
		t.Errorf("csv before any minute is rolled: %q %v; want the header row alone", resp.Body, err)
	}
	if handler.WantsCSV("text/csv;q=0") || handler.WantsCSV("application/json") || !handler.WantsCSV("TEXT/CSV") {
		t.Error("WantsCSV reads Accept wrongly")
	}
}
