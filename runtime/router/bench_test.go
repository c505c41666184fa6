package router

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// benchPayload returns a payload of about 1 KB, as a value and as its JSON.
func benchPayload(tb testing.TB) (map[string]any, []byte) {
	tb.Helper()
	v := map[string]any{
		"type":     "event_callback",
		"team_id":  "T0001",
		"event_id": "Ev0PV52K25",
		"event": map[string]any{
			"type": "message", "channel": "C2147483705", "user": "U2147483697",
			"text": strings.Repeat("Hello world, this is a message. ", 20), "ts": "1355517523.000005",
			"blocks": []any{map[string]any{"type": "rich_text", "block_id": "b1"}},
		},
		"authorizations": []any{map[string]any{"team_id": "T0001", "user_id": "U1", "is_bot": false}},
		"event_time":     1355517523,
	}
	raw, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return v, raw
}

func benchEnvelope() Envelope {
	return Envelope{
		ID: newEventID(time.Now()), OrganizationID: "cust_42", Source: SourceApps, Resource: ResourceApp,
		ResourceID: "slack-prod", EventName: EventNameReceived, Timestamp: time.Now(),
		Metadata: &Metadata{ConnectionID: "conn_1", SubscriptionID: "sub_1", EventKey: "message-posted",
			GlobalWebhookKey: "events", Selector: "team_id:T0001"},
	}
}

func BenchmarkEnvelopeEncode(b *testing.B) {
	v, raw := benchPayload(b)
	b.Logf("payload: %d bytes", len(raw))
	env := benchEnvelope()
	buf := make([]byte, 0, 2048)

	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			p, err := encodePayload(nil, raw)
			if err != nil {
				b.Fatal(err)
			}
			env.Payload = p
			buf = env.AppendJSON(buf[:0])
		}
	})
	b.Run("value", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			p, err := encodePayload(v, nil)
			if err != nil {
				b.Fatal(err)
			}
			env.Payload = p
			buf = env.AppendJSON(buf[:0])
		}
	})
	b.Run("append only", func(b *testing.B) {
		b.ReportAllocs()
		env.Payload = raw
		for b.Loop() {
			buf = env.AppendJSON(buf[:0])
		}
	})
	b.Run("encoding/json baseline", func(b *testing.B) {
		// What json.Marshal of an equivalent struct costs, for comparison.
		type meta struct {
			ConnectionID, SubscriptionID, EventKey, GlobalWebhookKey, Selector string
			Channel, EventType                                                 *string
		}
		type envelope struct {
			ID, OrganizationID, Source, Resource, ResourceID, EventName string
			Timestamp                                                   string
			Payload                                                     any
			Metadata                                                    meta
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(envelope{ID: env.ID, Timestamp: "x", Payload: v}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type nopPublisher struct{}

func (nopPublisher) PublishAll(context.Context, []Message) error { return nil }

type oneRouteMatcher struct{ routes []store.Route }

func (m oneRouteMatcher) MatchRoutes(_ context.Context, _, _ string, selectors []string) (map[string][]store.Route, error) {
	out := make(map[string][]store.Route, len(selectors))
	for _, s := range selectors {
		out[s] = m.routes
	}
	return out, nil
}

// BenchmarkRoute measures Route without the store and the bus: one raw event to n
// subscriptions.
func BenchmarkRoute(b *testing.B) {
	_, raw := benchPayload(b)
	for _, n := range []int{1, 10} {
		routes := make([]store.Route, n)
		for i := range routes {
			routes[i] = store.Route{SubscriptionID: fmt.Sprintf("sub_%d", i), ConnectionID: "conn_1",
				CustomerID: "cust_42", EventKey: "message-posted"}
		}
		r := New(Config{Matcher: oneRouteMatcher{routes}, Publisher: nopPublisher{}})
		in := Input{IntegrationKey: "slack-prod", WebhookKey: "events", DeliveryKey: "d1",
			Events: []Event{{Selector: "team_id:T0001", RawPayload: raw}}}
		b.Run(fmt.Sprintf("subscriptions=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Route(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
