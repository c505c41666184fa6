package server_test

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/bus/bustest"
	"github.com/switchboard-run/switchboard/runtime/server"
)

const eventSubjects = "events.*.apps.app.event_received.>"

// stateSubjects match events.{organizationId}.apps.{resource}.{eventName}.{id} only.
const stateSubjects = "events.*.apps.*.*.*"

type subscriptionBody struct {
	ID                         string `json:"id"`
	ConnectionID               string `json:"connectionId"`
	EventKey                   string `json:"eventKey"`
	Status                     string `json:"status"`
	GlobalWebhookKey           string `json:"globalWebhookKey"`
	GlobalWebhookEventSelector string `json:"globalWebhookEventSelector"`
	CreatedAt                  string `json:"createdAt"`
}

// setUpExample installs the example connector as integration ex1 with two connections,
// alice (customer cust_a, user U1, id given) and bob (customer cust_b, user U2, id
// generated), both subscribed to message-posted. It returns the webhook path and the
// connection and subscription ids.
func setUpExample(t *testing.T, h *harness) (path string, conns, subs [2]string) {
	t.Helper()
	var in map[string]any
	h.must(201, "POST", "/v1/integrations", map[string]any{
		"key": "ex1", "connectorKey": "example", "parameters": map[string]any{"signingSecret": secretParam},
	}).json(t, &in)
	if got := slices.Sorted(maps.Keys(in)); !reflect.DeepEqual(got, []string{"connectorKey", "createdAt", "key", "updatedAt"}) {
		t.Errorf("integration fields = %v, want connectorKey, createdAt, key, updatedAt", got)
	}
	if in["key"] != "ex1" || in["connectorKey"] != "example" {
		t.Errorf("integration = %v", in)
	}
	path = h.webhookPath("ex1", "webhook-key")

	var alice, bob map[string]any
	h.must(201, "POST", "/v1/connections", map[string]any{
		"id": "conn_alice", "integrationKey": "ex1", "customerId": "cust_a",
		"credentials": map[string]any{"accessToken": aliceToken},
	}).json(t, &alice)
	h.must(201, "POST", "/v1/connections", map[string]any{
		"integrationKey": "ex1", "customerId": "cust_b",
		"credentials": map[string]any{"accessToken": bobToken},
	}).json(t, &bob)
	if alice["id"] != "conn_alice" || alice["customerId"] != "cust_a" || alice["integrationKey"] != "ex1" {
		t.Errorf("alice = %v", alice)
	}
	bobID, _ := bob["id"].(string)
	if !strings.HasPrefix(bobID, "conn_") || len(bobID) < 20 {
		t.Errorf("generated connection id %q: want conn_ and random characters", bobID)
	}
	for _, c := range []map[string]any{alice, bob} {
		if _, ok := c["credentials"]; ok {
			t.Errorf("connection response holds credentials: %v", c)
		}
	}
	conns = [2]string{"conn_alice", bobID}

	for i, user := range []string{"U1", "U2"} {
		var s subscriptionBody
		h.must(201, "POST", "/v1/connections/"+conns[i]+"/event-subscriptions", map[string]any{
			"eventKey": "message-posted", "parameters": map[string]any{},
		}).json(t, &s)
		want := subscriptionBody{ID: s.ID, ConnectionID: conns[i], EventKey: "message-posted", Status: "subscribed",
			GlobalWebhookKey: "webhook-key", GlobalWebhookEventSelector: "user_id:" + user, CreatedAt: s.CreatedAt}
		if s != want {
			t.Errorf("subscription = %+v, want %+v", s, want)
		}
		if !strings.HasPrefix(s.ID, "sub_") {
			t.Errorf("subscription id %q: want sub_ prefix", s.ID)
		}
		if _, err := time.Parse(time.RFC3339, s.CreatedAt); err != nil {
			t.Errorf("createdAt %q: %v", s.CreatedAt, err)
		}
		subs[i] = s.ID
	}
	return path, conns, subs
}

// wantEnvelope is what one event envelope must hold.
type wantEnvelope struct {
	subject      string
	organization string
	connection   string
	subscription string
	selector     string
	payload      map[string]any
}

func exampleEnvelope(customer, conn, sub, user string, payload map[string]any) wantEnvelope {
	return wantEnvelope{
		subject:      "events." + customer + ".apps.app.event_received.ex1.webhook-key.message-posted",
		organization: customer, connection: conn, subscription: sub, selector: "user_id:" + user, payload: payload,
	}
}

