package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/bus"
	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/runtime/router"
	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/embedded"
)

const testLeaseTTL = time.Second

// startNATS runs an in-process NATS with JetStream (no network listener) until the test ends.
func startNATS(t *testing.T) *bus.Embedded {
	t.Helper()
	n, err := bus.StartEmbedded(t.Context(), bus.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	return n
}

// connectBus is one more connection to n, closed when the test ends (closing twice is fine).
func connectBus(t *testing.T, n *bus.Embedded) *bus.Bus {
	t.Helper()
	b, err := n.Connect(t.Context(), bus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

func newLeases(t *testing.T, b *bus.Bus, owner string, ttl time.Duration) *Leases {
	t.Helper()
	l, err := NewLeases(t.Context(), b.JetStream(), LeasesConfig{TTL: ttl, Owner: owner, Logger: NewTestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLeases(t *testing.T) {
	n := startNATS(t)
	a := newLeases(t, connectBus(t, n), "a", testLeaseTTL)
	b := newLeases(t, connectBus(t, n), "b", 5*time.Second) // the bucket exists: its TTL wins
	if b.TTL() != testLeaseTTL {
		t.Fatalf("second instance's TTL = %v, want the bucket's %v", b.TTL(), testLeaseTTL)
	}
	ctx := t.Context()
	ref := store.ChannelRef{ConnectionID: "conn 1/ü.*>", ChannelKey: "poll"} // not a valid KV key as it is

	if got, ok := parseLeaseKey(leaseKey(ref)); !ok || got != ref {
		t.Errorf("parseLeaseKey(leaseKey(%+v)) = %+v, %v", ref, got, ok)
	}
	la, err := a.acquire(ctx, ref)
	if err != nil {
		t.Fatalf("a acquires: %v", err)
	}
	if _, err := b.acquire(ctx, ref); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("b acquires a held lease: %v, want ErrLeaseHeld", err)
	}
	other := ref
	other.ChannelKey = "stream"
	if _, err := b.acquire(ctx, other); err != nil {
		t.Fatalf("b acquires another channel's lease: %v", err)
	}
	if err := la.renew(ctx); err != nil {
		t.Fatalf("a renews: %v", err)
	}
	if err := la.release(ctx); err != nil {
		t.Fatalf("a releases: %v", err)
	}
	lb, err := b.acquire(ctx, ref)
	if err != nil {
		t.Fatalf("b acquires a released lease: %v", err)
	}
	if err := la.renew(ctx); !errors.Is(err, errLeaseLost) {
		t.Fatalf("a renews a lease b holds: %v, want errLeaseLost", err)
	}
	if err := la.release(ctx); err != nil {
		t.Fatalf("a releases a lease b holds: %v", err)
	}
	if _, err := a.acquire(ctx, ref); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("a's release dropped b's lease: %v", err)
	}

	// b dies without releasing: the lease expires with the bucket's TTL, and b's renewal
	// then fails as lost.
	start := time.Now()
	var la2 *lease
	eventually(t, "the lease to expire", func() bool {
		la2, err = a.acquire(ctx, ref)
		return err == nil
	})
	if d := time.Since(start); d < testLeaseTTL/2 {
		t.Errorf("a held lease expired after %v, TTL %v", d, testLeaseTTL)
	}
	if err := lb.renew(ctx); !errors.Is(err, errLeaseLost) {
		t.Fatalf("b renews an expired and retaken lease: %v, want errLeaseLost", err)
	}

	// keep stops the worker when the lease goes.
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	held := make(chan bool, 1)
	go func() { held <- la2.keep(kctx, cancel, NewTestLogger(t)) }()
	time.Sleep(testLeaseTTL / 2) // a renewal or two
	if err := a.kv.Delete(ctx, la2.key); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-held:
		if ok || kctx.Err() == nil {
			t.Errorf("keep returned %v with the worker's ctx %v; want false, cancelled", ok, kctx.Err())
		}
	case <-time.After(5 * testLeaseTTL):
		t.Fatal("keep did not notice the lease was gone")
	}
}

// countingBus counts, per message id, the publishes the bus acknowledged: each event must be
// published once across the instances, not merely stored once by the bus's de-duplication.
type countingBus struct {
	Bus
	mu  sync.Mutex
	ids map[string]int
}

func (c *countingBus) PublishAll(ctx context.Context, msgs []router.Message) error {
	err := c.Bus.PublishAll(ctx, msgs)
	if err == nil {
		c.mu.Lock()
		for _, m := range msgs {
			c.ids[m.ID]++
		}
		c.mu.Unlock()
	}
	return err
}

// countingTransport records when each request to a path started.
type countingTransport struct {
	mu    sync.Mutex
	times map[string][]time.Time
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.times[r.URL.Path] = append(c.times[r.URL.Path], time.Now())
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.times[path])
}

func (c *countingTransport) requests(path string) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.times[path])
}

