package server

import (
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-run/switchboard/runtime/store/redisstore"
)

// enableCache turns on the Redis store's read cache (tokens, integrations and selector
// routes, read by every ingest request) and keeps it correct across the processes sharing
// the Redis: each process's writes publish the integration's key on
// redisstore.InvalidationSubject (core NATS, on the bus's connection) and every process
// listens there. The listener is in place before the cache is on, so no invalidation
// published after this returns is missed; after a reconnect, when some may have been, the
// whole cache is dropped. The embedded store is one process's and is not cached.
func (s *Server) enableCache() error {
	st, ok := s.store.(*redisstore.Store)
	if !ok {
		return nil
	}
	nc := s.bus.Conn()
	sub, err := nc.Subscribe(redisstore.InvalidationSubject, func(m *nats.Msg) { st.Invalidate(string(m.Data)) })
	if err != nil {
		return fmt.Errorf("subscribing to cache invalidations: %w", err)
	}
	if err := nc.Flush(); err != nil {
		sub.Unsubscribe()
		return fmt.Errorf("subscribing to cache invalidations: %w", err)
	}
	status := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	go func() {
		for change := range status {
			if change == nats.CLOSED {
				return
			}
			st.InvalidateAll()
		}
	}()
	st.EnableCache(nc, redisstore.CacheConfig{})
	return nil
}
