package redisstore

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// # Read cache
//
// With EnableCache, the three reads of every ingest request, ResolveWebhookToken,
// GetIntegration and MatchRoutes (per selector, empty answers included), are answered from
// process memory once read, so that a request costs no Redis round trip for them. The
// cache must never answer with what a write already replaced, on this process or on any
// other sharing the Redis:
//
//   - every write of this Store that can change what those reads return (an integration
//     created, updated or deleted; a connection deleted; a subscription created, updated or
//     deleted) drops the integration's entries here, whatever its outcome (a failed EXEC may
//     still have been applied), and then tells the other processes through the
//     Invalidator, which carries the integration key to each of them (their Invalidate);
//   - an entry is stamped with the invalidation sequence read before its Redis read, and
//     is dead if its integration (or the whole cache) was invalidated since: a read racing a
//     write cannot put the old value back after the invalidation;
//   - while the Invalidator is not connected the cache is bypassed (an invalidation may be
//     in the air), and the server drops everything when it reconnects (InvalidateAll);
//   - an entry lives at most CacheConfig.MaxAge, which bounds the damage of a writer that
//     does not invalidate (a process of an older version, a tool writing Redis directly).
//
// Entries are kept up to CacheConfig.MaxEntries per kind; beyond it an arbitrary entry is
// evicted for each new one.
//
// A selector's routes are cached only when it is looked up a second time while the first
// lookup is still remembered by a small admission filter (the "doorkeeper" of TinyLFU):
// traffic spread over millions of selectors, each seen once in a long while, would
// otherwise fill the cache with entries that are never read again, costing memory and
// garbage collection for no hit. Each new selector entry also drops up to two dead ones
// (expired or invalidated) found at a random place, so that the cache shrinks back to what
// is still being read.

// Invalidator carries cache invalidations to the other processes sharing the Redis.
// *nats.Conn satisfies it (a core NATS publish on InvalidationSubject).
type Invalidator interface {
	Publish(subject string, data []byte) error
	IsConnected() bool
}

// InvalidationSubject is the NATS subject invalidations travel on; the message's data is
// an integration key.
const InvalidationSubject = "switchboard.cache.invalidate"

// CacheConfig tunes EnableCache; zero values take the defaults.
type CacheConfig struct {
	MaxEntries int           // per kind (tokens, integrations, selectors); default 100,000
	MaxAge     time.Duration // default 30s
}

type cache struct {
	inv        Invalidator
	maxEntries int
	maxAge     time.Duration
	now        func() time.Time

	// seq counts invalidations. An entry keeps the seq read before its Redis read; it is
	// valid while that is at least the seq of its integration's last invalidation and of
	// the last InvalidateAll.
	seq atomic.Uint64

	mu           sync.RWMutex
	all          uint64            // seq of the last InvalidateAll
	integrations map[string]uint64 // seq of each integration's last invalidation
	tokens       map[string]tokenEntry
	records      map[string]recordEntry
	routes       map[routeKey]routesEntry

	seed maphash.Seed
	door []atomic.Uint64 // admission filter: the hash of a selector seen once, per slot
}

// doorSlots is the size of the admission filter (512 KiB). A selector is admitted when it
// comes back before about this many other first lookups overwrite its slot.
const doorSlots = 1 << 16

type entryStamp struct {
	seq     uint64
	expires time.Time
}

type tokenEntry struct {
	entryStamp
	owner store.WebhookRef
}

type recordEntry struct {
	entryStamp
	in store.Integration // never handed out: readers get a deep copy of its parameters
}

type routeKey struct{ integration, webhook, selector string }

type routesEntry struct {
	entryStamp
	routes []store.Route // never handed out: readers get copies
}

// EnableCache turns the read cache on (see "Read cache" above). Call it before the Store is
// used; inv must be the connection the other processes' Invalidate listens on.
func (s *Store) EnableCache(inv Invalidator, cfg CacheConfig) {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100_000
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 30 * time.Second
	}
	s.cache = &cache{
		inv: inv, maxEntries: cfg.MaxEntries, maxAge: cfg.MaxAge, now: time.Now,
		integrations: map[string]uint64{},
		tokens:       map[string]tokenEntry{},
		records:      map[string]recordEntry{},
		routes:       map[routeKey]routesEntry{},
		seed:         maphash.MakeSeed(),
		door:         make([]atomic.Uint64, doorSlots),
	}
}

// Invalidate drops what the cache holds of the integration, as told by another process.
func (s *Store) Invalidate(integrationKey string) {
	if c := s.cache; c != nil {
		c.invalidate(integrationKey)
	}
}

// InvalidateAll drops everything the cache holds: after a reconnect of the Invalidator,
// when invalidations may have been missed.
func (s *Store) InvalidateAll() {
	c := s.cache
	if c == nil {
		return
	}
	c.mu.Lock()
	c.all = c.seq.Add(1)
	clear(c.integrations)
	clear(c.tokens)
	clear(c.records)
	clear(c.routes)
	c.mu.Unlock()
}

// changed is deferred by every write that may change a cached read of the integration: it
// drops the local entries and tells the other processes. A failed publish is not returned:
// the write is done, and the other processes' entries expire after MaxAge.
func (s *Store) changed(integrationKey string) {
	c := s.cache
	if c == nil {
		return
	}
	c.invalidate(integrationKey)
	_ = c.inv.Publish(InvalidationSubject, []byte(integrationKey))
}