// assertEnvelopes checks the messages one by one, field by field, in any order of arrival.
func assertEnvelopes(t *testing.T, got []bustest.Msg, want ...wantEnvelope) {
	t.Helper()
	if len(got) != len(want) {
		var subjects []string
		for _, m := range got {
			subjects = append(subjects, m.Subject)
		}
		t.Fatalf("got %d events %v, want %d", len(got), subjects, len(want))
	}
	slices.SortFunc(got, func(a, b bustest.Msg) int { return strings.Compare(a.Subject, b.Subject) })
	slices.SortFunc(want, func(a, b wantEnvelope) int { return strings.Compare(a.subject, b.subject) })
	for i, w := range want {
		m := got[i]
		if m.Subject != w.subject {
			t.Errorf("event %d: subject %s, want %s", i, m.Subject, w.subject)
		}
		var env map[string]any
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatalf("event %d: %v: %s", i, err, m.Data)
		}
		wantKeys := []string{"eventName", "id", "metadata", "organizationId", "payload", "resource", "resourceId", "source", "timestamp"}
		if keys := slices.Sorted(maps.Keys(env)); !reflect.DeepEqual(keys, wantKeys) {
			t.Errorf("event %d: fields %v, want %v", i, keys, wantKeys)
		}
		if id, _ := env["id"].(string); !strings.HasPrefix(id, "evt_") {
			t.Errorf("event %d: id %q, want evt_...", i, id)
		}
		for field, want := range map[string]string{
			"organizationId": w.organization, "source": "apps", "resource": "app",
			"resourceId": "ex1", "eventName": "event_received",
		} {
			if env[field] != want {
				t.Errorf("event %d: %s = %v, want %q", i, field, env[field], want)
			}
		}
		ts, _ := env["timestamp"].(string)
		if at, err := time.Parse(time.RFC3339Nano, ts); err != nil || time.Since(at) > time.Minute || time.Since(at) < -time.Second {
			t.Errorf("event %d: timestamp %q is not a recent RFC 3339 time", i, ts)
		}
		if !reflect.DeepEqual(env["payload"], w.payload) {
			t.Errorf("event %d: payload %v, want %v", i, env["payload"], w.payload)
		}
		wantMeta := map[string]any{
			"connectionId": w.connection, "subscriptionId": w.subscription, "eventKey": "message-posted",
			"globalWebhookKey": "webhook-key", "selector": w.selector, "channel": nil, "eventType": nil,
		}
		if !reflect.DeepEqual(env["metadata"], wantMeta) {
			t.Errorf("event %d: metadata %v, want %v", i, env["metadata"], wantMeta)
		}
	}
}

// postExample sends a message from user to the example webhook and checks that handle's
// response comes back byte for byte.
func postExample(t *testing.T, h *harness, path, user string, text ...string) map[string]any {
	t.Helper()
	payload := map[string]any{"from_user_id": user, "text": "hello from " + user + strings.Join(text, " ")}
	b, _ := json.Marshal(payload)
	r := h.post(path, "application/json", b)
	if r.status != 201 || string(r.body) != "Webhook received" || r.header.Get("X-Handled") != "yes" {
		t.Fatalf("webhook reply: %d %q x-handled=%q, want 201 \"Webhook received\" x-handled=yes",
			r.status, r.body, r.header.Get("X-Handled"))
	}
	return payload
}

