package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/server"
)

// faultyBackend starts a server on the real Redis and an in-process NATS, each reached
// through a fault proxy. It returns the harness, the proxies, the webhook path of the
// numbered connector's integration, and the NATS URL to read the stream at (not proxied).
func faultyBackend(t *testing.T) (h *harness, redisProxy, natsProxy *faultProxy, path, natsURL string) {
	t.Helper()
	redisProxy = newFaultProxy(t, "127.0.0.1:6379")
	cfg := server.Config{ConnectorsDir: numberedConnectors(t, numberedHandle)}
	redisBackendAt(t, "redis://"+redisProxy.addr()+"/0")(&cfg)
	natsURL = cfg.NATSURL
	natsProxy = newFaultProxy(t, strings.TrimPrefix(natsURL, "nats://"))
	cfg.NATSURL = "nats://" + natsProxy.addr()
	h = start(t, cfg, &syncBuffer{})
	path = setUpNumbered(t, h)
	return h, redisProxy, natsProxy, path, natsURL
}

// TestFaultsFailFast: with Redis or NATS refusing connections or silent, ingest answers 503
// with Retry-After within about a second (two for a silent NATS, the publish timeout) and
// /readyz names the failing part; once the fault ends, both recover by themselves.
func TestFaultsFailFast(t *testing.T) {
	h, redisProxy, natsProxy, path, natsURL := faultyBackend(t)
	s := newSender(func() []string { return []string{h.base} })

	n := 0
	for _, tt := range []struct {
		name      string
		inject    func()
		heal      func()
		component string
		within    time.Duration
	}{
		{"redis refuses", redisProxy.cut, redisProxy.heal, "store", 1500 * time.Millisecond},
		{"redis is silent", redisProxy.blackhole, redisProxy.heal, "store", 2500 * time.Millisecond},
		{"nats refuses", natsProxy.cut, natsProxy.heal, "bus", 1500 * time.Millisecond},
		{"nats is silent", natsProxy.blackhole, natsProxy.heal, "bus", 3500 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			n++
			tt.inject()
			time.Sleep(100 * time.Millisecond) // a reset connection is noticed
			status, took, err := s.post(t.Context(), h.base+path, numbered(n))
			if err != nil || status != 503 {
				t.Errorf("with %s: %d %v, want 503 with Retry-After", tt.name, status, err)
			}
			if took > tt.within {
				t.Errorf("the 503 took %v, want under %v", took, tt.within)
			}
			var ready struct{ Checks map[string]string }
			h.must(503, "GET", "/readyz", nil).json(t, &ready)
			if ready.Checks[tt.component] == "ok" {
				t.Errorf("readyz checks = %v, want %s failing", ready.Checks, tt.component)
			}

			tt.heal()
			healed := time.Now()
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			s.send(ctx, t, 0, path, n)
			for h.do("GET", "/readyz", nil).status != 200 {
				if ctx.Err() != nil {
					t.Fatalf("not ready 15s after the fault ended")
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("%s: 503 in %v, recovered in %v", tt.name, took.Round(time.Millisecond), time.Since(healed).Round(time.Millisecond))
		})
	}

	t.Run("slow redis and nats still serve", func(t *testing.T) {
		n++
		redisProxy.slow(20 * time.Millisecond)
		natsProxy.slow(20 * time.Millisecond)
		defer redisProxy.heal()
		defer natsProxy.heal()
		status, took, err := s.post(t.Context(), h.base+path, numbered(n))
		if err != nil || status != 202 {
			t.Errorf("slow: %d %v (%v), want 202", status, err, took)
		}
	})

	t.Run("connections reset once are re-opened", func(t *testing.T) {
		n++
		redisProxy.resetOpen()
		natsProxy.resetOpen()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		s.send(ctx, t, 0, path, n)
	})
	assertExactlyOnce(t, storedEventIDs(t, natsURL), n)
}

// TestIngestUnderFaults sends N numbered requests while Redis and NATS are cut, reset,
// slowed and silenced in turn. A sender retries every non-2xx until it gets a 2xx; at the
// end the bus holds every event exactly once.
func TestIngestUnderFaults(t *testing.T) {
	const (
		N       = 200
		senders = 8
	)
	h, redisProxy, natsProxy, path, natsURL := faultyBackend(t)
	s := newSender(func() []string { return []string{h.base} })

	heal := func() { redisProxy.heal(); natsProxy.heal() }
	faults := []struct {
		name string
		on   func()
		hold time.Duration
	}{
		{"redis refuses", redisProxy.cut, 400 * time.Millisecond},
		{"nats refuses", natsProxy.cut, 400 * time.Millisecond},
		{"redis slow", func() { redisProxy.slow(30 * time.Millisecond) }, 600 * time.Millisecond},
		{"nats resets", natsProxy.resetOpen, 0},
		{"redis silent", redisProxy.blackhole, 1200 * time.Millisecond},
		{"nats slow", func() { natsProxy.slow(30 * time.Millisecond) }, 600 * time.Millisecond},
		{"redis resets", redisProxy.resetOpen, 0},
		{"nats silent", natsProxy.blackhole, 1200 * time.Millisecond},
		{"both refuse", func() { redisProxy.cut(); natsProxy.cut() }, 500 * time.Millisecond},
	}

	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	done, stopped := make(chan struct{}), make(chan struct{})
	var injected []string // written by the fault loop until stopped
	go func() {
		defer close(stopped)
		defer heal()
		for i := 0; ; i++ {
			f := faults[i%len(faults)]
			f.on()
			injected = append(injected, f.name)
			select {
			case <-done:
				return
			case <-time.After(f.hold):
			}
			heal()
			select {
			case <-done:
				return
			case <-time.After(400 * time.Millisecond):
			}
		}
	}()

	start := time.Now()
	var wg sync.WaitGroup
	for w := range senders {
		wg.Go(func() {
			for n := w + 1; n <= N; n += senders {
				s.send(ctx, t, 0, path, n)
				time.Sleep(200 * time.Millisecond) // spread the requests over the faults
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(done)
	<-stopped

	counts := storedEventIDs(t, natsURL)
	assertExactlyOnce(t, counts, N)
	s.mu.Lock()
	slowest := s.slowest
	s.mu.Unlock()
	t.Logf("%d requests in %v: %d attempts, %d refused or failed, slowest answer %v; faults %s",
		N, took.Round(time.Millisecond), s.attempts.Load(), s.failures.Load(), slowest.Round(time.Millisecond),
		strings.Join(injected, ", "))
	if s.failures.Load() == 0 {
		t.Errorf("no request failed: the faults did not bite")
	}
	if slowest > 5*time.Second {
		t.Errorf("an answer took %v: requests hang", slowest)
	}
}
