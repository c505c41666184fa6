package channel

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboard-run/switchboard/runtime/bus"
	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/embedded"
)

// harness is a Manager over a real embedded store and a real in-process NATS (no network
// listener), with the test connector's integration "shop-prod" and connection "conn_1" of
// customer "cust_42" whose API is a FakeAPI.
type harness struct {
	store *embedded.Store
	bus   *bus.Bus
	mgr   *Manager
	api   *FakeAPI
	msgs  *Collector
}

type setCatalog struct{ *connector.Set }

func (s setCatalog) Connector(key string) (*connector.Connector, bool) {
	c, ok := s.Connectors[key]
	return c, ok
}

func newHarness(t *testing.T, tune func(*Config)) *harness {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	st, err := embedded.Open(filepath.Join(dir, "switchboard.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	n, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Connect(ctx, bus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close(context.Background())
		n.Shutdown(context.Background())
	})
	set, err := connector.Load("../../testdata/channel/connectors")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{store: st, bus: b, api: NewFakeAPI(t)}
	cfg := Config{
		Store:        st,
		Bus:          b,
		Connectors:   setCatalog{set},
		Logger:       NewTestLogger(t),
		Resync:       200 * time.Millisecond,
		MinBackoff:   10 * time.Millisecond,
		MaxBackoff:   200 * time.Millisecond,
		HealthyAfter: time.Second,
		ReadTimeout:  time.Second,
		MaxLine:      1024,
	}
	if tune != nil {
		tune(&cfg)
	}
	h.mgr = New(cfg)
	if err := st.CreateIntegration(ctx, store.Integration{Key: "shop-prod", ConnectorKey: "shop"}); err != nil {
		t.Fatal(err)
	}
	h.connection(t, "conn_1")
	h.msgs = Collect(t, b.JetStream(), b.StreamName())
	return h
}