// TestEndToEnd installs the shipped example connector, connects two customers whose
// credentials the fake API maps to different users, subscribes both, and checks that every
// webhook request reaches exactly the matching subscriptions, on both backends.
func TestEndToEnd(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			configure := b.configure(t)
			cfg := server.Config{ConnectorsDir: connectorsDir(t, fakeAPI(t, map[string]string{aliceToken: "U1", bobToken: "U2"}))}
			configure(&cfg)
			h := start(t, cfg, &syncBuffer{})
			events := bustest.Watch(t, h.srv.NATSURL(), eventSubjects)
			states := bustest.Watch(t, h.srv.NATSURL(), stateSubjects)

			path, conns, subs := setUpExample(t, h)
			token := strings.TrimPrefix(path, "/webhooks/")

			t.Run("matching user reaches only its subscription", func(t *testing.T) {
				h := h.with(t)
				p := postExample(t, h, path, "U1")
				assertEnvelopes(t, events.Collect(1, 300*time.Millisecond), exampleEnvelope("cust_a", conns[0], subs[0], "U1", p))
				p = postExample(t, h, path, "U2")
				assertEnvelopes(t, events.Collect(1, 300*time.Millisecond), exampleEnvelope("cust_b", conns[1], subs[1], "U2", p))
			})
			t.Run("unmatched selector publishes nothing", func(t *testing.T) {
				h := h.with(t)
				postExample(t, h, path, "U3")
				assertEnvelopes(t, events.Collect(0, 500*time.Millisecond))
			})
			t.Run("retried identical request is published once", func(t *testing.T) {
				h := h.with(t)
				p := postExample(t, h, path, "U2", "again")
				postExample(t, h, path, "U2", "again")
				assertEnvelopes(t, events.Collect(1, 500*time.Millisecond), exampleEnvelope("cust_b", conns[1], subs[1], "U2", p))
			})
			t.Run("deleted subscription stops its events", func(t *testing.T) {
				h := h.with(t)
				h.must(204, "DELETE", "/v1/event-subscriptions/"+subs[0], nil)
				h.must(404, "GET", "/v1/event-subscriptions/"+subs[0], nil)
				postExample(t, h, path, "U1")
				assertEnvelopes(t, events.Collect(0, 500*time.Millisecond))
				var left []subscriptionBody
				h.must(200, "GET", "/v1/connections/"+conns[1]+"/event-subscriptions", nil).json(t, &left)
				if len(left) != 1 || left[0].ID != subs[1] {
					t.Errorf("bob's subscriptions = %+v, want only %s", left, subs[1])
				}
			})
			t.Run("deleted connection takes its subscriptions", func(t *testing.T) {
				h := h.with(t)
				h.must(204, "DELETE", "/v1/connections/"+conns[1], nil)
				h.must(404, "GET", "/v1/connections/"+conns[1], nil)
				h.must(404, "GET", "/v1/event-subscriptions/"+subs[1], nil)
				postExample(t, h, path, "U2")
				assertEnvelopes(t, events.Collect(0, 500*time.Millisecond))
			})
			t.Run("state changes", func(t *testing.T) {
				got := map[string]bool{}
				for _, m := range states.Collect(0, 500*time.Millisecond) {
					got[m.Subject] = true
					if strings.Contains(string(m.Data), aliceToken) || strings.Contains(string(m.Data), secretParam) {
						t.Errorf("state change %s carries a secret: %s", m.Subject, m.Data)
					}
				}
				for _, want := range []string{
					"events._system.apps.integration.created.ex1",
					"events.cust_a.apps.connection.created." + conns[0],
					"events.cust_b.apps.connection.created." + conns[1],
					"events.cust_a.apps.subscription.created." + subs[0],
					"events.cust_b.apps.subscription.created." + subs[1],
					"events.cust_a.apps.subscription.deleted." + subs[0],
					"events.cust_b.apps.subscription.deleted." + subs[1],
					"events.cust_b.apps.connection.deleted." + conns[1],
				} {
					if !got[want] {
						t.Errorf("no state change on %s; got %v", want, slices.Sorted(maps.Keys(got)))
					}
				}
			})
			t.Run("metrics", func(t *testing.T) {
				h := h.with(t)
				r := h.must(200, "GET", "/metrics", nil)
				for _, want := range []string{
					`switchboard_ingest_requests_total{integration="ex1",status="201"}`,
					`switchboard_events_published_total{integration="ex1"} `,
					`switchboard_handle_duration_seconds_count{integration="ex1",webhook="webhook-key"}`,
				} {
					if !strings.Contains(string(r.body), want) {
						t.Errorf("metrics lack %s", want)
					}
				}
			})
			h.must(200, "GET", "/readyz", nil)
			h.assertNoSecrets(secretParam, aliceToken, bobToken)
			if strings.Contains(h.logs.String(), token) {
				t.Errorf("the webhook token appears in the log")
			}
		})
	}
}

// TestRestart checks that integrations, subscriptions and webhook URIs survive a restart.
func TestRestart(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			configure := b.configure(t)
			cfg := server.Config{ConnectorsDir: connectorsDir(t, fakeAPI(t, map[string]string{aliceToken: "U1", bobToken: "U2"}))}
			configure(&cfg)
			logs := &syncBuffer{}
			h := start(t, cfg, logs)
			path, conns, subs := setUpExample(t, h)
			h.stop()

			h = start(t, cfg, logs)
			if got := h.webhookPath("ex1", "webhook-key"); got != path {
				t.Errorf("webhook path after restart %s, want %s", got, path)
			}
			var s subscriptionBody
			h.must(200, "GET", "/v1/event-subscriptions/"+subs[0], nil).json(t, &s)
			if s.GlobalWebhookEventSelector != "user_id:U1" || s.ConnectionID != conns[0] {
				t.Errorf("subscription after restart = %+v", s)
			}
			events := bustest.Watch(t, h.srv.NATSURL(), eventSubjects)
			p := postExample(t, h, path, "U1")
			assertEnvelopes(t, events.Collect(1, 300*time.Millisecond), exampleEnvelope("cust_a", conns[0], subs[0], "U1", p))
			h.assertNoSecrets(secretParam, aliceToken, bobToken)
		})
	}
}
