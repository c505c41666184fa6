package server_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/bus/bustest"
	"github.com/switchboard-run/switchboard/runtime/server"
	"github.com/switchboard-run/switchboard/runtime/server/servertest"
)

// setUpFaulty installs the faulty test connector as integration f1 with connection conn_f
// (customer cust_f, user u1) subscribed to "seen" (selector user:u1, a mapping). It returns
// the webhook path and the subscription id.
func setUpFaulty(t *testing.T, h *harness) (path, sub string) {
	t.Helper()
	h.must(201, "POST", "/v1/integrations", map[string]any{
		"key": "f1", "connectorKey": "faulty", "parameters": map[string]any{"signingSecret": secretParam},
	})
	h.must(201, "POST", "/v1/connections", map[string]any{
		"id": "conn_f", "integrationKey": "f1", "customerId": "cust_f",
		"credentials": map[string]any{"accessToken": aliceToken, "user": "u1"},
	})
	var s subscriptionBody
	h.must(201, "POST", "/v1/connections/conn_f/event-subscriptions", map[string]any{"eventKey": "seen"}).json(t, &s)
	if s.GlobalWebhookEventSelector != "user:u1" || s.GlobalWebhookKey != "hook" {
		t.Fatalf("subscription = %+v, want hook / user:u1", s)
	}
	return h.webhookPath("f1", "hook"), s.ID
}

// TestIngestErrors checks each failure status of the ingest route.
func TestIngestErrors(t *testing.T) {
	cfg := server.Config{ConnectorsDir: connectorsDir(t, fakeAPI(t, nil)), MaxBody: 1024, ScriptTimeout: 300 * time.Millisecond}
	embeddedBackend(t)(&cfg)
	h := start(t, cfg, &syncBuffer{})
	path, _ := setUpFaulty(t, h)
	events := bustest.Watch(t, h.srv.NATSURL(), eventSubjects)

	t.Run("handled", func(t *testing.T) {
		h := h.with(t)
		r := h.post(path, "application/json", []byte(`{"user":"u1"}`))
		if r.status != 202 || string(r.body) != `{"ok":true}` || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("reply %d %s %q, want 202 {\"ok\":true} application/json", r.status, r.body, r.header.Get("Content-Type"))
		}
		if got := events.Collect(1, 300*time.Millisecond); len(got) != 1 || got[0].Subject != "events.cust_f.apps.app.event_received.f1.hook.seen" {
			t.Errorf("events = %v, want one on events.cust_f.apps.app.event_received.f1.hook.seen", got)
		}
	})

	t.Run("204 drops the body and keeps the headers", func(t *testing.T) {
		h := h.with(t)
		r := h.post(path+"?mode=nobody", "application/json", []byte(`{"user":"u1"}`))
		if r.status != 204 || len(r.body) != 0 || r.header.Get("X-Kept") != "yes" {
			t.Errorf("reply %d %q x-kept=%q, want 204, no body, x-kept=yes", r.status, r.body, r.header.Get("X-Kept"))
		}
	})

	chunked := func(n int) io.Reader { return io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("a"), n))) }
	tests := []struct {
		name     string
		path     string
		body     io.Reader
		status   int
		code     string
		contains []string
	}{
		{name: "unknown token", path: "/webhooks/" + strings.Repeat("0", 43), body: strings.NewReader("{}"), status: 404, code: "not_found"},
		{name: "body over the limit", path: path, body: bytes.NewReader(bytes.Repeat([]byte("a"), 2048)), status: 413, code: "payload_too_large"},
		{name: "chunked body over the limit", path: path, body: chunked(4096), status: 413, code: "payload_too_large"},
		{name: "handle throws", path: path + "?mode=throw", body: strings.NewReader(`{"user":"u1"}`), status: 500, code: "handle_failed",
			contains: []string{"handle.js:6", "cannot verify with"}},
		{name: "handle answers an informational status", path: path + "?mode=early", body: strings.NewReader(`{"user":"u1"}`), status: 500, code: "handle_failed",
			contains: []string{"handle.js", "informational"}},
		{name: "handle times out", path: path + "?mode=loop", body: strings.NewReader(`{"user":"u1"}`), status: 500, code: "handle_failed",
			contains: []string{"handle.js", "timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			req, _ := http.NewRequestWithContext(t.Context(), "POST", h.base+tt.path, tt.body)
			req.Header.Set("Content-Type", "application/json")
			start := time.Now()
			r := h.send(req, true)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.status, r.body)
			}
			code, msg := r.errorCode(t)
			if code != tt.code {
				t.Errorf("code %q, want %q (%s)", code, tt.code, msg)
			}
			for _, s := range tt.contains {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not contain %q", msg, s)
				}
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	if got := events.Collect(0, 300*time.Millisecond); len(got) != 0 {
		t.Errorf("failed requests published %d events", len(got))
	}

	t.Run("failing getEventSelector stores nothing", func(t *testing.T) {
		h := h.with(t)
		r := h.must(422, "POST", "/v1/connections/conn_f/event-subscriptions", map[string]any{"eventKey": "fails"})
		code, msg := r.errorCode(t)
		if code != "selector_failed" || !strings.Contains(msg, "get-event-selector.js:2") || !strings.Contains(msg, "no account for token") {
			t.Errorf("error %s: %q, want selector_failed naming get-event-selector.js:2", code, msg)
		}
		var subs []subscriptionBody
		h.must(200, "GET", "/v1/connections/conn_f/event-subscriptions", nil).json(t, &subs)
		if len(subs) != 1 || subs[0].EventKey != "seen" {
			t.Errorf("subscriptions after a failed one: %+v, want only seen", subs)
		}
	})
	t.Run("unknown event", func(t *testing.T) {
		h := h.with(t)
		_, msg := h.must(400, "POST", "/v1/connections/conn_f/event-subscriptions", map[string]any{"eventKey": "nope"}).errorCode(t)
		if !strings.HasPrefix(msg, "eventKey:") {
			t.Errorf("message %q does not name eventKey", msg)
		}
	})
	h.assertNoSecrets(secretParam, aliceToken)
}

