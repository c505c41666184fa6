package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/switchboard-run/switchboard/runtime/bus"
)

// natsSubscriber is the test's own Subscriber over a NATS connection, like the server's.
type natsSubscriber struct{ nc *nats.Conn }

func (s natsSubscriber) Subscribe(pattern string, deliver func([]byte)) (func(), error) {
	sub, err := s.nc.Subscribe(pattern, func(m *nats.Msg) { deliver(m.Data) })
	if err != nil {
		return nil, err
	}
	if err := s.nc.Flush(); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	return func() { sub.Unsubscribe() }, nil
}

type streamFixture struct {
	api *API
	srv *httptest.Server
	pub *nats.Conn // publishes
	sub *nats.Conn // the stream's subscriptions
}

// newStreamFixture runs an in-process NATS (on a random loopback port) and the API with
// the stream route.
func newStreamFixture(t *testing.T, cfg StreamConfig) *streamFixture {
	t.Helper()
	n, err := bus.StartEmbedded(t.Context(), bus.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	connect := func() *nats.Conn {
		nc, err := nats.Connect(n.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	f := &streamFixture{pub: connect(), sub: connect()}
	cfg.Subscriber = natsSubscriber{f.sub}
	f.api = New(Config{APIToken: "tok"})
	f.api.AddStreamRoute(cfg)
	f.srv = httptest.NewServer(f.api)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *streamFixture) dial(t *testing.T, subject string) *websocket.Conn {
	t.Helper()
	url := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/v1/stream?subject=" + subject
	c, _, err := websocket.Dial(t.Context(), url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer tok"}}})
	if err != nil {
		t.Fatalf("dialling the stream: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	c.SetReadLimit(4 << 20) // envelopes may be larger than the library's 32 KiB default
	return c
}

// metric returns the value of a counter or gauge of the API's registry with the labels given.
func (f *streamFixture) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := f.api.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue metrics
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStreamDeliversMatchingEvents(t *testing.T) {
	f := newStreamFixture(t, StreamConfig{})
	c := f.dial(t, "events.cust_1.apps.app.event_received.slack.>")
	if n := f.sub.NumSubscriptions(); n != 1 {
		t.Fatalf("%d subscriptions, want 1", n)
	}

	publish := []struct{ subject, body string }{
		{"events.cust_1.apps.app.event_received.slack.events.message-posted", `{"id":"evt_1"}`},
		{"events.cust_2.apps.app.event_received.slack.events.message-posted", `{"id":"evt_other_customer"}`},
		{"events.cust_1.apps.app.event_received.github.events.push", `{"id":"evt_other_integration"}`},
		{"events.cust_1.apps.subscription.created.sub_1", `{"id":"evt_state_change"}`},
		{"events.cust_1.apps.app.event_received.slack.events.reaction-added", `{"id":"evt_2"}`},
	}
	for _, p := range publish {
		if err := f.pub.Publish(p.subject, []byte(p.body)); err != nil {
			t.Fatal(err)
		}
	}
	// A last matching event marks the end: everything before it has been through.
	f.pub.Publish("events.cust_1.apps.app.event_received.slack.events.end", []byte(`{"id":"evt_end"}`))
	f.pub.Flush()

	var got []string
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for len(got) == 0 || got[len(got)-1] != `{"id":"evt_end"}` {
		typ, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("reading after %q: %v", got, err)
		}
		if typ != websocket.MessageText {
			t.Errorf("message type %v, want text", typ)
		}
		got = append(got, string(data))
	}
	if want := []string{`{"id":"evt_1"}`, `{"id":"evt_2"}`, `{"id":"evt_end"}`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", got, want)
	}

	// The subscription goes with the socket.
	c.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "the subscription to end", func() bool { return f.sub.NumSubscriptions() == 0 })
	waitUntil(t, "the client gauge to drop", func() bool { return f.metric(t, "switchboard_stream_clients") == 0 })
}

func TestStreamDisconnectsASlowClient(t *testing.T) {
	f := newStreamFixture(t, StreamConfig{Buffer: 4, WriteTimeout: time.Minute})
	slow := f.dial(t, "events.>")
	fast := f.dial(t, "events.>")

	// The fast client reads everything on its own goroutine, and each message is published
	// once it has read the one before; the slow client reads nothing until the end. Big
	// messages fill the socket buffers, then the slow client's queue.
	fastDone := make(chan error, 1)
	fastRead := make(chan struct{}, 1)
	go func() {
		for {
			_, _, err := fast.Read(t.Context())
			if err != nil {
				fastDone <- err
				return
			}
			fastRead <- struct{}{}
		}
	}()
	body := []byte(`{"pad":"` + strings.Repeat("x", 256<<10) + `"}`)
	for i := 0; i < 400 && f.metric(t, "switchboard_stream_disconnects_total", "reason", "slow") == 0; i++ {
		if err := f.pub.Publish("events.cust_1.apps.app.event_received.slack.events.big", body); err != nil {
			t.Fatal(err)
		}
		select {
		case <-fastRead:
		case err := <-fastDone:
			t.Fatalf("the fast client was disconnected: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("the fast client got nothing")
		}
	}
	waitUntil(t, "the slow client to be disconnected", func() bool {
		return f.metric(t, "switchboard_stream_disconnects_total", "reason", "slow") == 1
	})

	// The slow client sees its connection end (after what was already on the wire).
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var err error
	for err == nil {
		_, _, err = slow.Read(ctx)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("the slow client's connection did not end")
	}
	if status := websocket.CloseStatus(err); status != -1 && status != websocket.StatusPolicyViolation {
		t.Errorf("close status %v, want policy violation (or a cut connection)", status)
	}
	waitUntil(t, "the slow client's subscription to end", func() bool { return f.sub.NumSubscriptions() == 1 })

	// The fast client is still served.
	f.pub.Publish("events.cust_1.apps.app.event_received.slack.events.small", []byte(`{}`))
	f.pub.Flush()
	select {
	case err := <-fastDone:
		t.Fatalf("the fast client was disconnected too: %v", err)
	default:
	}
	if f.metric(t, "switchboard_stream_clients") != 1 {
		t.Errorf("clients gauge = %v, want 1", f.metric(t, "switchboard_stream_clients"))
	}
}

func TestStreamRefusals(t *testing.T) {
	f := newStreamFixture(t, StreamConfig{})
	for _, tt := range []struct {
		name, query string
		header      http.Header
		status      int
	}{
		{"no token", "?subject=events.>", http.Header{"Upgrade": {"websocket"}}, 401},
		{"no subject", "", http.Header{"Authorization": {"Bearer tok"}}, 400},
		{"not events", "?subject=deliveries.>", http.Header{"Authorization": {"Bearer tok"}}, 400},
		{"bad wildcard", "?subject=events.>.x", http.Header{"Authorization": {"Bearer tok"}}, 400},
		{"empty token", "?subject=events..x", http.Header{"Authorization": {"Bearer tok"}}, 400},
		{"mixed wildcard", "?subject=events.a*", http.Header{"Authorization": {"Bearer tok"}}, 400},
		{"not an upgrade", "?subject=events.>", http.Header{"Authorization": {"Bearer tok"}}, 426},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", f.srv.URL+"/v1/stream"+tt.query, nil)
			req.Header = tt.header
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
	if n := f.sub.NumSubscriptions(); n != 0 {
		t.Errorf("%d subscriptions left by refused requests", n)
	}
}
