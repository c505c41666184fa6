package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-run/switchboard/runtime/server"
)

// The numbered connector: handle routes {user, n, id?} to user:<user>, giving the event
// the body's id when it has one, and answers 202 "ok". Its event "seen" is a mapping, so
// subscribing needs no API.
const (
	numberedConnectorYML = `key: numbered
name: Numbered
api:
  baseUri: http://127.0.0.1:1/
  auth: { type: none }
`
	numberedHandle = `export default async function handle({ data }) {
  return {
    events: [{ selector: ` + "`user:${data.user}`" + `, payload: data, id: data.id }],
    response: { status: 202, data: 'ok' },
  }
}
`
	numberedWebhookSpec = `name: Hook
key: hook
methods:
  handle:
    implementationType: javascript
`
	numberedEventSpec = `name: Seen
key: seen
implementationType: global-webhook
methods:
  get-event-selector:
    implementationType: mapping
    mapping:
      globalWebhookKey: hook
      globalWebhookEventSelector:
        $tpl:
          template: "user:{user}"
          values:
            user: { $var: credentials.user }
`
)

// numberedConnectors writes a connectors tree holding the numbered connector, with handle
// as its handle.js, and returns its directory.
func numberedConnectors(t *testing.T, handle string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"numbered/connector.yml":                  numberedConnectorYML,
		"numbered/global-webhooks/hook/spec.yml":  numberedWebhookSpec,
		"numbered/global-webhooks/hook/handle.js": handle,
		"numbered/events/seen/spec.yml":           numberedEventSpec,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// setUpNumbered installs the numbered connector as integration n1 with connection conn_n
// (customer cust_n, user u1) subscribed to "seen", and returns the webhook path.
func setUpNumbered(t *testing.T, h *harness) string {
	t.Helper()
	h.must(201, "POST", "/v1/integrations", map[string]any{"key": "n1", "connectorKey": "numbered"})
	h.must(201, "POST", "/v1/connections", map[string]any{
		"id": "conn_n", "integrationKey": "n1", "customerId": "cust_n", "credentials": map[string]any{"user": "u1"},
	})
	h.must(201, "POST", "/v1/connections/conn_n/event-subscriptions", map[string]any{"eventKey": "seen"})
	return h.webhookPath("n1", "hook")
}

// numbered is the body of request n, with event id evt-n.
func numbered(n int) []byte {
	return fmt.Appendf(nil, `{"user":"u1","n":%d,"id":"evt-%d"}`, n, n)
}

// shrinkDuplicateWindow sets the duplicate window of the events stream at natsURL to d, so
// that a test can outlast it.
func shrinkDuplicateWindow(t *testing.T, natsURL string, d time.Duration) {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	name, err := js.StreamNameBySubject(ctx, "events.probe")
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.Duplicates = d
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("shrinking the duplicate window: %v", err)
	}
}

// storedEventIDs reads every routed event the stream at natsURL holds and counts them by
// the envelope's metadata.eventId.
func storedEventIDs(t *testing.T, natsURL string) map[string]int {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	name, err := js.StreamNameBySubject(ctx, "events.probe")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{eventSubjects},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for remaining := info.NumPending; remaining > 0; {
		batch, err := cons.Fetch(int(min(remaining, 500)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetching events: %v", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			var env struct {
				Metadata struct{ EventID string }
			}
			if err := json.Unmarshal(m.Data(), &env); err != nil {
				t.Fatalf("decoding %s: %v", m.Data(), err)
			}
			counts[env.Metadata.EventID]++
		}
		if batch.Error() != nil || got == 0 {
			t.Fatalf("fetching events: %d of %d read: %v", len(counts), info.NumPending, batch.Error())
		}
		remaining -= uint64(got)
	}
	return counts
}

// assertExactlyOnce fails unless counts holds evt-1..evt-n once each and nothing else.
func assertExactlyOnce(t *testing.T, counts map[string]int, n int) {
	t.Helper()
	missing, dups := 0, 0
	for i := 1; i <= n; i++ {
		switch c := counts[fmt.Sprintf("evt-%d", i)]; {
		case c == 0:
			missing++
			if missing <= 5 {
				t.Errorf("evt-%d is not on the bus", i)
			}
		case c > 1:
			dups++
			if dups <= 5 {
				t.Errorf("evt-%d is on the bus %d times", i, c)
			}
		}
	}
	if len(counts) != n-missing {
		t.Errorf("%d distinct events on the bus, want %d", len(counts), n)
	}
	if missing+dups > 0 {
		t.Errorf("%d of %d events missing, %d duplicated", missing, n, dups)
	}
}

// sender posts numbered requests the way an external app does: until a 2xx, retrying any
// other answer or a failed connection after a short pause, on the next of its targets.
type sender struct {
	client   *http.Client
	targets  func() []string // base URLs, tried in turn
	attempts atomic.Int64
	failures atomic.Int64

	mu      sync.Mutex
	slowest time.Duration
}

