package channel

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Msg is one message read back from the events stream.
type Msg struct {
	Subject string
	Data    []byte
	ID      string // Nats-Msg-Id
}

// Collector reads, in order, every message the events stream stores: what is on the bus,
// after JetStream's de-duplication (exported for package channel_test).
type Collector struct {
	mu   sync.Mutex
	msgs []Msg
	more chan struct{}
}

// Collect starts reading the stream from its first message, only the subjects given (all
// when none); it stops with the test.
func Collect(t testing.TB, js jetstream.JetStream, stream string, subjects ...string) *Collector {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("finding stream %s: %v", stream, err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: subjects})
	if err != nil {
		t.Fatalf("creating a consumer: %v", err)
	}
	c := &Collector{more: make(chan struct{})}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		c.mu.Lock()
		c.msgs = append(c.msgs, Msg{Subject: m.Subject(), Data: m.Data(), ID: m.Headers().Get("Nats-Msg-Id")})
		close(c.more)
		c.more = make(chan struct{})
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("consuming: %v", err)
	}
	t.Cleanup(cc.Stop)
	return c
}

// All is what arrived so far.
func (c *Collector) All() []Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Msg(nil), c.msgs...)
}

// Wait waits (generously) until at least n messages arrived and returns them all.
func (c *Collector) Wait(t testing.TB, n int) []Msg {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		c.mu.Lock()
		got, more := len(c.msgs), c.more
		c.mu.Unlock()
		if got >= n {
			return c.All()
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("waited for %d messages, got %d:\n%s", n, got, Dump(c.All()))
		}
	}
}

// Dump renders messages for failure output.
func Dump(msgs []Msg) string {
	var sb strings.Builder
	for i, m := range msgs {
		fmt.Fprintf(&sb, "  %d %s %s\n", i, m.Subject, m.Data)
	}
	return sb.String()
}

// Normalize checks an envelope's generated fields (id "evt_" + 26 characters, timestamp in
// milliseconds UTC) and replaces them with "evt_*" and "*", so that envelopes compare as JSON
// with sorted keys.
func Normalize(t testing.TB, data []byte) string {
	t.Helper()
	var env map[string]any
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatalf("envelope %s: %v", data, err)
	}
	if id, _ := env["id"].(string); !strings.HasPrefix(id, "evt_") || len(id) != 30 {
		t.Errorf("envelope id %q is not evt_ and a ULID", env["id"])
	}
	ts, _ := env["timestamp"].(string)
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", ts); err != nil {
		t.Errorf("envelope timestamp %q: %v", ts, err)
	}
	env["id"], env["timestamp"] = "evt_*", "*"
	b, _ := json.Marshal(env)
	return string(b)
}

// SameJSON re-encodes a JSON text with sorted keys.
func SameJSON(t testing.TB, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// Envelope is the expected envelope of a channel event of the test connector's integration
// "shop-prod", customer "cust_42".
func Envelope(connectionID, subscriptionID, channel, eventType, eventID, payload string) string {
	id := ""
	if eventID != "" {
		id = fmt.Sprintf(`,"eventId":%q`, eventID)
	}
	return fmt.Sprintf(`{"id":"evt_*","organizationId":"cust_42","source":"apps","resource":"app","resourceId":"shop-prod",`+
		`"eventName":"event_received","timestamp":"*","payload":%s,"metadata":{"connectionId":%q,"subscriptionId":%q,`+
		`"eventKey":%q,"globalWebhookKey":"","selector":"","channel":%q,"eventType":%q%s}}`,
		payload, connectionID, subscriptionID, eventType, channel, eventType, id)
}

// AssertMessages compares messages with the wanted (subject, envelope) pairs, in order.
func AssertMessages(t testing.TB, got []Msg, want ...[2]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d:\n%s", len(got), len(want), Dump(got))
	}
	for i, w := range want {
		if got[i].Subject != w[0] {
			t.Errorf("message %d subject = %s, want %s", i, got[i].Subject, w[0])
		}
		if g, e := Normalize(t, got[i].Data), SameJSON(t, w[1]); g != e {
			t.Errorf("message %d envelope\n got %s\nwant %s", i, g, e)
		}
	}
}

// NewTestLogger writes the log to the test's output, and to each LogBuffer given.
func NewTestLogger(t testing.TB, also ...*LogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t, also}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// LogBuffer keeps a log's text, to check what it holds.
type LogBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

type testWriter struct {
	t    testing.TB
	also []*LogBuffer
}

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	for _, lb := range w.also {
		lb.mu.Lock()
		lb.sb.Write(b)
		lb.mu.Unlock()
	}
	return len(b), nil
}
