package router

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestEnvelopeAppendJSON(t *testing.T) {
	ts := time.Date(2026, 11, 22, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))
	channel, eventType := "orders", "order-created"
	tests := []struct {
		name string
		env  Envelope
		want string
	}{
		{
			name: "routed event",
			env: Envelope{
				ID: "evt_01J0000000000000000000000", OrganizationID: "cust_42", Source: "apps",
				Resource: "app", ResourceID: "slack-prod", EventName: "event_received", Timestamp: ts,
				Payload: json.RawMessage(`{"text":"hi"}`),
				Metadata: &Metadata{ConnectionID: "conn_1", SubscriptionID: "sub_1",
					EventKey: "message-posted", GlobalWebhookKey: "events", Selector: "team_id:T1"},
			},
			want: `{"id":"evt_01J0000000000000000000000","organizationId":"cust_42","source":"apps",` +
				`"resource":"app","resourceId":"slack-prod","eventName":"event_received",` +
				`"timestamp":"2026-11-22T10:00:00.123Z","payload":{"text":"hi"},` +
				`"metadata":{"connectionId":"conn_1","subscriptionId":"sub_1","eventKey":"message-posted",` +
				`"globalWebhookKey":"events","selector":"team_id:T1","channel":null,"eventType":null}}`,
		},
		{
			name: "channel event with an id",
			env: Envelope{
				ID: "evt_x", OrganizationID: "o", Source: "apps", Resource: "app", ResourceID: "shop",
				EventName: "event_received", Timestamp: ts.Truncate(time.Second),
				Payload: json.RawMessage(`[1, 2]`),
				Metadata: &Metadata{ConnectionID: "c", SubscriptionID: "s", EventKey: "e",
					Channel: &channel, EventType: &eventType, EventID: "ord_9"},
			},
			want: `{"id":"evt_x","organizationId":"o","source":"apps","resource":"app","resourceId":"shop",` +
				`"eventName":"event_received","timestamp":"2026-11-22T10:00:00.000Z","payload":[1, 2],` +
				`"metadata":{"connectionId":"c","subscriptionId":"s","eventKey":"e","globalWebhookKey":"",` +
				`"selector":"","channel":"orders","eventType":"order-created","eventId":"ord_9"}}`,
		},
		{
			name: "state change without payload",
			env: Envelope{ID: "evt_y", OrganizationID: "o", Source: "apps", Resource: "subscription",
				ResourceID: "sub_1", EventName: "deleted", Timestamp: ts},
			want: `{"id":"evt_y","organizationId":"o","source":"apps","resource":"subscription",` +
				`"resourceId":"sub_1","eventName":"deleted","timestamp":"2026-11-22T10:00:00.123Z","payload":null}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.env.AppendJSON(nil))
			if got != tt.want {
				t.Errorf("AppendJSON:\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("not valid JSON: %s", got)
			}
			// json.Marshal compacts what MarshalJSON returns, payload included.
			marshalled, err := json.Marshal(tt.env)
			var compact bytes.Buffer
			_ = json.Compact(&compact, []byte(tt.want))
			if err != nil || string(marshalled) != compact.String() {
				t.Errorf("json.Marshal = %s, %v", marshalled, err)
			}
			var back Envelope
			if err := json.Unmarshal([]byte(got), &back); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if again := string(back.AppendJSON(nil)); again != tt.want {
				t.Errorf("round trip:\n got %s\nwant %s", again, tt.want)
			}
		})
	}

	t.Run("invalid payload refused by MarshalJSON", func(t *testing.T) {
		if _, err := json.Marshal(Envelope{Payload: json.RawMessage(`{`)}); err == nil {
			t.Error("json.Marshal accepted an invalid payload")
		}
	})
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "team_id:T1", `quo"te`, `back\slash`, "tab\tnew\nline", "<html>&", "héllo wörld",
		"\u2028\u2029", "bad\xffutf8", "emoji 🎉", "\x00\x1f\x7f",
	} {
		want, _ := json.Marshal(s)
		if got := string(appendString(nil, s)); got != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestEncodePayload(t *testing.T) {
	tests := []struct {
		name    string
		v       any
		raw     []byte
		want    string
		wantErr bool
	}{
		{name: "value", v: map[string]any{"b": "<&>", "a": 1}, want: `{"a":1,"b":"<&>"}`},
		{name: "nil", v: nil, want: `null`},
		{name: "raw kept byte for byte", raw: []byte(" {\"b\" : 1,\n\"a\":[ ]} "), want: " {\"b\" : 1,\n\"a\":[ ]} "},
		{name: "raw wins over value", v: 1, raw: []byte(`2`), want: `2`},
		{name: "json.RawMessage value", v: json.RawMessage(`{"z": 0}`), want: `{"z": 0}`},
		{name: "json.RawMessage value is not checked", v: json.RawMessage(`{"z":`), want: `{"z":`},
		{name: "invalid raw", raw: []byte(`{"a":`), wantErr: true},
		{name: "unencodable value", v: func() {}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodePayload(tt.v, tt.raw)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEventID(t *testing.T) {
	// The ULID spec's example 01ARZ3NDEKTSV4RRFFQ69G5FAV carries time 1469922850259.
	if got := string(appendULID(nil, 1469922850259, 0, 0)); got[:10] != "01ARZ3NDEK" {
		t.Errorf("timestamp part = %s, want 01ARZ3NDEK", got[:10])
	}
	if got := string(appendULID(nil, 1<<48-1, ^uint64(0), ^uint64(0))); got != "7ZZZZZZZZZZZZZZZZZZZZZZZZZ" {
		t.Errorf("max ULID = %s", got)
	}
	if got := string(appendULID(nil, 0, 0, 1)); got != "00000000000000000000000001" {
		t.Errorf("ULID 1 = %s", got)
	}

	now := time.Now()
	seen := make(map[string]bool)
	for range 1000 {
		id := newEventID(now)
		if len(id) != 30 || !strings.HasPrefix(id, "evt_") || strings.Trim(id[4:], crockfordBase32) != "" {
			t.Fatalf("bad id %q", id)
		}
		if seen[id] {
			t.Fatalf("repeated id %q", id)
		}
		seen[id] = true
	}
	if a, b := newEventID(now), newEventID(now.Add(time.Millisecond)); a[:14] >= b[:14] {
		t.Errorf("ids do not sort by time: %s, %s", a, b)
	}
}

func TestMessageID(t *testing.T) {
	a := messageID("dk", 0, "", "sub_1")
	if a == "" || a != messageID("dk", 0, "", "sub_1") {
		t.Fatal("delivery-key id is not deterministic")
	}
	for name, other := range map[string]string{
		"other index":        messageID("dk", 1, "", "sub_1"),
		"other subscription": messageID("dk", 0, "", "sub_2"),
		"other delivery":     messageID("dk2", 0, "", "sub_1"),
		"event id":           messageID("dk", 0, "ev", "sub_1"),
	} {
		if other == a {
			t.Errorf("%s gives the same id", name)
		}
	}
	if messageID("dk", 0, "ev", "sub_1") != messageID("other", 5, "ev", "sub_1") {
		t.Error("an event id does not override the delivery key and index")
	}
	if messageID("", 0, "", "sub_1") != "" {
		t.Error("no event id and no delivery key should give no id")
	}
}

func TestSubjects(t *testing.T) {
	tests := []struct {
		name    string
		fn      func() (string, error)
		want    string
		wantErr bool
	}{
		{"event", func() (string, error) { return EventSubject("cust_42", "slack-prod", "events", "message-posted") },
			"events.cust_42.apps.app.event_received.slack-prod.events.message-posted", false},
		{"state", func() (string, error) { return StateSubject("cust_42", "subscription", "created", "sub_1") },
			"events.cust_42.apps.subscription.created.sub_1", false},
		{"dot", func() (string, error) { return EventSubject("cust.42", "i", "w", "e") }, "", true},
		{"star", func() (string, error) { return EventSubject("c", "i*", "w", "e") }, "", true},
		{"gt", func() (string, error) { return EventSubject("c", "i", ">", "e") }, "", true},
		{"space", func() (string, error) { return EventSubject("c", "i", "w", "e e") }, "", true},
		{"tab", func() (string, error) { return StateSubject("c", "r", "n", "a\tb") }, "", true},
		{"newline", func() (string, error) { return StateSubject("c\n", "r", "n", "a") }, "", true},
		{"unicode space", func() (string, error) { return StateSubject("c\u00a0d", "r", "n", "a") }, "", true},
		{"empty", func() (string, error) { return StateSubject("c", "", "n", "a") }, "", true},
		{"bad utf8", func() (string, error) { return StateSubject("c", "r", "n", "é\xff") }, "", true},
		{"unicode ok", func() (string, error) { return StateSubject("c", "r", "n", "café") },
			"events.c.apps.r.n.café", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.fn()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// The payload encoder's fast path writes what encoding/json writes.
func TestEncodePayloadMatchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, true, false, "", "plain", `quote " backslash \ slash /`, "<html> & 'x'", "tab\tnl\ncr\r\x00\x1f",
		"é ✓ 😀", "bad \xff utf-8", "\u2028\u2029", 0.0, -0.0, 1.0, -1.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.123,
		1.7976931348623157e308, 5e-324, -2.5e-10, 12345678901234567890.0,
		[]any{}, []any(nil), map[string]any{}, map[string]any(nil),
		map[string]any{"b": 1.0, "a": []any{"x", nil, map[string]any{"z": true, "é": "v", "": 0.0}}},
		[]any{[]any{[]any{}}, map[string]any{"k\"ey": "v"}},
	}
	for _, v := range values {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		got, ok := appendPlain(nil, v, 0)
		if !ok {
			t.Errorf("%#v: not encoded by the fast path", v)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%#v:\n got %s\nwant %s", v, got, want)
		}
	}
	for _, v := range []any{math.NaN(), math.Inf(1), []any{math.Inf(-1)}, map[string]any{"t": time.Time{}}, json.Number("1")} {
		if _, ok := appendPlain(nil, v, 0); ok {
			t.Errorf("%#v: encoded by the fast path, want encoding/json's", v)
		}
	}
}
