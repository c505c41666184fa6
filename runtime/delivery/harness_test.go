package delivery_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/api"
	"github.com/switchboard-run/switchboard/runtime/bus"
	"github.com/switchboard-run/switchboard/runtime/delivery"
	"github.com/switchboard-run/switchboard/runtime/router"
	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/embedded"
)

// The tests run the real parts: an in-process NATS with JetStream and the embedded store
// under the test's directory, the delivery service, the API's endpoint routes on an
// httptest server, and receivers that are httptest servers on loopback.

const integrationKey = "slack"

// wait is the generous deadline of every condition a test waits for.
const wait = 20 * time.Second

// env is one running switchboard slice: NATS, store, delivery service, API.
type env struct {
	t       *testing.T
	dir     string
	cfg     delivery.Config
	nats    *bus.Embedded
	bus     *bus.Bus
	store   *embedded.Store
	service *delivery.Service
	api     *httptest.Server
	stop    func()
}

// start brings up a slice under dir, with cfg's schedule and timeout. A second start on
// the same dir (after stop) is a restart.
func start(t *testing.T, dir string, cfg delivery.Config) *env {
	t.Helper()
	ctx := t.Context()
	e := &env{t: t, dir: dir, cfg: cfg}
	var err error
	e.nats, err = bus.StartEmbedded(ctx, bus.EmbeddedConfig{DataDir: dir})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	e.bus, err = e.nats.Connect(ctx, bus.Config{})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	e.store, err = embedded.Open(filepath.Join(dir, "switchboard.db"))
	if err != nil {
		t.Fatalf("embedded.Open: %v", err)
	}
	if err := e.store.CreateIntegration(ctx, store.Integration{Key: integrationKey, ConnectorKey: "slack"}); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateIntegration: %v", err)
	}

	metrics := api.NewMetrics()
	cfg.Bus, cfg.Store, cfg.AllowPrivateNetworks = e.bus, e.store, true
	cfg.Registerer = metrics.Registry
	if cfg.ScanInterval == 0 {
		cfg.ScanInterval = 100 * time.Millisecond
	}
	e.service, err = delivery.New(ctx, cfg)
	if err != nil {
		t.Fatalf("delivery.New: %v", err)
	}
	a := api.New(api.Config{Store: e.store, Metrics: metrics})
	a.AddEndpointRoutes(api.EndpointsConfig{Store: e.store, Deliverer: e.service})
	e.api = httptest.NewServer(a)

	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.service.Run(runCtx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			e.api.Close()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			ctx := context.Background()
			e.bus.Close(ctx)
			e.store.Close(ctx)
			e.nats.Shutdown(ctx)
		})
	}
	t.Cleanup(e.stop)
	return e
}

// fast is a schedule for tests: retries come quickly.
func fast(n int) []time.Duration {
	s := make([]time.Duration, n)
	for i := 1; i < n; i++ {
		s[i] = 10 * time.Millisecond
	}
	return s
}