// instance is one process of a shared deployment: its own NATS connection, leases,
// manager and HTTP client, on the shared store and NATS.
type instance struct {
	name string
	bus  *bus.Bus
	pub  *countingBus
	http *countingTransport
	mgr  *Manager
	stop func() // stops Run and waits for it
}

// sharedDeployment is a store, a NATS, a FakeAPI and connection conn_1 of the test connector,
// for instances to share.
type sharedDeployment struct {
	ttl   time.Duration // of the leases
	store *embedded.Store
	nats  *bus.Embedded
	api   *FakeAPI
	set   *connector.Set
	msgs  *Collector
}

func newSharedDeployment(t *testing.T) *sharedDeployment {
	t.Helper()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "switchboard.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	set, err := connector.Load("../../testdata/channel/connectors")
	if err != nil {
		t.Fatal(err)
	}
	d := &sharedDeployment{ttl: testLeaseTTL, store: st, nats: startNATS(t), api: NewFakeAPI(t), set: set}
	ctx := t.Context()
	if err := st.CreateIntegration(ctx, store.Integration{Key: "shop-prod", ConnectorKey: "shop"}); err != nil {
		t.Fatal(err)
	}
	err = st.CreateConnection(ctx, store.Connection{
		ID: "conn_1", IntegrationKey: "shop-prod", CustomerID: "cust_42",
		Credentials: map[string]any{"accessToken": d.api.Token},
		Parameters:  map[string]any{"apiHost": d.api.Host()},
	})
	if err != nil {
		t.Fatal(err)
	}
	watch := connectBus(t, d.nats)
	d.msgs = Collect(t, watch.JetStream(), watch.StreamName())
	return d
}

// start runs an instance until stop or the end of the test.
func (d *sharedDeployment) start(t *testing.T, name string, tune ...func(*Config)) *instance {
	t.Helper()
	b := connectBus(t, d.nats)
	in := &instance{name: name, bus: b, pub: &countingBus{Bus: b, ids: map[string]int{}},
		http: &countingTransport{times: map[string][]time.Time{}}}
	cfg := Config{
		Store:        d.store,
		Bus:          in.pub,
		Connectors:   setCatalog{d.set},
		HTTPClient:   &http.Client{Transport: in.http},
		Logger:       NewTestLogger(t).With("instance", name),
		Resync:       200 * time.Millisecond,
		MinBackoff:   10 * time.Millisecond,
		MaxBackoff:   200 * time.Millisecond,
		HealthyAfter: time.Second,
		ReadTimeout:  time.Second,
		Leases:       newLeases(t, b, name, d.ttl),
	}
	for _, f := range tune {
		f(&cfg)
	}
	in.mgr = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.mgr.Run(ctx)
	}()
	in.stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(in.stop)
	return in
}

// subscribe stores a channel subscription and tells every instance, as their APIs would.
func (d *sharedDeployment) subscribe(t *testing.T, id, channelKey, eventType string, ins ...*instance) {
	t.Helper()
	err := d.store.CreateSubscription(t.Context(), store.Subscription{
		ID: id, ConnectionID: "conn_1", EventKey: eventType, Status: "subscribed",
		ChannelKey: channelKey, EventType: eventType,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		in.mgr.Changed("conn_1", channelKey)
	}
}

// producer makes the FakeAPI produce a new polled order and a new stream tick every few
// milliseconds until stopped, and remembers their event ids.
type producer struct {
	mu      sync.Mutex
	ids     map[string]bool
	listing []any
	stopped chan struct{}
	done    chan struct{}
}

func (d *sharedDeployment) produce(t *testing.T) *producer {
	p := &producer{ids: map[string]bool{}, stopped: make(chan struct{}), done: make(chan struct{})}
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	go func() {
		defer close(p.done)
		for i := 1; ; i++ {
			select {
			case <-p.stopped:
				return
			case <-time.After(30 * time.Millisecond):
			}
			order := fmt.Sprintf("o_%d", i)
			p.listing = append([]any{map[string]any{"id": order, "updated_at": base.Add(time.Duration(i) * time.Second).Format(time.RFC3339)}}, p.listing...)
			d.api.SetListing("/api/orders", map[string]any{"items": p.listing})
			d.api.AddEvents(Tick(i))
			p.mu.Lock()
			p.ids[order], p.ids[fmt.Sprintf("t%d", i)] = true, true
			p.mu.Unlock()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *producer) stop() {
	select {
	case <-p.stopped:
	default:
		close(p.stopped)
	}
	<-p.done
}

// eventIDs are the produced events' ids.
func (p *producer) eventIDs() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.ids)
}

// assertExactlyOnce checks that the bus holds exactly the produced events, each once, and
// that the instances together published each of them once.
func (d *sharedDeployment) assertExactlyOnce(t *testing.T, p *producer, ins ...*instance) {
	t.Helper()
	want := p.eventIDs()
	msgs := d.msgs.Wait(t, len(want))
	time.Sleep(300 * time.Millisecond) // polls and heartbeats: nothing else may come
	msgs = d.msgs.All()
	got := map[string]int{}
	for _, m := range msgs {
		var env struct {
			Metadata struct{ EventID string }
		}
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatalf("decoding %s: %v", m.Data, err)
		}
		got[env.Metadata.EventID]++
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("event %s stored %d times, want once", id, got[id])
		}
	}
	for id, n := range got {
		if !want[id] {
			t.Errorf("event %s stored %d times, and never produced", id, n)
		}
	}
	published := map[string]int{}
	for _, in := range ins {
		in.pub.mu.Lock()
		for id, n := range in.pub.ids {
			published[id] += n
		}
		in.pub.mu.Unlock()
	}
	if len(published) != len(want) {
		t.Errorf("%d message ids published, %d events produced", len(published), len(want))
	}
	for id, n := range published {
		if n != 1 {
			t.Errorf("message %s published %d times by the instances, want once", id, n)
		}
	}
	t.Logf("%d events produced, each stored and published once", len(want))
}

