package redisstore

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// Concurrent MatchRoutes calls share pipelines, and each gets its own selectors' routes.
func TestMatchRoutesSharesPipelines(t *testing.T) {
	s := openTestStore(t, testRedisURL())
	ctx := t.Context()
	now := time.Now().UTC()
	createConnection(t, s, now)
	const callers = 200
	for i := range callers / 2 { // the odd users have no subscription
		id := "sub" + strconv.Itoa(2*i)
		if err := s.CreateSubscription(ctx, store.Subscription{ID: id, ConnectionID: "conn", EventKey: "ev", Status: "subscribed",
			GlobalWebhookKey: "wh", Selector: "user:" + strconv.Itoa(2*i), CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	before := s.batch.pipelines.Load()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			<-start
			sel := "user:" + strconv.Itoa(i)
			m, err := s.MatchRoutes(ctx, "int", "wh", []string{sel, "nobody", sel})
			if err != nil {
				t.Error(err)
				return
			}
			want := 0
			if i%2 == 0 {
				want = 1
			}
			if got := len(m[sel]); got != want || len(m) != want {
				t.Errorf("%s: %d routes in %v, want %d", sel, got, m, want)
			} else if want == 1 && m[sel][0].SubscriptionID != "sub"+strconv.Itoa(i) {
				t.Errorf("%s: route %+v, want subscription sub%d", sel, m[sel][0], i)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := s.batch.pipelines.Load() - before; n >= callers {
		t.Errorf("%d pipelines for %d concurrent lookups: none were shared", n, callers)
	}
}

// A caller stops waiting at its own deadline, and a Redis that does not answer fails every
// lookup of the shared pipeline.
func TestMatchRoutesWhenRedisIsSilent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accepts and never answers
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	client := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ReadTimeout: 300 * time.Millisecond, MaxRetries: -1})
	defer client.Close()
	s := New(client, "silent")

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	// Waiting for the pipeline would give the client's read timeout instead.
	if _, err := s.MatchRoutes(ctx, "int", "wh", []string{"user:1"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
	// A caller that gives up while the first pipeline hangs is not sent afterwards.
	gone, cancelGone := context.WithCancel(t.Context())
	cancelGone()
	if _, err := s.MatchRoutes(gone, "int", "wh", []string{"user:2"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the caller's cancellation", err)
	}
	for idle := false; !idle; time.Sleep(10 * time.Millisecond) {
		s.batch.mu.Lock()
		idle = s.batch.running == 0
		s.batch.mu.Unlock()
	}
	if n := s.batch.pipelines.Load(); n != 1 {
		t.Errorf("%d pipelines sent, want 1: the abandoned lookup was sent", n)
	}
	if _, err := s.MatchRoutes(t.Context(), "int", "wh", []string{"user:1"}); err == nil {
		t.Fatal("a lookup against a silent Redis succeeded")
	}
}
