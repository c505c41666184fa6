package router_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-run/switchboard/runtime/bus"
	"github.com/switchboard-run/switchboard/runtime/router"
	"github.com/switchboard-run/switchboard/runtime/store"
)

// *bus.Bus is a router.Publisher: bus.Message and router.Message are the same type.
var _ router.Publisher = (*bus.Bus)(nil)

// memMatcher is an in-memory selector index recording its calls.
type memMatcher struct {
	routes map[string][]store.Route // key: integration/webhook/selector
	err    error

	mu    sync.Mutex
	calls [][]string
}

func (m *memMatcher) MatchRoutes(_ context.Context, integrationKey, webhookKey string, selectors []string) (map[string][]store.Route, error) {
	m.mu.Lock()
	m.calls = append(m.calls, slices.Clone(selectors))
	m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	out := make(map[string][]store.Route)
	for _, s := range selectors {
		if rs := m.routes[integrationKey+"/"+webhookKey+"/"+s]; len(rs) > 0 {
			out[s] = slices.Clone(rs)
		}
	}
	return out, nil
}

// testBus starts a nats-server with JetStream on a random port and connects a Bus to it.
func testBus(tb testing.TB) *bus.Bus {
	tb.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = tb.TempDir()
	s := natstest.RunServer(&opts)
	tb.Cleanup(s.Shutdown)
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{URL: s.ClientURL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatalf("Connect: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// stored returns every message on the bus's stream, in order.
func stored(tb testing.TB, b *bus.Bus) []*jetstream.RawStreamMsg {
	tb.Helper()
	ctx := tb.Context()
	st, err := b.JetStream().Stream(ctx, b.StreamName())
	if err != nil {
		tb.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			tb.Fatalf("GetMsg(%d): %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

var fixedNow = time.Date(2026, 11, 22, 10, 0, 0, 123_456_789, time.UTC)

func newRouter(m router.Matcher, p router.Publisher) *router.Router {
	return router.New(router.Config{Matcher: m, Publisher: p, Now: func() time.Time { return fixedNow }})
}

var idPattern = regexp.MustCompile(`^evt_[0-9A-HJKMNP-TV-Z]{26}$`)

func slackMatcher() *memMatcher {
	return &memMatcher{routes: map[string][]store.Route{
		"slack-prod/events/team_id:T1": {
			{SubscriptionID: "sub_1", ConnectionID: "conn_1", CustomerID: "cust_42", EventKey: "message-posted"},
			{SubscriptionID: "sub_2", ConnectionID: "conn_2", CustomerID: "cust_7", EventKey: "message-posted"},
		},
		"slack-prod/events/team_id:T2": {
			{SubscriptionID: "sub_3", ConnectionID: "conn_3", CustomerID: "cust_42", EventKey: "reaction-added"},
		},
		"slack-prod/other-hook/team_id:T1": {
			{SubscriptionID: "sub_9", ConnectionID: "conn_9", CustomerID: "cust_9", EventKey: "x"},
		},
	}}
}

func TestRoute(t *testing.T) {
	b := testBus(t)
	m := slackMatcher()
	r := newRouter(m, b)

	in := router.Input{
		IntegrationKey: "slack-prod",
		WebhookKey:     "events",
		DeliveryKey:    "delivery-1",
		Events: []router.Event{
			{Selector: "team_id:T1", Payload: map[string]any{"text": "hi", "n": 1}},
			{Selector: "team_id:nobody", Payload: "lost"},
			{Selector: "team_id:T2", RawPayload: []byte(`{"b" : 2,  "a":[1, 2]}`), ID: "Ev1"},
			{Selector: "team_id:T1", Payload: nil},
		},
	}
	res, err := r.Route(t.Context(), in)
	if err != nil {
		t.Fatalf("Route: %v", err)
	}
	if res != (router.Result{Published: 5, Unmatched: 1}) {
		t.Errorf("Result = %+v, want 5 published, 1 unmatched", res)
	}
	if len(m.calls) != 1 || !slices.Equal(m.calls[0], []string{"team_id:T1", "team_id:nobody", "team_id:T2"}) {
		t.Errorf("MatchRoutes calls = %q, want one call with the distinct selectors", m.calls)
	}

	type want struct {
		subject  string
		org      string
		payload  string
		metadata map[string]any
	}
	meta := func(conn, sub, eventKey, selector string) map[string]any {
		return map[string]any{"connectionId": conn, "subscriptionId": sub, "eventKey": eventKey,
			"globalWebhookKey": "events", "selector": selector, "channel": nil, "eventType": nil}
	}
	withEventID := func(m map[string]any, id string) map[string]any { m["eventId"] = id; return m }
	wants := []want{
		{"events.cust_42.apps.app.event_received.slack-prod.events.message-posted", "cust_42",
			`{"n":1,"text":"hi"}`, meta("conn_1", "sub_1", "message-posted", "team_id:T1")},
		{"events.cust_7.apps.app.event_received.slack-prod.events.message-posted", "cust_7",
			`{"n":1,"text":"hi"}`, meta("conn_2", "sub_2", "message-posted", "team_id:T1")},
		{"events.cust_42.apps.app.event_received.slack-prod.events.reaction-added", "cust_42",
			`{"b" : 2,  "a":[1, 2]}`, withEventID(meta("conn_3", "sub_3", "reaction-added", "team_id:T2"), "Ev1")},
		{"events.cust_42.apps.app.event_received.slack-prod.events.message-posted", "cust_42",
			`null`, meta("conn_1", "sub_1", "message-posted", "team_id:T1")},
		{"events.cust_7.apps.app.event_received.slack-prod.events.message-posted", "cust_7",
			`null`, meta("conn_2", "sub_2", "message-posted", "team_id:T1")},
	}

	msgs := stored(t, b)
	if len(msgs) != len(wants) {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), len(wants))
	}
	ids := make(map[string]bool)
	for i, w := range wants {
		t.Run(fmt.Sprintf("message %d", i), func(t *testing.T) {
			got := msgs[i]
			if got.Subject != w.subject {
				t.Errorf("subject = %s, want %s", got.Subject, w.subject)
			}
			if got.Header.Get(jetstream.MsgIDHeader) == "" {
				t.Error("no Nats-Msg-Id header")
			}
			// The payload is embedded byte for byte, right where the envelope has it.
			if !bytes.Contains(got.Data, []byte(`,"payload":`+w.payload+`,"metadata":`)) {
				t.Errorf("payload %s not embedded as is in %s", w.payload, got.Data)
			}
			var env map[string]any
			dec := json.NewDecoder(bytes.NewReader(got.Data))
			dec.UseNumber()
			if err := dec.Decode(&env); err != nil {
				t.Fatalf("envelope is not JSON: %v: %s", err, got.Data)
			}
			id, _ := env["id"].(string)
			if !idPattern.MatchString(id) {
				t.Errorf("id = %q, want evt_ and a ULID", id)
			}
			if ids[id] {
				t.Errorf("id %s repeated", id)
			}
			ids[id] = true
			for field, value := range map[string]any{
				"organizationId": w.org, "source": "apps", "resource": "app", "resourceId": "slack-prod",
				"eventName": "event_received", "timestamp": "2026-11-22T10:00:00.123Z",
			} {
				if env[field] != value {
					t.Errorf("%s = %v, want %v", field, env[field], value)
				}
			}
			if !reflect.DeepEqual(env["metadata"], w.metadata) {
				t.Errorf("metadata = %v, want %v", env["metadata"], w.metadata)
			}
			if len(env) != 9 {
				t.Errorf("envelope has fields %v, want 9", slices.Sorted(maps.Keys(env)))
			}
		})
	}

	t.Run("retried request stores nothing new", func(t *testing.T) {
		res, err := r.Route(t.Context(), in)
		if err != nil || res.Published != 5 {
			t.Fatalf("Route again = %+v, %v", res, err)
		}
		// A retry arriving with another delivery key still matches the event with an id.
		in2 := in
		in2.DeliveryKey = "delivery-2"
		in2.Events = in.Events[2:3]
		if _, err := r.Route(t.Context(), in2); err != nil {
			t.Fatal(err)
		}
		after := stored(t, b)
		if len(after) != len(msgs) {
			t.Fatalf("stream holds %d messages after retries, want %d", len(after), len(msgs))
		}
	})

	t.Run("repeated event id within a request is published once", func(t *testing.T) {
		ev := router.Event{Selector: "team_id:T2", Payload: 1, ID: "Ev-dup"}
		res, err := r.Route(t.Context(), router.Input{IntegrationKey: "slack-prod", WebhookKey: "events",
			Events: []router.Event{ev, ev}})
		if err != nil || res.Published != 1 {
			t.Errorf("Route = %+v, %v; want 1 published", res, err)
		}
	})

	t.Run("without delivery key or ids every call publishes", func(t *testing.T) {
		before := len(stored(t, b))
		in := router.Input{IntegrationKey: "slack-prod", WebhookKey: "events",
			Events: []router.Event{{Selector: "team_id:T2", Payload: "x"}}}
		for range 2 {
			if _, err := r.Route(t.Context(), in); err != nil {
				t.Fatal(err)
			}
		}
		if got := len(stored(t, b)); got != before+2 {
			t.Errorf("stream grew by %d, want 2", got-before)
		}
	})
}

func TestRouteNothingToPublish(t *testing.T) {
	tests := []struct {
		name      string
		in        router.Input
		wantCalls int
		want      router.Result
	}{
		{"no events", router.Input{IntegrationKey: "slack-prod", WebhookKey: "events"}, 0, router.Result{}},
		{"unmatched selectors", router.Input{IntegrationKey: "slack-prod", WebhookKey: "events",
			Events: []router.Event{{Selector: "a"}, {Selector: "b"}, {Selector: "a"}}}, 1, router.Result{Unmatched: 3}},
		{"selector of another webhook", router.Input{IntegrationKey: "slack-prod", WebhookKey: "events",
			Events: []router.Event{{Selector: "team_id:T3"}}}, 1, router.Result{Unmatched: 1}},
		{"another integration", router.Input{IntegrationKey: "slack-test", WebhookKey: "events",
			Events: []router.Event{{Selector: "team_id:T1"}}}, 1, router.Result{Unmatched: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := slackMatcher()
			p := &fakePublisher{}
			res, err := newRouter(m, p).Route(t.Context(), tt.in)
			if err != nil {
				t.Fatalf("Route: %v", err)
			}
			if res != tt.want {
				t.Errorf("Result = %+v, want %+v", res, tt.want)
			}
			if len(m.calls) != tt.wantCalls {
				t.Errorf("MatchRoutes called %d times, want %d", len(m.calls), tt.wantCalls)
			}
			if len(p.calls) != 0 {
				t.Errorf("PublishAll called with %v", p.calls)
			}
		})
	}
}

type fakePublisher struct {
	err   error
	calls [][]router.Message
}

func (p *fakePublisher) PublishAll(_ context.Context, msgs []router.Message) error {
	p.calls = append(p.calls, msgs)
	return p.err
}

func TestRouteErrors(t *testing.T) {
	notFound := fmt.Errorf("reading index: %w", store.ErrNotFound)
	tests := []struct {
		name      string
		in        router.Input
		matcher   *memMatcher
		pubErr    error
		wantIs    error
		published bool
	}{
		{
			name:    "matcher failure is wrapped",
			in:      router.Input{IntegrationKey: "slack-prod", WebhookKey: "events", Events: []router.Event{{Selector: "team_id:T1"}}},
			matcher: &memMatcher{err: notFound},
			wantIs:  store.ErrNotFound,
		},
		{
			name:      "publisher failure is wrapped",
			in:        router.Input{IntegrationKey: "slack-prod", WebhookKey: "events", Events: []router.Event{{Selector: "team_id:T1"}}},
			pubErr:    fmt.Errorf("publishing: %w", bus.ErrUnavailable),
			wantIs:    bus.ErrUnavailable,
			published: true,
		},
		{
			name:   "integration key with a dot",
			in:     router.Input{IntegrationKey: "slack.prod", WebhookKey: "events", Events: []router.Event{{Selector: "team_id:T1"}}},
			wantIs: router.ErrInvalidSubjectToken,
		},
		{
			name:   "empty webhook key",
			in:     router.Input{IntegrationKey: "slack-prod", Events: []router.Event{{Selector: "team_id:T1"}}},
			wantIs: router.ErrInvalidSubjectToken,
		},
		{
			name: "customer id with a wildcard fails the whole request",
			in: router.Input{IntegrationKey: "slack-prod", WebhookKey: "events",
				Events: []router.Event{{Selector: "team_id:T1"}, {Selector: "bad"}}},
			matcher: &memMatcher{routes: map[string][]store.Route{
				"slack-prod/events/team_id:T1": {{SubscriptionID: "s1", ConnectionID: "c1", CustomerID: "ok", EventKey: "e"}},
				"slack-prod/events/bad":        {{SubscriptionID: "s2", ConnectionID: "c2", CustomerID: "cust.*", EventKey: "e"}},
			}},
			wantIs: router.ErrInvalidSubjectToken,
		},
		{
			name: "invalid raw payload",
			in: router.Input{IntegrationKey: "slack-prod", WebhookKey: "events",
				Events: []router.Event{{Selector: "team_id:T1", RawPayload: []byte(`{"a":`)}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.matcher
			if m == nil {
				m = slackMatcher()
			}
			p := &fakePublisher{err: tt.pubErr}
			res, err := newRouter(m, p).Route(t.Context(), tt.in)
			if err == nil {
				t.Fatal("Route succeeded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.wantIs)
			}
			if res.Published != 0 {
				t.Errorf("Published = %d after a failure", res.Published)
			}
			if got := len(p.calls) > 0; got != tt.published {
				t.Errorf("PublishAll called: %v, want %v", got, tt.published)
			}
		})
	}

	t.Run("bus down", func(t *testing.T) {
		b := testBus(t)
		r := newRouter(slackMatcher(), b)
		if err := b.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		_, err := r.Route(t.Context(), router.Input{IntegrationKey: "slack-prod", WebhookKey: "events",
			Events: []router.Event{{Selector: "team_id:T1"}}})
		if !errors.Is(err, bus.ErrUnavailable) {
			t.Errorf("err = %v, want bus.ErrUnavailable", err)
		}
	})
}

func TestPublishStateChange(t *testing.T) {
	b := testBus(t)
	r := newRouter(slackMatcher(), b)

	sub := map[string]any{"id": "sub_1", "connectionId": "conn_1", "eventKey": "message-posted", "status": "subscribed"}
	err := r.PublishStateChange(t.Context(), router.StateChange{
		OrganizationID: "cust_42", Resource: "subscription", EventName: "created", ResourceID: "sub_1", Payload: sub,
	})
	if err != nil {
		t.Fatalf("PublishStateChange: %v", err)
	}
	msgs := stored(t, b)
	if len(msgs) != 1 {
		t.Fatalf("stream holds %d messages, want 1", len(msgs))
	}
	if got := msgs[0].Subject; got != "events.cust_42.apps.subscription.created.sub_1" {
		t.Errorf("subject = %s", got)
	}
	var env map[string]any
	if err := json.Unmarshal(msgs[0].Data, &env); err != nil {
		t.Fatal(err)
	}
	if !idPattern.MatchString(env["id"].(string)) {
		t.Errorf("id = %v", env["id"])
	}
	delete(env, "id")
	want := map[string]any{
		"organizationId": "cust_42", "source": "apps", "resource": "subscription", "resourceId": "sub_1",
		"eventName": "created", "timestamp": "2026-11-22T10:00:00.123Z", "payload": sub,
	}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("envelope = %v\nwant %v", env, want)
	}

	t.Run("invalid token", func(t *testing.T) {
		err := r.PublishStateChange(t.Context(), router.StateChange{
			OrganizationID: "cust 42", Resource: "connection", EventName: "deleted", ResourceID: "conn_1"})
		if !errors.Is(err, router.ErrInvalidSubjectToken) {
			t.Errorf("err = %v, want ErrInvalidSubjectToken", err)
		}
	})
	t.Run("publisher failure", func(t *testing.T) {
		p := &fakePublisher{err: fmt.Errorf("x: %w", bus.ErrUnavailable)}
		err := newRouter(nil, p).PublishStateChange(t.Context(), router.StateChange{
			OrganizationID: "c", Resource: "connection", EventName: "deleted", ResourceID: "conn_1"})
		if !errors.Is(err, bus.ErrUnavailable) {
			t.Errorf("err = %v, want bus.ErrUnavailable", err)
		}
	})
}
