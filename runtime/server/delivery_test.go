package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-run/switchboard/runtime/server"
)

// Delivery and the live stream through the real server: an event posted to a global webhook
// reaches a loopback endpoint, signed, retried across a restart; the stream carries exactly
// the events of its subject.

const relayConnectors = "../../testdata/delivery/connectors"

// endpointReceiver records the requests of a loopback endpoint and answers with the
// statuses given in turn, the last one thereafter.
type endpointReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []receivedRequest
	statuses []int
}

type receivedRequest struct {
	header http.Header
	body   []byte
}

func newEndpointReceiver(t *testing.T, statuses ...int) *endpointReceiver {
	r := &endpointReceiver{statuses: statuses}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests = append(r.requests, receivedRequest{req.Header.Clone(), body})
		status := r.statuses[min(len(r.requests), len(r.statuses))-1]
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *endpointReceiver) waitFor(t *testing.T, n int) []receivedRequest {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		got := append([]receivedRequest(nil), r.requests...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint got %d requests, want %d", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// verifyStandardWebhook checks the signature the way a receiver following the Standard
// Webhooks specification would, independently of package delivery.
func verifyStandardWebhook(t *testing.T, secret string, r receivedRequest) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("secret: %v", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(r.header.Get("webhook-id") + "." + r.header.Get("webhook-timestamp") + "." + string(r.body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(r.header.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return
		}
	}
	t.Errorf("webhook-signature %q does not verify", r.header.Get("webhook-signature"))
}

// setUpRelay installs the relay connector with one connection subscribed to eventKeys and
// returns the global webhook's path.
func setUpRelay(t *testing.T, h *harness, eventKeys ...string) string {
	t.Helper()
	h.must(201, "POST", "/v1/integrations", map[string]any{"key": "relay-prod", "connectorKey": "relay", "parameters": map[string]any{}})
	h.must(201, "POST", "/v1/connections", map[string]any{
		"id": "conn_1", "integrationKey": "relay-prod", "customerId": "cust_1",
		"credentials": map[string]any{"user": "u1"}, "parameters": map[string]any{},
	})
	for _, k := range eventKeys {
		h.must(201, "POST", "/v1/connections/conn_1/event-subscriptions", map[string]any{"eventKey": k, "parameters": map[string]any{}})
	}
	return h.webhookPath("relay-prod", "hook")
}

func TestDeliveryThroughTheServer(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := server.Config{
				ConnectorsDir:    relayConnectors,
				APIToken:         "api-tok-1",
				DeliverySchedule: []time.Duration{0, time.Second, time.Second},
			}
			b.configure(t)(&cfg)
			logs := &syncBuffer{}
			h := start(t, cfg, logs)
			hook := setUpRelay(t, h, "message-posted")

			rcv := newEndpointReceiver(t, 500, 200)
			var ep struct{ ID, Secret string }
			h.must(201, "POST", "/v1/integrations/relay-prod/endpoints", map[string]any{"url": rcv.URL}).json(t, &ep)

			h.must(202, "POST", hook, map[string]any{"kind": "message-posted", "user": "u1", "text": "hello"})
			first := rcv.waitFor(t, 1)[0]
			verifyStandardWebhook(t, ep.Secret, first)
			var env struct {
				ID       string
				Payload  map[string]any
				Metadata struct{ EventKey, ConnectionID string }
			}
			if err := json.Unmarshal(first.body, &env); err != nil || env.Metadata.EventKey != "message-posted" ||
				env.Metadata.ConnectionID != "conn_1" || env.Payload["text"] != "hello" {
				t.Fatalf("delivered envelope %s (%v)", first.body, err)
			}

			// The failure is recorded, its retry scheduled: restart inside the wait.
			eventually(t, "the failed attempt", func() string {
				var attempts []struct{ Status int }
				h.must(200, "GET", "/v1/integrations/relay-prod/endpoints/"+ep.ID+"/attempts", nil).json(t, &attempts)
				if len(attempts) != 1 || attempts[0].Status != 500 {
					return "not recorded yet"
				}
				return ""
			})
			h.stop()
			h = start(t, cfg, logs)
			got := rcv.waitFor(t, 2)
			if got[1].header.Get("webhook-id") != first.header.Get("webhook-id") || string(got[1].body) != string(first.body) {
				t.Errorf("retry after the restart: webhook-id %q, want %q", got[1].header.Get("webhook-id"), first.header.Get("webhook-id"))
			}
			verifyStandardWebhook(t, ep.Secret, got[1])

			list := h.must(200, "GET", "/v1/integrations/relay-prod/endpoints", nil)
			if strings.Contains(string(list.body), ep.Secret) || strings.Contains(string(list.body), "whsec_") {
				t.Errorf("the endpoint list shows a secret: %s", list.body)
			}
			if strings.Contains(logs.String(), ep.Secret) {
				t.Error("the endpoint secret appears in the log")
			}
			// The counter moves once the response is handled, just after the receiver saw
			// the request.
			eventually(t, "the delivery metrics", func() string {
				metrics := string(h.do("GET", "/metrics", nil).body)
				for _, want := range []string{
					`switchboard_deliveries_total{integration="relay-prod",outcome="delivered"} 1`,
					"switchboard_delivery_attempt_duration_seconds",
					"switchboard_delivery_queue_depth",
				} {
					if !strings.Contains(metrics, want) {
						return "no " + want
					}
				}
				return ""
			})
		})
	}
}