// TestPrivateNetworksRefused: without --allow-private-networks, apiClient cannot reach the
// loopback fake API, and the subscription fails with a 422 saying why.
func TestPrivateNetworksRefused(t *testing.T) {
	cfg := server.Config{ConnectorsDir: connectorsDir(t, fakeAPI(t, map[string]string{aliceToken: "U1"}))}
	embeddedBackend(t)(&cfg)
	h := startStrict(t, cfg, &syncBuffer{})
	h.must(201, "POST", "/v1/integrations", map[string]any{"key": "ex1", "connectorKey": "example"})
	h.must(201, "POST", "/v1/connections", map[string]any{
		"id": "conn_alice", "integrationKey": "ex1", "customerId": "cust_a", "credentials": map[string]any{"accessToken": aliceToken},
	})
	r := h.must(422, "POST", "/v1/connections/conn_alice/event-subscriptions", map[string]any{"eventKey": "message-posted"})
	if code, msg := r.errorCode(t); code != "selector_failed" || !strings.Contains(msg, "not public") {
		t.Errorf("error %s %q, want selector_failed saying the address is not public", code, msg)
	}
	h.assertNoSecrets(aliceToken)
}

// TestBusDown stops the NATS server under a running switchboard: ingest must answer 503
// with Retry-After at once, never 2xx, and /readyz must name the bus.
func TestBusDown(t *testing.T) {
	n := servertest.StartNATS(t)
	cfg := server.Config{ConnectorsDir: connectorsDir(t, fakeAPI(t, nil)), DataDir: t.TempDir(), NATSURL: n.ClientURL()}
	h := start(t, cfg, &syncBuffer{})
	path, _ := setUpFaulty(t, h)
	if r := h.post(path, "application/json", []byte(`{"user":"u1"}`)); r.status != 202 {
		t.Fatalf("with the bus up: %d %s", r.status, r.body)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	r := h.post(path, "application/json", []byte(`{"user":"u1"}`))
	if r.status != 503 {
		t.Fatalf("with the bus down: %d %s, want 503", r.status, r.body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("503 took %v", d)
	}
	if r.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if code, _ := r.errorCode(t); code != "unavailable" {
		t.Errorf("code %q, want unavailable", code)
	}
	// An event that matches no subscription needs no bus: handle's answer is sent.
	if r := h.post(path, "application/json", []byte(`{"user":"nobody"}`)); r.status != 202 {
		t.Errorf("unrouted event with the bus down: %d %s, want 202", r.status, r.body)
	}

	var ready struct {
		Status string
		Checks map[string]string
	}
	rr := h.must(503, "GET", "/readyz", nil)
	rr.json(t, &ready)
	if ready.Checks["store"] != "ok" || ready.Checks["bus"] == "ok" || ready.Checks["bus"] == "" {
		t.Errorf("readyz = %+v, want store ok and bus failing", ready)
	}
	h.must(200, "GET", "/healthz", nil)
}

// TestStoreDown cuts the connection to Redis under a running switchboard: ingest and the
// API must answer 503 with Retry-After at once, and /readyz must name the store.
func TestStoreDown(t *testing.T) {
	proxy := newTCPProxy(t, "127.0.0.1:6379")
	cfg := server.Config{ConnectorsDir: connectorsDir(t, fakeAPI(t, nil))}
	redisBackendAt(t, "redis://"+proxy.addr()+"/0")(&cfg)
	h := start(t, cfg, &syncBuffer{})
	path, _ := setUpFaulty(t, h)
	if r := h.post(path, "application/json", []byte(`{"user":"u1"}`)); r.status != 202 {
		t.Fatalf("with the store up: %d %s", r.status, r.body)
	}

	proxy.cut()
	for _, tt := range []struct{ name, method, path string }{
		{"ingest", "POST", path},
		{"api", "GET", "/v1/integrations"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, h.base+tt.path, strings.NewReader(`{"user":"u1"}`))
			r := h.with(t).send(req, true)
			if r.status != 503 || r.header.Get("Retry-After") == "" {
				t.Fatalf("with the store down: %d (Retry-After %q) %s, want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
			}
			if code, _ := r.errorCode(t); code != "unavailable" {
				t.Errorf("code %q, want unavailable", code)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("503 took %v", d)
			}
		})
	}
	var ready struct{ Checks map[string]string }
	h.must(503, "GET", "/readyz", nil).json(t, &ready)
	if ready.Checks["store"] == "ok" || ready.Checks["bus"] != "ok" {
		t.Errorf("readyz checks = %v, want the store failing and the bus ok", ready.Checks)
	}
}

// tcpProxy forwards TCP connections to target until cut, after which it refuses new ones
// and has closed the open ones: the server on the other side looks unreachable.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	t.Cleanup(p.cut)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestAPIErrors checks authentication, validation of ids and bodies, and the not found
// and conflict answers of the /v1 routes.
func TestAPIErrors(t *testing.T) {
	const apiToken = "api-token-5d2c91"
	cfg := server.Config{ConnectorsDir: connectorsDir(t, fakeAPI(t, nil)), APIToken: apiToken}
	embeddedBackend(t)(&cfg)
	h := start(t, cfg, &syncBuffer{})

	t.Run("authentication", func(t *testing.T) {
		h := h.with(t)
		for name, header := range map[string]string{
			"missing": "", "wrong": "Bearer nope", "basic": "Basic " + apiToken, "prefix": "Bearer " + apiToken[:5],
		} {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", h.base+"/v1/integrations", nil)
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			r := h.send(req, true)
			if r.status != 401 {
				t.Errorf("%s token: status %d, want 401", name, r.status)
				continue
			}
			if code, _ := r.errorCode(t); code != "unauthorized" {
				t.Errorf("%s token: code %q", name, code)
			}
		}
		h.must(200, "GET", "/v1/integrations", nil)
		req, _ := http.NewRequestWithContext(t.Context(), "GET", h.base+"/healthz", nil)
		if r := h.send(req, true); r.status != 200 || strings.TrimSpace(string(r.body)) != `{"status":"ok"}` {
			t.Errorf("healthz without a token: %d %s", r.status, r.body)
		}
	})

	h.must(201, "POST", "/v1/integrations", map[string]any{"key": "f1", "connectorKey": "faulty", "parameters": map[string]any{"signingSecret": secretParam}})
	h.must(201, "POST", "/v1/connections", map[string]any{"id": "conn_1", "integrationKey": "f1", "customerId": "cust_1", "credentials": map[string]any{"user": "u"}})

	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		field  string // the message must start with it
	}{
		{"integration key with a space", "POST", "/v1/integrations", map[string]any{"key": "bad key", "connectorKey": "faulty", "parameters": map[string]any{"signingSecret": secretParam}}, 400, "key"},
		{"integration key too long", "POST", "/v1/integrations", map[string]any{"key": strings.Repeat("k", 129), "connectorKey": "faulty"}, 400, "key"},
		{"integration key missing", "POST", "/v1/integrations", map[string]any{"connectorKey": "faulty"}, 400, "key"},
		{"unknown connector", "POST", "/v1/integrations", map[string]any{"key": "x1", "connectorKey": "nope"}, 400, "connectorKey"},
		{"parameters against the schema", "POST", "/v1/integrations", map[string]any{"key": "x1", "connectorKey": "faulty", "parameters": map[string]any{"signingSecret": "short"}}, 400, "parameters"},
		{"parameters missing a required field", "POST", "/v1/integrations", map[string]any{"key": "x1", "connectorKey": "faulty"}, 400, "parameters"},
		{"parameters of the wrong type", "POST", "/v1/integrations", map[string]any{"key": "x1", "connectorKey": "faulty", "parameters": "x"}, 400, "parameters"},
		{"malformed body", "POST", "/v1/integrations", rawBody("{"), 400, ""},
		{"duplicate integration", "POST", "/v1/integrations", map[string]any{"key": "f1", "connectorKey": "faulty", "parameters": map[string]any{"signingSecret": secretParam}}, 409, ""},
		{"unknown integration", "GET", "/v1/integrations/nope", nil, 404, ""},
		{"patch against the schema", "PATCH", "/v1/integrations/f1", map[string]any{"parameters": map[string]any{"signingSecret": 12}}, 400, "parameters"},
		{"connection id with a dot", "POST", "/v1/connections", map[string]any{"id": "conn.1", "integrationKey": "f1", "customerId": "c1"}, 400, "id"},
		{"customer id with a space", "POST", "/v1/connections", map[string]any{"integrationKey": "f1", "customerId": "cust 1"}, 400, "customerId"},
		{"customer id missing", "POST", "/v1/connections", map[string]any{"integrationKey": "f1"}, 400, "customerId"},
		{"integration key of a connection", "POST", "/v1/connections", map[string]any{"integrationKey": "f1.x", "customerId": "c1"}, 400, "integrationKey"},
		{"connection of an unknown integration", "POST", "/v1/connections", map[string]any{"integrationKey": "nope", "customerId": "c1"}, 400, "integrationKey"},
		{"duplicate connection", "POST", "/v1/connections", map[string]any{"id": "conn_1", "integrationKey": "f1", "customerId": "c1"}, 409, ""},
		{"unknown connection", "GET", "/v1/connections/nope", nil, 404, ""},
		{"subscription of an unknown connection", "POST", "/v1/connections/nope/event-subscriptions", map[string]any{"eventKey": "seen"}, 404, ""},
		{"unknown subscription", "GET", "/v1/event-subscriptions/nope", nil, 404, ""},
		{"resubscribe an unknown subscription", "POST", "/v1/event-subscriptions/nope/resubscribe", nil, 404, ""},
		{"unknown route", "GET", "/v1/nope", nil, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			r := h.do(tt.method, tt.path, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.status, r.body)
			}
			code, msg := r.errorCode(t)
			wantCode := map[int]string{400: "invalid_request", 404: "not_found", 409: "conflict"}[tt.status]
			if code != wantCode {
				t.Errorf("code %q, want %q", code, wantCode)
			}
			if tt.field != "" && !strings.HasPrefix(msg, tt.field+":") {
				t.Errorf("message %q does not name %s", msg, tt.field)
			}
		})
	}

	t.Run("patch, resubscribe and delete", func(t *testing.T) {
		h := h.with(t)
		var in map[string]any
		h.must(200, "PATCH", "/v1/integrations/f1", map[string]any{"parameters": map[string]any{"signingSecret": secretParam + "-2"}}).json(t, &in)
		if _, ok := in["parameters"]; ok || in["key"] != "f1" {
			t.Errorf("patched integration = %v", in)
		}
		var s subscriptionBody
		h.must(201, "POST", "/v1/connections/conn_1/event-subscriptions", map[string]any{"eventKey": "seen"}).json(t, &s)
		var again subscriptionBody
		h.must(200, "POST", "/v1/event-subscriptions/"+s.ID+"/resubscribe", nil).json(t, &again)
		if again.ID != s.ID || again.GlobalWebhookEventSelector != "user:u" || again.Status != "subscribed" {
			t.Errorf("resubscribed = %+v", again)
		}
		path := h.webhookPath("f1", "hook")
		h.must(204, "DELETE", "/v1/integrations/f1", nil)
		h.must(404, "GET", "/v1/integrations/f1", nil)
		h.must(404, "GET", "/v1/connections/conn_1", nil)
		if r := h.post(path, "application/json", []byte(`{}`)); r.status != 404 {
			t.Errorf("webhook of a deleted integration: %d, want 404", r.status)
		}
	})

	t.Run("connectors", func(t *testing.T) {
		h := h.with(t)
		var got struct {
			Connectors []struct {
				Key, Name string
				Webhooks  []struct{ Key, Name string }
				Events    []struct{ Key, Name string }
			}
			Errors []string
		}
		h.must(200, "GET", "/v1/connectors", nil).json(t, &got)
		if len(got.Connectors) != 2 || got.Connectors[0].Key != "example" || got.Connectors[1].Key != "faulty" || got.Errors == nil || len(got.Errors) != 0 {
			t.Fatalf("connectors = %+v", got)
		}
		ex := got.Connectors[0]
		if ex.Name != "Example" || len(ex.Webhooks) != 1 || ex.Webhooks[0].Key != "webhook-key" || len(ex.Events) != 1 || ex.Events[0].Key != "message-posted" {
			t.Errorf("example = %+v", ex)
		}
	})
	h.assertNoSecrets(secretParam, apiToken)
}
