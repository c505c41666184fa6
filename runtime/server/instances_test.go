package server_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/server"
)

// twoInstances starts two servers on one Redis (a fresh prefix) and one NATS, as two
// processes of one deployment would run, each killable. It returns them with harnesses to
// call their APIs, and the NATS URL.
func twoInstances(t *testing.T) (a, b *instance, ha, hb *harness, natsURL string) {
	t.Helper()
	connectors := numberedConnectors(t, numberedHandle)
	configure := redisBackend(t)
	logs := &syncBuffer{}
	var cfgA, cfgB server.Config
	cfgA.ConnectorsDir, cfgB.ConnectorsDir = connectors, connectors
	configure(&cfgA)
	configure(&cfgB)
	a, b = startInstance(t, cfgA, logs), startInstance(t, cfgB, logs)
	harnessOf := func(in *instance) *harness {
		return &harness{t: t, srv: in.srv, base: in.base, logs: logs, stop: in.stop, rec: &recorder{}}
	}
	return a, b, harnessOf(a), harnessOf(b), cfgA.NATSURL
}

// TestInstancesActAsOne: what is set up through one instance routes the requests received
// by the other, and requests spread over both land on the bus exactly once each, also when
// copies of one request reach both at the same moment.
func TestInstancesActAsOne(t *testing.T) {
	const N = 100
	a, b, ha, hb, natsURL := twoInstances(t)
	path := setUpNumbered(t, ha) // through A only
	if p := hb.webhookPath("n1", "hook"); p != path {
		t.Fatalf("B hands out %s, A %s", p, path)
	}
	hb.must(200, "GET", "/v1/connections/conn_n", nil)

	if r := hb.post(path, "application/json", numbered(1)); r.status != 202 {
		t.Fatalf("B, subscription made through A: %d %s", r.status, r.body)
	}
	if got := storedEventIDs(t, natsURL); got["evt-1"] != 1 {
		t.Fatalf("after one request to B: %v", got)
	}

	s := newSender(func() []string { return []string{a.base, b.base} })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for n := 2 + w; n <= N; n += 8 {
				s.send(ctx, t, n, path, n) // odd to B, even to A
			}
		})
	}
	wg.Wait()
	// Each instance again, with events the other published: nothing new.
	for _, base := range []string{a.base, b.base} {
		for _, n := range []int{2, 3} {
			if status, _, err := s.post(ctx, base+path, numbered(n)); status != 202 || err != nil {
				t.Errorf("a repeat to %s: %d %v", base, status, err)
			}
		}
	}
	// Copies of one new request arriving at both at once: the seen lookups all miss, and
	// JetStream's message ids keep one.
	var copies sync.WaitGroup
	for i := range 10 {
		copies.Go(func() { s.send(ctx, t, i, path, N+1) })
	}
	copies.Wait()
	assertExactlyOnce(t, storedEventIDs(t, natsURL), N+1)
	if f := s.failures.Load(); f != 0 {
		t.Errorf("%d requests failed with both instances up", f)
	}
}

// TestInstanceKilled: one of two instances is killed (its requests in flight dropped) while
// requests are spread over both; a sender retries a failed request at the other, and the
// bus ends up with every event exactly once.
func TestInstanceKilled(t *testing.T) {
	const N = 200
	a, b, ha, _, natsURL := twoInstances(t)
	path := setUpNumbered(t, ha)

	s := newSender(func() []string { return []string{a.base, b.base} })
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	var accepted atomic.Int64
	killed := make(chan time.Time, 1)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for n := 1 + w; n <= N; n += 8 {
				s.send(ctx, t, n, path, n)
				if accepted.Add(1) == N*2/5 {
					go func() {
						a.stop()
						killed <- time.Now()
					}()
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	select {
	case <-killed:
	case <-time.After(20 * time.Second):
		t.Fatal("instance A was not stopped")
	}
	assertExactlyOnce(t, storedEventIDs(t, natsURL), N)
	if s.failures.Load() == 0 {
		t.Errorf("no request failed: A was killed after the requests ended")
	}
	t.Logf("%d requests: %d attempts, %d failed and retried", N, s.attempts.Load(), s.failures.Load())
}