func TestStreamThroughTheServer(t *testing.T) {
	cfg := server.Config{ConnectorsDir: relayConnectors, APIToken: "api-tok-1"}
	embeddedBackend(t)(&cfg)
	h := start(t, cfg, &syncBuffer{})
	hook := setUpRelay(t, h, "message-posted", "reaction-added")

	url := "ws" + strings.TrimPrefix(h.base, "http") + "/v1/stream?subject=events.cust_1.apps.app.event_received.relay-prod.hook.message-posted"
	if _, resp, err := websocket.Dial(t.Context(), url, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("dialling without the token: %v", err)
	}
	c, _, err := websocket.Dial(t.Context(), url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer api-tok-1"}}})
	if err != nil {
		t.Fatalf("dialling the stream: %v", err)
	}
	defer c.CloseNow()

	h.must(202, "POST", hook, map[string]any{"kind": "reaction-added", "user": "u1", "n": 1})
	h.must(202, "POST", hook, map[string]any{"kind": "message-posted", "user": "u1", "n": 2})
	h.must(202, "POST", hook, map[string]any{"kind": "reaction-added", "user": "u1", "n": 3})
	h.must(202, "POST", hook, map[string]any{"kind": "message-posted", "user": "u1", "n": 4})

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var got []float64
	for len(got) < 2 {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("reading the stream after %v: %v", got, err)
		}
		var env struct {
			Payload  struct{ N float64 }
			Metadata struct{ EventKey string }
		}
		if err := json.Unmarshal(data, &env); err != nil {
			t.Fatalf("stream message %s: %v", data, err)
		}
		if env.Metadata.EventKey != "message-posted" {
			t.Errorf("stream carried a %s event", env.Metadata.EventKey)
		}
		got = append(got, env.Payload.N)
	}
	if got[0] != 2 || got[1] != 4 {
		t.Errorf("stream carried events %v, want [2 4]", got)
	}
}

func TestEndpointPrivateNetworksRefused(t *testing.T) {
	cfg := server.Config{ConnectorsDir: relayConnectors}
	embeddedBackend(t)(&cfg)
	h := startStrict(t, cfg, &syncBuffer{})
	h.must(201, "POST", "/v1/integrations", map[string]any{"key": "relay-prod", "connectorKey": "relay", "parameters": map[string]any{}})
	rcv := newEndpointReceiver(t, 200)
	r := h.must(400, "POST", "/v1/integrations/relay-prod/endpoints", map[string]any{"url": rcv.URL})
	if code, msg := r.errorCode(t); code != "invalid_request" || !strings.HasPrefix(msg, "url: ") {
		t.Errorf("error %s: %s", code, msg)
	}
}