// moving reports, per instance, whether it requested path during window.
func moving(ins []*instance, path string, window time.Duration) []bool {
	before := make([]int, len(ins))
	for i, in := range ins {
		before[i] = in.http.count(path)
	}
	time.Sleep(window)
	out := make([]bool, len(ins))
	for i, in := range ins {
		out[i] = in.http.count(path) > before[i]
	}
	return out
}

// atMostOneStream samples the FakeAPI's open streams over window: never more than one,
// and one at the end.
func atMostOneStream(t *testing.T, api *FakeAPI, window time.Duration) {
	t.Helper()
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if _, open := api.StreamConns(); open > 1 {
			t.Fatalf("%d streams open at once", open)
		}
	}
	if _, open := api.StreamConns(); open != 1 {
		t.Errorf("%d streams open, want 1", open)
	}
}

// setUpTwo starts instance a, subscribes to the polling and the sse channel, waits until a
// runs both workers and the polling baseline is taken, then starts b.
func setUpTwo(t *testing.T, d *sharedDeployment) (a, b *instance) {
	t.Helper()
	d.api.SetListing("/api/orders", map[string]any{"items": []any{}})
	a = d.start(t, "a")
	d.subscribe(t, "sub_poll", "poll", "order.changed", a)
	d.subscribe(t, "sub_tick", "stream", "tick", a)
	eventually(t, "a to poll and stream", func() bool {
		c, _ := d.store.ChannelCursor(t.Context(), "conn_1", "poll")
		_, open := d.api.StreamConns()
		return c != "" && open == 1
	})
	b = d.start(t, "b")
	return a, b
}

// TestInstancesShareChannels: two instances on one store and one NATS run each channel's
// worker once between them; when the one running them stops, the other takes them over
// from their cursors, and every event the API produced is published exactly once.
func TestInstancesShareChannels(t *testing.T) {
	d := newSharedDeployment(t)
	a, b := setUpTwo(t, d)
	ins := []*instance{a, b}
	p := d.produce(t)

	// Both up: a keeps both workers, b polls and streams nothing (b runs several lease
	// ticks in the window).
	if got := moving(ins, "/api/orders", 2*testLeaseTTL); !slices.Equal(got, []bool{true, false}) {
		t.Errorf("with both instances up, polling by [a b] = %v, want only a", got)
	}
	if n := b.http.count("/api/stream"); n != 0 {
		t.Errorf("b opened %d streams while a held the lease", n)
	}
	atMostOneStream(t, d.api, testLeaseTTL/2)

	// a stops (its leases released): b takes over within a few TTLs and keeps going.
	a.stop()
	eventually(t, "b to take over", func() bool { return b.http.count("/api/orders") >= 3 && b.http.count("/api/stream") >= 1 })
	if got := moving(ins, "/api/orders", testLeaseTTL); !slices.Equal(got, []bool{false, true}) {
		t.Errorf("after a stopped, polling by [a b] = %v, want only b", got)
	}
	atMostOneStream(t, d.api, testLeaseTTL/2)
	for _, kind := range []string{connector.ChannelPolling, connector.ChannelSSE} {
		if n := metricValue(a.mgr.metrics.leasesLost.WithLabelValues(kind)); n != 0 {
			t.Errorf("a's %s leases lost = %v after a clean stop, want 0", kind, n)
		}
	}

	p.stop()
	d.assertExactlyOnce(t, p, a, b)
}