func (h *harness) connection(t *testing.T, id string) {
	t.Helper()
	err := h.store.CreateConnection(t.Context(), store.Connection{
		ID: id, IntegrationKey: "shop-prod", CustomerID: "cust_42",
		Credentials: map[string]any{"accessToken": h.api.Token},
		Parameters:  map[string]any{"apiHost": h.api.Host()},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// run runs the manager until the test ends.
func (h *harness) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.mgr.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// subscribe stores a channel subscription and tells the manager, as the API does.
func (h *harness) subscribe(t *testing.T, id, connectionID, channelKey, eventType string) {
	t.Helper()
	err := h.store.CreateSubscription(t.Context(), store.Subscription{
		ID: id, ConnectionID: connectionID, EventKey: eventType, Status: "subscribed",
		ChannelKey: channelKey, EventType: eventType,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.mgr.Changed(connectionID, channelKey)
}

func (h *harness) unsubscribe(t *testing.T, id, connectionID, channelKey string) {
	t.Helper()
	if err := h.store.DeleteSubscription(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	h.mgr.Changed(connectionID, channelKey)
}

// eventually waits (generously) for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const subjectPrefix = "events.cust_42.apps.app.event_received.shop-prod."

func TestReceiveWebhook(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	h.connection(t, "conn_2")
	h.subscribe(t, "sub_a", "conn_1", "orders", "order.created")
	h.subscribe(t, "sub_b", "conn_1", "orders", "order.created")
	h.subscribe(t, "sub_c", "conn_1", "orders", "order.updated")
	h.subscribe(t, "sub_other", "conn_2", "orders", "order.created") // another connection: never reached
	id, err := h.mgr.ChannelID(ctx, "conn_1", "orders")
	if err != nil {
		t.Fatal(err)
	}
	receive := func(body string) Receipt {
		t.Helper()
		rc, err := h.mgr.Receive(ctx, id, http.Header{"Content-Type": {"application/json"}}, []byte(body), nil)
		if err != nil {
			t.Fatalf("Receive(%s): %v", body, err)
		}
		return rc
	}

	created := `{"event":{"type":"order.created","id":"o_1","data":{"total":12.5}}}`
	if rc := receive(created); rc.Published != 2 || len(rc.Events) != 1 {
		t.Fatalf("receipt = %+v, want one event published twice", rc)
	}
	// A resend (other bytes, same event id) is acknowledged and not stored again.
	if rc := receive(`{"event":{"data":{"total":12.5},"id":"o_1","type":"order.created"}}`); rc.Published != 2 {
		t.Fatalf("resend receipt = %+v", rc)
	}
	// No definition matches: nothing published, counted.
	if rc := receive(`{"event":{"type":"order.deleted","id":"o_1"}}`); rc.Unmatched != 1 || len(rc.Events) != 0 || rc.Published != 0 {
		t.Fatalf("unmatched receipt = %+v", rc)
	}
	// The payload fails its schema: nothing published, counted.
	rc := receive(`{"event":{"type":"order.created","id":"o_2","data":{"total":"12"}}}`)
	if len(rc.Rejected) != 1 || rc.Published != 0 || rc.Rejected[0].ID != "o_2" {
		t.Fatalf("rejected receipt = %+v", rc)
	}
	if n := metricValue(h.mgr.metrics.rejected.WithLabelValues("shop-prod", "orders", "webhook")); n != 1 {
		t.Errorf("rejected metric = %v, want 1", n)
	}
	if n := metricValue(h.mgr.metrics.unmatched.WithLabelValues("shop-prod", "orders", "webhook")); n != 1 {
		t.Errorf("unmatched metric = %v, want 1", n)
	}
	// A barrier: once this one is on the bus, everything before it is too.
	receive(`{"event":{"type":"order.updated","id":"o_1","data":{"status":"paid"}}}`)

	created1 := Envelope("conn_1", "sub_a", "orders", "order.created", "o_1", `{"total":12.5}`)
	created2 := Envelope("conn_1", "sub_b", "orders", "order.created", "o_1", `{"total":12.5}`)
	updated := Envelope("conn_1", "sub_c", "orders", "order.updated", "o_1", `{"status":"paid"}`)
	AssertMessages(t, h.msgs.Wait(t, 3),
		[2]string{subjectPrefix + "orders.order.created", created1},
		[2]string{subjectPrefix + "orders.order.created", created2},
		[2]string{subjectPrefix + "orders.order.updated", updated},
	)

	// Errors.
	if _, err := h.mgr.Receive(ctx, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nil, []byte(created), nil); !errors.Is(err, ErrUnknownChannel) {
		t.Errorf("unknown id: err = %v, want ErrUnknownChannel", err)
	}
	if _, err := h.mgr.Receive(ctx, id, nil, []byte("not json"), nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("a body that is not JSON: err = %v, want ErrMalformed", err)
	}
	streamID, err := h.mgr.ChannelID(ctx, "conn_1", "stream")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.mgr.Receive(ctx, streamID, nil, []byte(created), nil); !errors.Is(err, ErrUnknownChannel) {
		t.Errorf("the id of an sse channel: err = %v, want ErrUnknownChannel", err)
	}
	if err := h.store.DeleteConnection(ctx, "conn_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.mgr.Receive(ctx, id, nil, []byte(created), nil); !errors.Is(err, ErrUnknownChannel) {
		t.Errorf("a deleted connection's channel: err = %v, want ErrUnknownChannel", err)
	}
}

func TestReceiveCloudEvents(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	h.subscribe(t, "sub_created", "conn_1", "cloud", "com.example.order.created")
	h.subscribe(t, "sub_shipped", "conn_1", "cloud", "com.example.order.shipped")
	id, err := h.mgr.ChannelID(ctx, "conn_1", "cloud")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		header    http.Header
		body      string
		published int
		unmatched int
		rejected  int
	}{
		{"structured", http.Header{"Content-Type": {"application/cloudevents+json"}},
			`{"specversion":"1.0","type":"com.example.order.created","source":"/shop","id":"ce-1","datacontenttype":"application/json","data":{"orderId":"o_1"}}`, 1, 0, 0},
		{"binary", http.Header{"Content-Type": {"application/json"}, "Ce-Specversion": {"1.0"}, "Ce-Type": {"com.example.order.shipped"},
			"Ce-Source": {"/shop"}, "Ce-Id": {"ce-2"}}, `{"orderId":"o_1","carrier":"ups"}`, 1, 0, 0},
		{"batch", http.Header{"Content-Type": {"application/cloudevents-batch+json"}},
			`[{"specversion":"1.0","type":"com.example.order.created","source":"/shop","id":"ce-3","data":{"orderId":"o_3"}},` +
				`{"specversion":"1.0","type":"com.example.unknown","source":"/shop","id":"ce-4","data":{}},` +
				`{"specversion":"1.0","type":"com.example.order.created","source":"/shop","id":"ce-5","data":{"no":"order id"}}]`, 1, 1, 1},
		{"structured resend", http.Header{"Content-Type": {"application/cloudevents+json; charset=utf-8"}},
			`{"specversion":"1.0","type":"com.example.order.created","source":"/shop","id":"ce-1","data":{"orderId":"o_1"}}`, 1, 0, 0},
		{"barrier", http.Header{"Content-Type": {"application/cloudevents+json"}},
			`{"specversion":"1.0","type":"com.example.order.shipped","source":"/shop","id":"ce-6"}`, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := h.mgr.Receive(ctx, id, tt.header, []byte(tt.body), nil)
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if rc.Published != tt.published || rc.Unmatched != tt.unmatched || len(rc.Rejected) != tt.rejected {
				t.Errorf("receipt = %+v", rc)
			}
		})
	}
	for _, bad := range []struct {
		header http.Header
		body   string
	}{
		{http.Header{"Content-Type": {"application/json"}}, `{"orderId":"o_1"}`}, // no ce- headers
		{http.Header{"Content-Type": {"application/cloudevents+json"}}, `{"specversion":"1.0","type":"x"}`},
		{http.Header{"Content-Type": {"application/cloudevents+json"}}, `not json`},
	} {
		if _, err := h.mgr.Receive(ctx, id, bad.header, []byte(bad.body), nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("Receive(%s): err = %v, want ErrMalformed", bad.body, err)
		}
	}
	AssertMessages(t, h.msgs.Wait(t, 4),
		[2]string{subjectPrefix + "cloud.com.example.order.created", Envelope("conn_1", "sub_created", "cloud", "com.example.order.created", "ce-1", `{"orderId":"o_1"}`)},
		[2]string{subjectPrefix + "cloud.com.example.order.shipped", Envelope("conn_1", "sub_shipped", "cloud", "com.example.order.shipped", "ce-2", `{"orderId":"o_1","carrier":"ups"}`)},
		[2]string{subjectPrefix + "cloud.com.example.order.created", Envelope("conn_1", "sub_created", "cloud", "com.example.order.created", "ce-3", `{"orderId":"o_3"}`)},
		[2]string{subjectPrefix + "cloud.com.example.order.shipped", Envelope("conn_1", "sub_shipped", "cloud", "com.example.order.shipped", "ce-6", `null`)},
	)
}

// TestSSE plays a server that drops a connection mid-event, sends a line over the limit,
// goes silent, and then behaves: every complete event is published exactly once, in order,
// the partial one is not, and each reconnection resumes with the last event id published.
func TestSSE(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	h.api.Script(0, func(w http.ResponseWriter, flush func(), r *http.Request) {
		w.Write([]byte(": hello\n\nid: 1\ndata: " + Tick(1).Data + "\n\nid: 2\ndata: {\"type\":\"tick\",\"id\":\"t2\",\"da"))
		flush() // and drop the connection
	})
	h.api.Script(1, func(w http.ResponseWriter, flush func(), r *http.Request) {
		w.Write([]byte("data: " + strings.Repeat("x", 4096) + "\n\n"))
		flush()
		<-r.Context().Done()
	})
	h.api.Script(2, func(w http.ResponseWriter, flush func(), r *http.Request) {
		w.Write([]byte("retry: 20\nid: 2\ndata: " + Tick(2).Data + "\n\nid: 3\ndata: " + Tick(3).Data + "\n\n"))
		flush()
		<-r.Context().Done() // silent until the client gives up
	})
	// From the fourth connection on, the default stream: events after Last-Event-ID.
	h.api.AddEvents(Tick(1), Tick(2), Tick(3), Tick(4))

	h.run(t)
	h.subscribe(t, "sub_tick", "conn_1", "stream", "tick")

	tick := func(n string) [2]string {
		return [2]string{subjectPrefix + "stream.tick", Envelope("conn_1", "sub_tick", "stream", "tick", "t"+n, `{"n":`+n+`}`)}
	}
	AssertMessages(t, h.msgs.Wait(t, 4), tick("1"), tick("2"), tick("3"), tick("4"))
	eventually(t, "the cursor to reach 4", func() bool {
		c, _ := h.store.ChannelCursor(t.Context(), "conn_1", "stream")
		return c == "4"
	})
	if got, want := h.api.LastEventIDs()[:4], []string{"", "1", "1", "3"}; !equal(got, want) {
		t.Errorf("Last-Event-ID of the connections = %q, want %q", got, want)
	}
	if n := h.api.BadAuth(); n != 0 {
		t.Errorf("%d requests without the credentials", n)
	}
	for _, reason := range []string{"eof", "line_too_long", "silent"} {
		if n := metricValue(h.mgr.metrics.reconnects.WithLabelValues("shop-prod", "stream", reason)); n < 1 {
			t.Errorf("reconnects for %s = %v, want at least 1", reason, n)
		}
	}

	// More events on the healthy stream, then unsubscribe: the worker lets go of the stream
	// and its goroutines end.
	h.api.AddEvents(Tick(5))
	AssertMessages(t, h.msgs.Wait(t, 5), tick("1"), tick("2"), tick("3"), tick("4"), tick("5"))
	if len(workerGoroutines()) == 0 {
		t.Fatal("no worker goroutine found while subscribed: the leak check below would prove nothing")
	}
	h.unsubscribe(t, "sub_tick", "conn_1", "stream")
	eventually(t, "the stream to close", func() bool { _, open := h.api.StreamConns(); return open == 0 })
	eventually(t, "the worker's goroutines to end", func() bool {
		http.DefaultClient.CloseIdleConnections() // idle keep-alive connections are the transport's, not leaks
		return len(workerGoroutines()) == 0
	})
	if c, _ := h.store.ChannelCursor(t.Context(), "conn_1", "stream"); c != "" {
		t.Errorf("cursor after the last subscription went = %q, want none", c)
	}
	total, _ := h.api.StreamConns()
	time.Sleep(200 * time.Millisecond)
	if again, _ := h.api.StreamConns(); again != total {
		t.Errorf("the stream was reconnected after the last subscription went")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func order(id, at string) map[string]any {
	return map[string]any{"id": id, "updated_at": at, "status": "s-" + at[len(at)-3:len(at)-1]}
}

// TestPolling: the first poll is the baseline; later polls publish only new items, oldest
// first; repeated listings publish nothing; the cursor is stored.
func TestPolling(t *testing.T) {
	h := newHarness(t, nil)
	h.api.SetListing("/api/orders", map[string]any{"items": []any{
		order("o_2", "2026-11-22T10:00:02Z"), order("o_1", "2026-11-22T10:00:01Z"),
	}})
	h.run(t)
	h.subscribe(t, "sub_poll", "conn_1", "poll", "order.changed")
	eventually(t, "the baseline", func() bool {
		c, _ := h.store.ChannelCursor(t.Context(), "conn_1", "poll")
		return c != ""
	})

	// o_1 is updated, o_3 appears: both new, published oldest first.
	h.api.SetListing("/api/orders", map[string]any{"items": []any{
		order("o_1", "2026-11-22T10:00:04Z"), order("o_3", "2026-11-22T10:00:03Z"), order("o_2", "2026-11-22T10:00:02Z"),
	}})
	msgs := h.msgs.Wait(t, 2)
	hits := h.api.Hits("/api/orders")
	eventually(t, "three more polls", func() bool { return h.api.Hits("/api/orders") >= hits+3 })
	// And one more change as a barrier.
	h.api.SetListing("/api/orders", map[string]any{"items": []any{
		order("o_2", "2026-11-22T10:00:05Z"), order("o_1", "2026-11-22T10:00:04Z"), order("o_3", "2026-11-22T10:00:03Z"),
	}})
	msgs = h.msgs.Wait(t, 3)
	env := func(id, at string) [2]string {
		return [2]string{subjectPrefix + "poll.order.changed", Envelope("conn_1", "sub_poll", "poll", "order.changed", id,
			`{"id":"`+id+`","updated_at":"`+at+`","status":"s-`+at[len(at)-3:len(at)-1]+`"}`)}
	}
	AssertMessages(t, msgs,
		env("o_3", "2026-11-22T10:00:03Z"), env("o_1", "2026-11-22T10:00:04Z"), env("o_2", "2026-11-22T10:00:05Z"))
	if n := h.api.BadAuth(); n != 0 {
		t.Errorf("%d polls without the credentials", n)
	}
}

// TestPollingIDs: an id discriminator publishes ids not seen before.
func TestPollingIDs(t *testing.T) {
	h := newHarness(t, nil)
	h.api.SetListing("/api/tickets", map[string]any{"tickets": []any{map[string]any{"id": 1}}})
	h.run(t)
	h.subscribe(t, "sub_t", "conn_1", "pollids", "ticket.created")
	eventually(t, "the baseline", func() bool {
		c, _ := h.store.ChannelCursor(t.Context(), "conn_1", "pollids")
		return c != ""
	})
	h.api.SetListing("/api/tickets", map[string]any{"tickets": []any{
		map[string]any{"id": 3}, map[string]any{"id": 2}, map[string]any{"id": 1},
	}})
	env := func(id string) [2]string {
		return [2]string{subjectPrefix + "pollids.ticket.created", Envelope("conn_1", "sub_t", "pollids", "ticket.created", id, `{"id":`+id+`}`)}
	}
	msgs := h.msgs.Wait(t, 2)
	h.api.SetListing("/api/tickets", map[string]any{"tickets": []any{map[string]any{"id": 4}, map[string]any{"id": 3}}})
	msgs = h.msgs.Wait(t, 3)
	AssertMessages(t, msgs, env("2"), env("3"), env("4"))
}

// TestPollingBackoff: a failing endpoint is retried with growing waits, reported, and
// polled at its interval again once it recovers.
func TestPollingBackoff(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBackoff = time.Minute })
	h.api.SetListing("/api/orders", map[string]any{"items": []any{}})
	h.api.SetStatus("/api/orders", http.StatusInternalServerError)
	h.run(t)
	h.subscribe(t, "sub_poll", "conn_1", "poll", "order.changed")
	eventually(t, "a first failing poll", func() bool { return h.api.Hits("/api/orders") >= 1 })
	time.Sleep(1500 * time.Millisecond)
	// At the 50ms interval 30 polls would fit; doubling waits from 50ms (±50%) allow at most
	// 7 (the sum of the lower bounds of 7 waits already exceeds 1.5s).
	if n := h.api.Hits("/api/orders"); n > 8 {
		t.Errorf("a failing endpoint was polled %d times in 1.5s", n)
	}
	if n := metricValue(h.mgr.metrics.workerErrors.WithLabelValues("shop-prod", "poll", "polling")); n < 2 {
		t.Errorf("worker errors = %v, want at least 2", n)
	}
	h.api.SetStatus("/api/orders", 0)
	eventually(t, "the baseline after recovering", func() bool {
		c, _ := h.store.ChannelCursor(t.Context(), "conn_1", "poll")
		return c != ""
	})
	hits := h.api.Hits("/api/orders")
	eventually(t, "polls at the interval again", func() bool { return h.api.Hits("/api/orders") >= hits+5 })
}

// TestWorkersFollowSubscriptions: Run starts workers for the subscriptions it finds, and the
// periodic resync notices changes no Changed call reported.
func TestWorkersFollowSubscriptions(t *testing.T) {
	h := newHarness(t, nil)
	h.api.SetListing("/api/orders", map[string]any{"items": []any{}})
	// A subscription stored before Run, with no Changed call.
	if err := h.store.CreateSubscription(t.Context(), store.Subscription{ID: "sub_p", ConnectionID: "conn_1",
		EventKey: "order.changed", ChannelKey: "poll", EventType: "order.changed"}); err != nil {
		t.Fatal(err)
	}
	h.run(t)
	eventually(t, "polling to start", func() bool { return h.api.Hits("/api/orders") >= 2 })
	// Deleted behind the manager's back: the resync stops the worker.
	if err := h.store.DeleteSubscription(t.Context(), "sub_p"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // more than two resync periods
	hits := h.api.Hits("/api/orders")
	time.Sleep(300 * time.Millisecond)
	if n := h.api.Hits("/api/orders"); n != hits {
		t.Errorf("polled %d more times after the subscription went", n-hits)
	}
	if n := metricValue(h.mgr.metrics.workers.WithLabelValues("polling")); n != 0 {
		t.Errorf("workers gauge = %v, want 0", n)
	}
}

// metricValue reads a counter or gauge.
func metricValue(m prometheus.Metric) float64 {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		return -1
	}
	return out.GetCounter().GetValue() + out.GetGauge().GetValue()
}

// workerGoroutines returns the stacks of goroutines that belong to a channel worker or to an
// HTTP connection it opened.
func workerGoroutines() []string {
	buf := make([]byte, 4<<20)
	var out []string
	for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "channel.(*Manager).runWorker") || strings.Contains(g, "net/http.(*persistConn)") {
			out = append(out, g)
		}
	}
	return out
}

func TestWithoutURL(t *testing.T) {
	_, err := http.Get("http://127.0.0.1:1/api/orders?api_key=s3cret")
	if err == nil {
		t.Skip("something listens on port 1")
	}
	if got := withoutURL(err).Error(); strings.Contains(got, "s3cret") || strings.Contains(got, "api_key") {
		t.Errorf("withoutURL kept the URL: %s", got)
	}
}