// call makes an API request and decodes the JSON reply into out (when not nil).
func (e *env) call(method, path string, body any, out any) int {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(e.t.Context(), method, e.api.URL+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

type endpointReply struct {
	ID             string   `json:"id"`
	URL            string   `json:"url"`
	EventKeys      []string `json:"eventKeys"`
	Description    string   `json:"description"`
	Enabled        bool     `json:"enabled"`
	DisabledReason string   `json:"disabledReason"`
	Secret         string   `json:"secret"`
	CreatedAt      string   `json:"createdAt"`
}

// createEndpoint creates an endpoint through the API and returns it, secret included.
func (e *env) createEndpoint(url string, eventKeys ...string) endpointReply {
	e.t.Helper()
	body := map[string]any{"url": url, "description": "test endpoint"}
	if eventKeys != nil {
		body["eventKeys"] = eventKeys
	}
	var ep endpointReply
	if status := e.call("POST", "/v1/integrations/"+integrationKey+"/endpoints", body, &ep); status != http.StatusCreated {
		e.t.Fatalf("creating an endpoint: status %d", status)
	}
	return ep
}

// publish publishes a routed event of eventKey for customer cust and returns its bytes.
func (e *env) publish(eventKey string, payload string) (router.Envelope, []byte) {
	e.t.Helper()
	now := time.Now().UTC()
	env := router.Envelope{
		ID: router.NewEventID(now), OrganizationID: "cust_1", Source: router.SourceApps,
		Resource: router.ResourceApp, ResourceID: integrationKey, EventName: router.EventNameReceived,
		Timestamp: now, Payload: json.RawMessage(payload),
		Metadata: &router.Metadata{ConnectionID: "conn_1", SubscriptionID: "sub_1", EventKey: eventKey, GlobalWebhookKey: "events", Selector: "team:T1"},
	}
	subject, err := router.EventSubject("cust_1", integrationKey, "events", eventKey)
	if err != nil {
		e.t.Fatal(err)
	}
	data := env.AppendJSON(nil)
	if err := e.bus.Publish(e.t.Context(), bus.Message{Subject: subject, Data: data, ID: env.ID}); err != nil {
		e.t.Fatalf("publishing: %v", err)
	}
	return env, data
}

// request is what a receiver got.
type request struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a loopback endpoint that answers with the statuses of its script in turn
// (the last one thereafter) and records every request.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []request
	statuses []int
	header   http.Header // sent with every answer
	arrived  chan struct{}
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses, header: http.Header{}, arrived: make(chan struct{}, 1000)}
	if len(r.statuses) == 0 {
		r.statuses = []int{http.StatusOK}
	}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{header: req.Header.Clone(), body: body, at: time.Now()})
		status := r.statuses[min(len(r.got), len(r.statuses))-1]
		for k, v := range r.header {
			w.Header()[k] = v
		}
		r.mu.Unlock()
		r.arrived <- struct{}{}
		w.WriteHeader(status)
		fmt.Fprintf(w, "answered %d", status)
	}))
	t.Cleanup(r.Close)
	return r
}

// setStatuses replaces the script; the count of requests goes on.
func (r *receiver) setStatuses(statuses ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pad := make([]int, len(r.got))
	for i := range pad {
		pad[i] = statuses[0]
	}
	r.statuses = append(pad, statuses...)
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

// waitFor waits until the receiver has n requests and returns them.
func (r *receiver) waitFor(t *testing.T, n int) []request {
	t.Helper()
	deadline := time.After(wait)
	for {
		if got := r.requests(); len(got) >= n {
			return got
		}
		select {
		case <-r.arrived:
		case <-deadline:
			t.Fatalf("receiver got %d requests, want %d", len(r.requests()), n)
		}
	}
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// verify checks a request's Standard Webhooks signature against secret, computed here
// independently of the package: HMAC-SHA256 keyed by the base64-decoded secret after
// "whsec_", over "{webhook-id}.{webhook-timestamp}.{body}", as one of the space-separated
// "v1,<base64>" values of webhook-signature.
func verify(t *testing.T, secret string, req request) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q is not whsec_ and base64", secret)
	}
	if n := len(key); n < 24 || n > 64 {
		t.Errorf("secret key has %d bytes", n)
	}
	id, ts := req.header.Get("webhook-id"), req.header.Get("webhook-timestamp")
	if id == "" || ts == "" {
		t.Fatalf("missing webhook-id or webhook-timestamp: %v", req.header)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp %q: %v", ts, err)
	}
	if d := time.Since(time.Unix(sec, 0)); d < -time.Minute || d > 5*time.Minute {
		t.Errorf("webhook-timestamp is %s away from now", d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(req.body)))
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(req.header.Get("webhook-signature")) {
		v, ok := strings.CutPrefix(sig, "v1,")
		if !ok {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(v)
		if err == nil && hmac.Equal(got, want) {
			return
		}
	}
	t.Errorf("no signature in %q verifies with the secret", req.header.Get("webhook-signature"))
}