// TestInstanceCrashes: the instance running the workers loses NATS (as if it died without
// releasing its leases): it stops its workers within 2/3 of the TTL, before its leases
// expire, the other takes them over once they do, never two streams or pollers at once,
// and every event is published exactly once.
func TestInstanceCrashes(t *testing.T) {
	d := newSharedDeployment(t)
	a, b := setUpTwo(t, d)
	p := d.produce(t)
	time.Sleep(testLeaseTTL / 2) // some events through a

	crash := time.Now()
	a.bus.Close(context.Background())
	sampled := make(chan int)
	go func() {
		most := 0
		for end := time.Now().Add(3 * testLeaseTTL); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
			_, open := d.api.StreamConns()
			most = max(most, open)
		}
		sampled <- most
	}()
	eventually(t, "b to take over", func() bool { return b.http.count("/api/orders") >= 3 && b.http.count("/api/stream") >= 1 })
	// a renewed its leases at most TTL/3 (and a round trip) before it lost NATS.
	took := b.http.requests("/api/orders")[0]
	if d := took.Sub(crash); d < testLeaseTTL/2 {
		t.Errorf("b polled %v after a lost NATS, before a's lease could expire (TTL %v)", d, testLeaseTTL)
	}
	for _, path := range []string{"/api/orders", "/api/stream"} {
		if reqs := a.http.requests(path); reqs[len(reqs)-1].After(b.http.requests(path)[0]) {
			t.Errorf("%s: a's last request at %v is after b's first at %v", path, reqs[len(reqs)-1].Sub(crash), b.http.requests(path)[0].Sub(crash))
		}
	}
	if most := <-sampled; most > 1 {
		t.Errorf("%d streams open at once during the handover", most)
	}
	for _, kind := range []string{connector.ChannelPolling, connector.ChannelSSE} {
		if n := metricValue(a.mgr.metrics.leasesLost.WithLabelValues(kind)); n != 1 {
			t.Errorf("a's %s leases lost = %v, want 1", kind, n)
		}
	}

	p.stop()
	d.assertExactlyOnce(t, p, a, b)
}

// TestLeaseBucketLost: the bucket vanishes, as a NATS restart drops it (it is kept in
// memory): the running worker finds its lease gone and stops, and the manager makes the
// bucket again, takes the lease and runs the worker again.
func TestLeaseBucketLost(t *testing.T) {
	d := newSharedDeployment(t)
	d.api.SetListing("/api/orders", map[string]any{"items": []any{}})
	a := d.start(t, "a")
	d.subscribe(t, "sub_poll", "poll", "order.changed", a)
	eventually(t, "a to poll", func() bool { return a.http.count("/api/orders") >= 2 })

	if err := a.bus.JetStream().DeleteKeyValue(t.Context(), DefaultLeaseBucket); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the worker to stop", func() bool {
		return metricValue(a.mgr.metrics.leasesLost.WithLabelValues(connector.ChannelPolling)) == 1
	})
	polls := a.http.count("/api/orders")
	eventually(t, "polling again", func() bool { return a.http.count("/api/orders") >= polls+3 })
	if _, err := a.bus.JetStream().KeyValue(t.Context(), DefaultLeaseBucket); err != nil {
		t.Errorf("the bucket was not made again: %v", err)
	}
}

// TestReleasedLeaseTakenAtOnce: when an instance stops, the others learn of its released
// leases from the bucket and take them over at once, long before their lease tick (TTL/2)
// or resync would.
func TestReleasedLeaseTakenAtOnce(t *testing.T) {
	d := newSharedDeployment(t)
	d.ttl = 10 * time.Second
	slow := func(c *Config) { c.Resync = time.Minute }
	d.api.SetListing("/api/orders", map[string]any{"items": []any{}})
	a := d.start(t, "a", slow)
	d.subscribe(t, "sub_poll", "poll", "order.changed", a)
	eventually(t, "a to poll", func() bool { return a.http.count("/api/orders") >= 2 })
	b := d.start(t, "b", slow)
	time.Sleep(300 * time.Millisecond) // b's first sync: the channel in standby

	stopped := time.Now()
	a.stop()
	eventually(t, "b to take over", func() bool { return b.http.count("/api/orders") >= 1 })
	if took := time.Since(stopped); took > d.ttl/4 {
		t.Errorf("b took over %v after a stopped; its lease tick is every %v", took, d.ttl/2)
	} else {
		t.Logf("b took over %v after a stopped", took)
	}
}