func (c *cache) invalidate(integrationKey string) {
	c.mu.Lock()
	c.integrations[integrationKey] = c.seq.Add(1)
	c.mu.Unlock()
	// The dead entries stay until they are read, replaced or evicted: dropping them here
	// would mean a scan of every selector entry.
}

// stamp is taken before a Redis read whose answer may be cached; ok is false when the
// cache must be bypassed.
func (c *cache) stamp() (st entryStamp, ok bool) {
	if c == nil || !c.inv.IsConnected() {
		return entryStamp{}, false
	}
	return entryStamp{seq: c.seq.Load(), expires: c.now().Add(c.maxAge)}, true
}

// valid tells whether an entry of the integration may answer; c.mu is held.
func (c *cache) valid(integrationKey string, st entryStamp) bool {
	if st.seq < c.all {
		return false
	}
	if inv, ok := c.integrations[integrationKey]; ok && st.seq < inv {
		return false
	}
	return c.now().Before(st.expires)
}

func (c *cache) lookupToken(token string) (store.WebhookRef, bool) {
	if c == nil || !c.inv.IsConnected() {
		return store.WebhookRef{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.tokens[token]
	if !ok || !c.valid(e.owner.IntegrationKey, e.entryStamp) {
		return store.WebhookRef{}, false
	}
	return e.owner, true
}

func (c *cache) putToken(token string, owner store.WebhookRef, st entryStamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.valid(owner.IntegrationKey, st) { // else invalidated during the read
		makeRoom(c.tokens, c.maxEntries)
		c.tokens[token] = tokenEntry{st, owner}
	}
}

func (c *cache) lookupIntegration(key string) (store.Integration, bool) {
	if c == nil || !c.inv.IsConnected() {
		return store.Integration{}, false
	}
	c.mu.RLock()
	e, ok := c.records[key]
	ok = ok && c.valid(key, e.entryStamp)
	c.mu.RUnlock()
	if !ok {
		return store.Integration{}, false
	}
	in := e.in
	in.Parameters = cloneJSON(in.Parameters)
	return in, true
}

func (c *cache) putIntegration(in store.Integration, st entryStamp) {
	in.Parameters = cloneJSON(in.Parameters)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.valid(in.Key, st) {
		makeRoom(c.records, c.maxEntries)
		c.records[in.Key] = recordEntry{st, in}
	}
}

// cloneJSON deep-copies a value decoded from JSON (maps, slices and scalars).
func cloneJSON[T any](v T) T {
	var clone func(any) any
	clone = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			if v == nil {
				return v
			}
			m := make(map[string]any, len(v))
			for k, e := range v {
				m[k] = clone(e)
			}
			return m
		case []any:
			if v == nil {
				return v
			}
			l := make([]any, len(v))
			for i, e := range v {
				l[i] = clone(e)
			}
			return l
		}
		return v
	}
	return clone(v).(T)
}

// lookupRoutes fills matched with the cached selectors and returns the others.
func (c *cache) lookupRoutes(integrationKey, webhookKey string, selectors []string, matched map[string][]store.Route) (missing []string) {
	if c == nil || !c.inv.IsConnected() {
		return selectors
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, sel := range selectors {
		e, ok := c.routes[routeKey{integrationKey, webhookKey, sel}]
		if !ok || !c.valid(integrationKey, e.entryStamp) {
			missing = append(missing, sel)
			continue
		}
		if len(e.routes) > 0 {
			matched[sel] = slices.Clone(e.routes) // the caller owns what it gets
		}
	}
	return missing
}

// putRoutes caches the routes of the selectors the admission filter lets in.
func (c *cache) putRoutes(integrationKey, webhookKey string, selectors []string, matched map[string][]store.Route, st entryStamp) {
	keys := make([]routeKey, 0, len(selectors))
	for _, sel := range selectors {
		if k := (routeKey{integrationKey, webhookKey, sel}); c.admit(k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid(integrationKey, st) {
		return
	}
	for _, k := range keys {
		c.sweepRoutes()
		makeRoom(c.routes, c.maxEntries)
		c.routes[k] = routesEntry{st, slices.Clone(matched[k.selector])}
	}
}

// admit tells whether k was looked up recently, remembering it for next time if not.
func (c *cache) admit(k routeKey) bool {
	h := maphash.Comparable(c.seed, k) | 1 // never 0, an empty slot
	slot := &c.door[h%doorSlots]
	if slot.Load() == h {
		return true
	}
	slot.Store(h)
	return false
}

// sweepRoutes drops the dead among the (at most) two selector entries at a random place;
// c.mu is held.
func (c *cache) sweepRoutes() {
	n := 0
	for k, e := range c.routes {
		if !c.valid(k.integration, e.entryStamp) {
			delete(c.routes, k)
		}
		if n++; n == 2 {
			return
		}
	}
}

// makeRoom evicts an arbitrary entry (Go's map iteration starts at a random one) while m
// is full.
func makeRoom[K comparable, V any](m map[K]V, max int) {
	for k := range m {
		if len(m) < max {
			return
		}
		delete(m, k)
	}
}
