package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"sync"
	"testing"

	"github.com/pb33f/go-yaml"
	"github.com/pb33f/jsonschema/v6"

	"lastunit/web"
)

// The WebSocket side of the contract check: every message a test's viewer receives is held
// against its payload schema in web/api/asyncapi.yaml (chosen by its "type").

var wsContract struct {
	once    sync.Once
	schemas map[string]*jsonschema.Schema // server message type -> payload schema
	err     error
}

func loadWSContract() (map[string]*jsonschema.Schema, error) {
	wsContract.once.Do(func() {
		wsContract.schemas, wsContract.err = compileWSContract()
	})
	return wsContract.schemas, wsContract.err
}

func compileWSContract() (map[string]*jsonschema.Schema, error) {
	src, err := fs.ReadFile(web.API, "api/asyncapi.yaml")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Components struct {
			Messages map[string]struct {
				Payload map[string]any `yaml:"payload"`
			} `yaml:"messages"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("asyncapi.yaml: %w", err)
	}
	out := map[string]*jsonschema.Schema{}
	for name, m := range doc.Components.Messages {
		props, _ := m.Payload["properties"].(map[string]any)
		typ, _ := props["type"].(map[string]any)
		kind, ok := typ["const"].(string)
		if !ok {
			continue // a client message (it has "action", not "type")
		}
		raw, err := json.Marshal(m.Payload)
		if err != nil {
			return nil, fmt.Errorf("asyncapi.yaml message %s: %w", name, err)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		c := jsonschema.NewCompiler()
		url := "mem://asyncapi/" + name + ".json"
		if err := c.AddResource(url, v); err != nil {
			return nil, err
		}
		if out[kind], err = c.Compile(url); err != nil {
			return nil, fmt.Errorf("asyncapi.yaml message %s: %w", name, err)
		}
	}
	return out, nil
}

// checkWSMessage says how a server message leaves web/api/asyncapi.yaml (nil when it does not).
func checkWSMessage(data []byte) error {
	schemas, err := loadWSContract()
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	obj, _ := v.(map[string]any)
	kind, _ := obj["type"].(string)
	s, ok := schemas[kind]
	if !ok {
		return fmt.Errorf("message type %q is not in asyncapi.yaml", kind)
	}
	return s.Validate(v)
}

// TestWSContractCatchesMessagesThatLeaveTheFile: the WebSocket check reports what the file
// does not allow and passes what it does.
func TestWSContractCatchesMessagesThatLeaveTheFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		msg string
		ok  bool
	}{
		{`{"type":"stock","product_id":"p1","available":41,"version":1234,"variants":{"us-9":3,"us-10":38}}`, true},
		{`{"type":"stock","product_id":"p1","available":41,"version":1234}`, false},
		{`{"type":"stock","product_id":"p1","available":41,"version":1234,"variants":{"us-9":-1}}`, false},
		{`{"type":"queue","product_id":"p1","serving":1200,"sold_out":false}`, true},
		{`{"type":"error","code":"invalid_request","message":"bad"}`, true},
		{`{"type":"stock","product_id":"p1","available":41,"version":1234,"variants":{},"extra":1}`, false},
		{`{"type":"stock","product_id":"p1","available":-1,"version":1}`, false},
		{`{"type":"stock","product_id":"p1","version":1}`, false},
		{`{"type":"error","code":"out_of_stock","message":"bad"}`, false},
		{`{"type":"hello"}`, false},
		{`not json`, false},
	} {
		if err := checkWSMessage([]byte(tc.msg)); (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok=%v", tc.msg, err, tc.ok)
		}
	}
}
