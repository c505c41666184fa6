package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/storetest"
)

// relay is an Invalidator that hands every invalidation to the stores of the other
// processes, the way the server's NATS subscription does.
type relay struct {
	mu      sync.Mutex
	stores  []*Store
	offline atomic.Bool
}

func (r *relay) Publish(subject string, data []byte) error {
	if subject != InvalidationSubject {
		return errors.New("unexpected subject " + subject)
	}
	if r.offline.Load() {
		return errors.New("offline")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.stores {
		s.Invalidate(string(data))
	}
	return nil
}

func (r *relay) IsConnected() bool { return !r.offline.Load() }

func (r *relay) open(t *testing.T, url, prefix string) *Store {
	t.Helper()
	s := openTestStoreAt(t, url, prefix)
	s.EnableCache(r, CacheConfig{})
	r.mu.Lock()
	r.stores = append(r.stores, s)
	r.mu.Unlock()
	return s
}

// The cache changes nothing a store promises.
func TestConformanceCached(t *testing.T) {
	url := testRedisURL()
	storetest.Run(t, func(t *testing.T) store.Store {
		return (&relay{}).open(t, url, randomPrefix(t))
	})
}

// Two processes share one Redis: what one writes, the other reads at once, though it had
// read (and cached) the old state before.
func TestCacheInvalidatedAcrossProcesses(t *testing.T) {
	url := testRedisURL()
	prefix := randomPrefix(t)
	r := &relay{}
	a, b := r.open(t, url, prefix), r.open(t, url, prefix)
	ctx := t.Context()
	now := time.Now().UTC()

	createConnection(t, a, now)
	token, err := a.WebhookToken(ctx, "int", "wh")
	if err != nil {
		t.Fatal(err)
	}
	match := func(t *testing.T, want int) {
		t.Helper()
		for range 3 { // the third read is answered by the cache (see admit)
			m, err := b.MatchRoutes(ctx, "int", "wh", []string{"user:1"})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(m["user:1"]); got != want {
				t.Fatalf("routes of user:1: %d, want %d", got, want)
			}
		}
	}
	connector := func(t *testing.T, want string) {
		t.Helper()
		for range 2 {
			in, err := b.GetIntegration(ctx, "int")
			if err != nil {
				t.Fatal(err)
			}
			if in.ConnectorKey != want {
				t.Fatalf("connector %q, want %q", in.ConnectorKey, want)
			}
		}
	}
	sub := store.Subscription{ID: "sub", ConnectionID: "conn", EventKey: "ev", Status: "subscribed",
		GlobalWebhookKey: "wh", Selector: "user:1", CreatedAt: now, UpdatedAt: now}

	t.Run("subscription created", func(t *testing.T) {
		match(t, 0)
		if err := a.CreateSubscription(ctx, sub); err != nil {
			t.Fatal(err)
		}
		match(t, 1)
	})
	t.Run("subscription moved to another selector", func(t *testing.T) {
		moved := sub
		moved.Selector = "user:2"
		if err := a.UpdateSubscription(ctx, moved); err != nil {
			t.Fatal(err)
		}
		match(t, 0)
		if err := a.UpdateSubscription(ctx, sub); err != nil {
			t.Fatal(err)
		}
		match(t, 1)
	})
	t.Run("subscription deleted", func(t *testing.T) {
		if err := a.DeleteSubscription(ctx, "sub"); err != nil {
			t.Fatal(err)
		}
		match(t, 0)
	})
	t.Run("connection deleted", func(t *testing.T) {
		if err := a.CreateSubscription(ctx, sub); err != nil {
			t.Fatal(err)
		}
		match(t, 1)
		if err := a.DeleteConnection(ctx, "conn"); err != nil {
			t.Fatal(err)
		}
		match(t, 0)
	})
	t.Run("integration updated", func(t *testing.T) {
		connector(t, "example")
		if err := a.UpdateIntegration(ctx, store.Integration{Key: "int", ConnectorKey: "other", CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		connector(t, "other")
	})
	t.Run("integration deleted", func(t *testing.T) {
		for range 2 {
			if ik, wk, err := b.ResolveWebhookToken(ctx, token); err != nil || ik != "int" || wk != "wh" {
				t.Fatalf("resolving the token: %q %q %v", ik, wk, err)
			}
		}
		if err := a.DeleteIntegration(ctx, "int"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.ResolveWebhookToken(ctx, token); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("resolving the deleted integration's token: %v, want ErrNotFound", err)
		}
		if _, err := b.GetIntegration(ctx, "int"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("reading the deleted integration: %v, want ErrNotFound", err)
		}
	})
}

// While the invalidations cannot travel, nothing is answered from the cache; back online,
// the server drops it all (InvalidateAll) before it is used again.
func TestCacheBypassedWhileDisconnected(t *testing.T) {
	url := testRedisURL()
	prefix := randomPrefix(t)
	r := &relay{}
	b := r.open(t, url, prefix)
	writer := openTestStoreAt(t, url, prefix) // writes Redis without invalidating
	ctx := context.Background()
	now := time.Now().UTC()
	if err := writer.CreateIntegration(ctx, store.Integration{Key: "int", ConnectorKey: "one", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		t.Helper()
		in, err := b.GetIntegration(ctx, "int")
		if err != nil {
			t.Fatal(err)
		}
		return in.ConnectorKey
	}
	read() // cached
	r.offline.Store(true)
	if err := writer.UpdateIntegration(ctx, store.Integration{Key: "int", ConnectorKey: "two", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "two" {
		t.Fatalf("offline: read %q, want two", got)
	}
	r.offline.Store(false)
	b.InvalidateAll()
	if got := read(); got != "two" {
		t.Fatalf("back online: read %q, want two", got)
	}
}

// A read that raced a write does not put the old value back after the invalidation.
func TestCacheReadRacingInvalidation(t *testing.T) {
	s := &Store{}
	s.EnableCache(&relay{}, CacheConfig{})
	st, ok := s.cache.stamp()
	if !ok {
		t.Fatal("no stamp while connected")
	}
	s.Invalidate("int") // the write lands while the read is in flight
	s.cache.putIntegration(store.Integration{Key: "int"}, st)
	if _, ok := s.cache.lookupIntegration("int"); ok {
		t.Fatal("the value read before the invalidation was cached")
	}
}

// A selector's routes are cached from its second lookup on, not its first: shown by a
// writer that changes Redis without invalidating, which only a cached answer hides.
func TestCacheAdmitsSelectorsSeenTwice(t *testing.T) {
	url := testRedisURL()
	prefix := randomPrefix(t)
	b := (&relay{}).open(t, url, prefix)
	writer := openTestStoreAt(t, url, prefix)
	ctx := t.Context()
	now := time.Now().UTC()
	createConnection(t, writer, now)
	sub := store.Subscription{ID: "sub", ConnectionID: "conn", EventKey: "ev", Status: "subscribed",
		GlobalWebhookKey: "wh", Selector: "user:1", CreatedAt: now, UpdatedAt: now}
	routes := func() int {
		t.Helper()
		m, err := b.MatchRoutes(ctx, "int", "wh", []string{"user:1"})
		if err != nil {
			t.Fatal(err)
		}
		return len(m["user:1"])
	}
	if err := writer.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	if got := routes(); got != 1 { // first sighting: read, not cached
		t.Fatalf("first lookup: %d routes, want 1", got)
	}
	if err := writer.DeleteSubscription(ctx, "sub"); err != nil {
		t.Fatal(err)
	}
	if got := routes(); got != 0 { // second sighting: read from Redis, and cached
		t.Fatalf("second lookup after an uninvalidated delete: %d routes, want 0 (the first must not be cached)", got)
	}
	if err := writer.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	if got := routes(); got != 0 {
		t.Fatalf("third lookup: %d routes, want the cached 0 (the second must be cached)", got)
	}
}

// Selector entries that died (expired here) are swept as new ones come in, so that the cache
// does not stay full of entries nobody reads.
func TestCacheSweepsDeadRoutes(t *testing.T) {
	s := &Store{}
	s.EnableCache(&relay{}, CacheConfig{MaxAge: time.Minute})
	c := s.cache
	clock := time.Now()
	c.now = func() time.Time { return clock }
	put := func(sel string) {
		st, _ := c.stamp()
		for range 2 { // admitted on its second sighting
			c.putRoutes("int", "wh", []string{sel}, map[string][]store.Route{}, st)
		}
	}
	for i := range 1000 {
		put("old:" + strconv.Itoa(i))
	}
	if len(c.routes) != 1000 {
		t.Fatalf("%d entries after 1000 puts", len(c.routes))
	}
	clock = clock.Add(2 * time.Minute) // every old entry has expired
	for i := range 1000 {
		put("new:" + strconv.Itoa(i))
	}
	old := 0
	for k := range c.routes {
		if strings.HasPrefix(k.selector, "old:") {
			old++
		}
	}
	if old > 400 {
		t.Fatalf("%d of 1000 expired entries left after 1000 new ones: the sweep does not keep up", old)
	}
}

// createConnection writes integration "int" (connector "example") and its connection "conn"
// (customer "cust"), which the routing tests subscribe with.
func createConnection(t *testing.T, s *Store, now time.Time) {
	t.Helper()
	if err := s.CreateIntegration(t.Context(), store.Integration{Key: "int", ConnectorKey: "example", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateConnection(t.Context(), store.Connection{ID: "conn", IntegrationKey: "int", CustomerID: "cust", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
}
