package main

import (
	"errors"
	"net/http"
	"sync/atomic"

	"lastunit/shared/apigw"
	"lastunit/shared/shop"
)

// faults are the runner's injected failures (PUT /_local/faults).
type faults struct {
	fulfill atomic.Bool
}

// errInjected is the error a fulfillment attempt fails with while the fault is on.
var errInjected = errors.New("injected fault: fulfillment is failing on purpose (PUT /_local/faults)")

// hook is the shop's Fault hook.
func (f *faults) hook(step string) error {
	if step == "fulfill" && f.fulfill.Load() {
		return errInjected
	}
	return nil
}

// faultsBody is the body of PUT /_local/faults.
type faultsBody struct {
	Fulfill string `json:"fulfill"`
}

// put serves PUT /_local/faults: {"fulfill": "fail"} or {"fulfill": "ok"} → 204.
func (f *faults) put(w http.ResponseWriter, r *http.Request) {
	var b faultsBody
	if !decodeRequest(w, r, &b) {
		return
	}
	switch b.Fulfill {
	case "fail":
		f.fulfill.Store(true)
	case "ok":
		f.fulfill.Store(false)
	default:
		apigw.WriteHTTP(w, apigw.ErrorResponse(shop.Invalid("fulfill", `fulfill must be "fail" or "ok"`)))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
