package redisstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// Seen marks (store.SeenStore) live in their integration's slot, one key each, expired by
// Redis itself:
//
//	p:{int:K}:seen:<key>                      STRING  "1", with the mark's TTL
//
// They are not removed with their integration: they expire, and an integration installed
// again under the same key would only see its sender's old retries dropped, which is what
// they are.

var _ store.SeenStore = (*Store)(nil)

func (sl slot) seen(key string) string { return sl.base + ":seen:" + key }

// Seen reads every mark with one MGET: the keys share a slot, so on a cluster too it is one
// command to one node.
func (s *Store) Seen(ctx context.Context, integrationKey string, keys []string) ([]bool, error) {
	out := make([]bool, len(keys))
	if len(keys) == 0 || !store.ValidKey(integrationKey) {
		return out, ctx.Err()
	}
	sl := s.slot(integrationKey)
	rk := make([]string, len(keys))
	for i, k := range keys {
		rk[i] = sl.seen(k)
	}
	vals, err := s.rdb.MGet(ctx, rk...).Result()
	if err != nil {
		return nil, fmt.Errorf("reading seen marks of integration %q: %w", integrationKey, err)
	}
	for i, v := range vals {
		out[i] = v != nil
	}
	return out, nil
}

// MarkSeen sets every mark with SET NX PX in one pipeline.
func (s *Store) MarkSeen(ctx context.Context, integrationKey string, keys []string, ttl time.Duration) error {
	if err := checkSeen(integrationKey, keys, ttl); err != nil {
		return err
	}
	if len(keys) == 0 {
		return ctx.Err()
	}
	sl := s.slot(integrationKey)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.SetNX(ctx, sl.seen(k), "1", ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("marking %d events of integration %q seen: %w", len(keys), integrationKey, err)
	}
	return nil
}

func checkSeen(integrationKey string, keys []string, ttl time.Duration) error {
	switch {
	case !store.ValidKey(integrationKey):
		return fmt.Errorf("marking events seen: integration key %q: %w", integrationKey, store.ErrInvalid)
	case ttl < time.Millisecond:
		return fmt.Errorf("marking events seen: ttl %v: %w", ttl, store.ErrInvalid)
	}
	for _, k := range keys {
		if k == "" || strings.IndexByte(k, 0) >= 0 {
			return fmt.Errorf("marking events seen: key %q: %w", k, store.ErrInvalid)
		}
	}
	return nil
}