func newSender(targets func() []string) *sender {
	return &sender{
		// No keep-alive: a connection to an instance that was closed is not reused.
		client:  &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		targets: targets,
	}
}

// send posts request n to path until a 2xx, starting at target start; it fails the test if
// ctx ends first.
func (s *sender) send(ctx context.Context, t *testing.T, start int, path string, n int) {
	for attempt := start; ; attempt++ {
		if ctx.Err() != nil {
			t.Errorf("request %d: no 2xx before the deadline", n)
			return
		}
		targets := s.targets()
		base := targets[attempt%len(targets)]
		status, took, err := s.post(ctx, base+path, numbered(n))
		s.attempts.Add(1)
		s.mu.Lock()
		s.slowest = max(s.slowest, took)
		s.mu.Unlock()
		if err == nil && status/100 == 2 {
			return
		}
		s.failures.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *sender) post(ctx context.Context, url string, body []byte) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, time.Since(start), err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		return resp.StatusCode, time.Since(start), errors.New("503 without Retry-After")
	}
	return resp.StatusCode, time.Since(start), nil
}

// instance is a server run by a test that may kill it: stopping it gives requests in
// flight a millisecond, then drops them.
type instance struct {
	srv  *server.Server
	base string
	stop func()
}

func startInstance(t *testing.T, cfg server.Config, logs *syncBuffer) *instance {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.PublicURL = publicURL
	cfg.AllowPrivateNetworks = true
	cfg.ShutdownTimeout = time.Millisecond
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("starting the server: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }() // a killed server's shutdown errors are expected
	var once sync.Once
	in := &instance{srv: srv, base: srv.URL()}
	in.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Errorf("server did not stop within 20s")
			}
		})
	}
	t.Cleanup(in.stop)
	return in
}

// faultProxy forwards TCP connections to a target and injects faults on command: refusing
// connections, resetting them, delaying every chunk, or swallowing everything (a silent
// peer). Faults apply to open and new connections alike; heal ends them.
type faultProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  faultMode
	delay time.Duration
	conns map[*proxyConn]struct{}
}

type faultMode int

const (
	faultNone      faultMode = iota
	faultRefuse              // new connections are reset at once
	faultBlackhole           // bytes are swallowed; the connections stay open
)

type proxyConn struct {
	down, up  net.Conn
	swallowed atomic.Bool // bytes were dropped: the stream is broken, close it on heal
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	t.Cleanup(func() {
		ln.Close()
		p.resetAll()
	})
	go p.serve()
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		p.mu.Unlock()
		if mode == faultRefuse {
			reset(c)
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			reset(c)
			continue
		}
		pc := &proxyConn{down: c, up: up}
		p.mu.Lock()
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		go p.pipe(pc, c, up)
		go p.pipe(pc, up, c)
	}
}

// pipe copies src to dst chunk by chunk, applying the fault of the moment to each.
func (p *faultProxy) pipe(pc *proxyConn, src, dst net.Conn) {
	defer func() {
		reset(pc.down)
		reset(pc.up)
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			mode, delay := p.mode, p.delay
			p.mu.Unlock()
			switch {
			case mode == faultBlackhole:
				pc.swallowed.Store(true)
				continue
			case pc.swallowed.Load():
				return
			}
			if delay > 0 {
				time.Sleep(delay)
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// reset closes c with a TCP RST rather than a FIN, as a crashed or unreachable peer does.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (p *faultProxy) set(mode faultMode, delay time.Duration) {
	p.mu.Lock()
	p.mode, p.delay = mode, delay
	var broken []*proxyConn
	if mode == faultNone {
		for pc := range p.conns {
			if pc.swallowed.Load() {
				broken = append(broken, pc)
			}
		}
	}
	p.mu.Unlock()
	for _, pc := range broken {
		reset(pc.down)
		reset(pc.up)
	}
}

// cut resets every open connection and refuses new ones until heal.
func (p *faultProxy) cut() {
	p.set(faultRefuse, 0)
	p.resetAll()
}

// resetOpen resets every open connection once; new ones go through.
func (p *faultProxy) resetOpen() { p.resetAll() }

// slow delays every chunk by d.
func (p *faultProxy) slow(d time.Duration) { p.set(faultNone, d) }

// blackhole swallows every byte, in both directions, until heal.
func (p *faultProxy) blackhole() { p.set(faultBlackhole, 0) }

// heal ends every fault; connections that lost bytes are reset, so clients reconnect.
func (p *faultProxy) heal() { p.set(faultNone, 0) }

func (p *faultProxy) resetAll() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, pc := range conns {
		reset(pc.down)
		reset(pc.up)
	}
}
