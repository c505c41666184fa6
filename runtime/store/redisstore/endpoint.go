package redisstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// The delivery records (store.EndpointStore) live in their integration's slot:
//
//	p:{int:K}:endpoints                          HASH  endpoint id -> Endpoint JSON
//	p:{int:K}:endpoint:<id>:attempts             LIST  Attempt JSON, newest first, at most store.MaxAttempts
//	p:{int:K}:endpoint:<id>:dead-letters         HASH  dead letter id -> DeadLetter JSON
//	p:{int:K}:endpoint:<id>:dead-letter-order    ZSET  dead letter ids by CreatedAt (Unix ms), for trimming
//
// An attempt or dead letter is written by a script that checks its endpoint first, so none
// outlives its endpoint: DeleteEndpoint removes the endpoint and its keys in one MULTI.

var _ store.EndpointStore = (*Store)(nil)

func (sl slot) endpoints() string { return sl.base + ":endpoints" }
func (sl slot) attempts(endpointID string) string {
	return sl.base + ":endpoint:" + endpointID + ":attempts"
}
func (sl slot) deadLetters(endpointID string) string {
	return sl.base + ":endpoint:" + endpointID + ":dead-letters"
}
func (sl slot) deadLetterOrder(endpointID string) string {
	return sl.base + ":endpoint:" + endpointID + ":dead-letter-order"
}

// endpointKeys are valid keys and ids, so that the storage keys built from them are safe.
func endpointKeys(keys ...string) bool {
	for _, k := range keys {
		if !store.ValidKey(k) {
			return false
		}
	}
	return true
}

// readEndpointKeys watches the integration's endpoints and returns their keys, for
// DeleteIntegration: an endpoint created meanwhile fails its transaction.
func readEndpointKeys(ctx context.Context, tx *redis.Tx, sl slot) ([]string, error) {
	if err := tx.Watch(ctx, sl.endpoints()).Err(); err != nil {
		return nil, err
	}
	ids, err := tx.HKeys(ctx, sl.endpoints()).Result()
	if err != nil {
		return nil, err
	}
	keys := []string{sl.endpoints()}
	for _, id := range ids {
		keys = append(keys, sl.attempts(id), sl.deadLetters(id), sl.deadLetterOrder(id))
	}
	return keys, nil
}

func (s *Store) CreateEndpoint(ctx context.Context, ep store.Endpoint, limit int) error {
	if err := ep.Check(); err != nil {
		return fmt.Errorf("creating endpoint: %w", err)
	}
	data, err := json.Marshal(ep)
	if err != nil {
		return fmt.Errorf("encoding endpoint %q: %w", ep.ID, err)
	}
	sl := s.slot(ep.IntegrationKey)
	err = s.atomically(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, sl.integration()).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("reading integration %q: %w", ep.IntegrationKey, store.ErrNotFound)
		}
		ids, err := tx.HKeys(ctx, sl.endpoints()).Result()
		if err != nil {
			return err
		}
		for _, id := range ids {
			if id == ep.ID {
				return store.ErrExists
			}
		}
		if len(ids) >= limit {
			return fmt.Errorf("integration %q has %d endpoints: %w", ep.IntegrationKey, len(ids), store.ErrLimit)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, sl.endpoints(), ep.ID, data)
			return nil
		})
		return err
	}, sl.integration(), sl.endpoints())
	if err != nil {
		return fmt.Errorf("creating endpoint %q: %w", ep.ID, err)
	}
	return nil
}

// updateEndpointScript replaces an endpoint only when it exists.
var updateEndpointScript = redis.NewScript(`
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 0 then
	return 0
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
return 1`)

func (s *Store) UpdateEndpoint(ctx context.Context, ep store.Endpoint) error {
	if err := ep.Check(); err != nil {
		return fmt.Errorf("updating endpoint: %w", err)
	}
	data, err := json.Marshal(ep)
	if err != nil {
		return fmt.Errorf("encoding endpoint %q: %w", ep.ID, err)
	}
	sl := s.slot(ep.IntegrationKey)
	n, err := updateEndpointScript.Run(ctx, s.rdb, []string{sl.endpoints()}, ep.ID, data).Int()
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("updating endpoint %q: %w", ep.ID, err)
	}
	return nil
}

func (s *Store) GetEndpoint(ctx context.Context, integrationKey, id string) (store.Endpoint, error) {
	if !endpointKeys(integrationKey, id) {
		return store.Endpoint{}, fmt.Errorf("reading endpoint %q of integration %q: %w", id, integrationKey, store.ErrNotFound)
	}
	sl := s.slot(integrationKey)
	data, err := s.rdb.HGet(ctx, sl.endpoints(), id).Result()
	ep, err := decode[store.Endpoint](sl.endpoints(), data, err)
	if err != nil {
		return store.Endpoint{}, fmt.Errorf("reading endpoint %q of integration %q: %w", id, integrationKey, err)
	}
	return ep, nil
}

func (s *Store) ListEndpoints(ctx context.Context, integrationKey string) ([]store.Endpoint, error) {
	list := []store.Endpoint{}
	if !endpointKeys(integrationKey) {
		return list, nil
	}
	sl := s.slot(integrationKey)
	values, err := s.rdb.HVals(ctx, sl.endpoints()).Result()
	if err != nil {
		return nil, fmt.Errorf("listing endpoints of integration %q: %w", integrationKey, err)
	}
	for _, v := range values {
		ep, err := decode[store.Endpoint](sl.endpoints(), v, nil)
		if err != nil {
			return nil, fmt.Errorf("listing endpoints of integration %q: %w", integrationKey, err)
		}
		list = append(list, ep)
	}
	store.SortEndpoints(list)
	return list, nil
}

func (s *Store) DeleteEndpoint(ctx context.Context, integrationKey, id string) error {
	if !endpointKeys(integrationKey, id) {
		return fmt.Errorf("deleting endpoint %q of integration %q: %w", id, integrationKey, store.ErrNotFound)
	}
	sl := s.slot(integrationKey)
	var deleted *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		deleted = p.HDel(ctx, sl.endpoints(), id)
		p.Del(ctx, sl.attempts(id), sl.deadLetters(id), sl.deadLetterOrder(id))
		return nil
	})
	if err == nil && deleted.Val() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("deleting endpoint %q of integration %q: %w", id, integrationKey, err)
	}
	return nil
}

// addAttemptScript pushes an attempt and trims the list, if the endpoint exists.
// KEYS: endpoints hash, attempts list. ARGV: endpoint id, attempt JSON, max attempts.
var addAttemptScript = redis.NewScript(`
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 0 then
	return 0
end
redis.call("LPUSH", KEYS[2], ARGV[2])
redis.call("LTRIM", KEYS[2], 0, tonumber(ARGV[3]) - 1)
return 1`)

func (s *Store) AddAttempt(ctx context.Context, integrationKey string, a store.Attempt) error {
	err := func() error {
		if !endpointKeys(integrationKey, a.EndpointID) {
			return store.ErrNotFound
		}
		data, err := json.Marshal(a)
		if err != nil {
			return err
		}
		sl := s.slot(integrationKey)
		n, err := addAttemptScript.Run(ctx, s.rdb, []string{sl.endpoints(), sl.attempts(a.EndpointID)},
			a.EndpointID, data, store.MaxAttempts).Int()
		if err == nil && n == 0 {
			err = store.ErrNotFound
		}
		return err
	}()
	if err != nil {
		return fmt.Errorf("recording an attempt at endpoint %q of integration %q: %w", a.EndpointID, integrationKey, err)
	}
	return nil
}

func (s *Store) ListAttempts(ctx context.Context, integrationKey, endpointID string) ([]store.Attempt, error) {
	sl := s.slot(integrationKey)
	list, err := listOfEndpoint[store.Attempt](ctx, s, integrationKey, endpointID, sl.attempts(endpointID),
		func(p redis.Pipeliner, key string) *redis.StringSliceCmd { return p.LRange(ctx, key, 0, -1) })
	if err != nil {
		return nil, fmt.Errorf("listing attempts at endpoint %q of integration %q: %w", endpointID, integrationKey, err)
	}
	return list, nil
}

// listOfEndpoint reads the records an endpoint keeps under key (its attempts, its dead
// letters) together with whether the endpoint exists, in one round trip; ErrNotFound when
// it does not.
func listOfEndpoint[T any](ctx context.Context, s *Store, integrationKey, endpointID, key string, read func(p redis.Pipeliner, key string) *redis.StringSliceCmd) ([]T, error) {
	if !endpointKeys(integrationKey, endpointID) {
		return nil, store.ErrNotFound
	}
	var exists *redis.BoolCmd
	var values *redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.HExists(ctx, s.slot(integrationKey).endpoints(), endpointID)
		values = read(p, key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !exists.Val() {
		return nil, store.ErrNotFound
	}
	list := make([]T, 0, len(values.Val()))
	for _, v := range values.Val() {
		r, err := decode[T](key, v, nil)
		if err != nil {
			return nil, err
		}
		list = append(list, r)
	}
	return list, nil
}

// putDeadLetterScript stores a dead letter and drops the oldest beyond the limit, if the
// endpoint exists. KEYS: endpoints hash, dead letters hash, order zset. ARGV: endpoint id,
// dead letter id, JSON, score, max dead letters.
var putDeadLetterScript = redis.NewScript(`
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 0 then
	return 0
end
redis.call("HSET", KEYS[2], ARGV[2], ARGV[3])
redis.call("ZADD", KEYS[3], ARGV[4], ARGV[2])
local excess = redis.call("ZCARD", KEYS[3]) - tonumber(ARGV[5])
if excess > 0 then
	local old = redis.call("ZRANGE", KEYS[3], 0, excess - 1)
	redis.call("ZREM", KEYS[3], unpack(old))
	redis.call("HDEL", KEYS[2], unpack(old))
end
return 1`)

func (s *Store) PutDeadLetter(ctx context.Context, d store.DeadLetter) error {
	if err := d.Check(); err != nil {
		return fmt.Errorf("storing a dead letter: %w", err)
	}
	err := func() error {
		data, err := json.Marshal(d)
		if err != nil {
			return err
		}
		sl := s.slot(d.IntegrationKey)
		n, err := putDeadLetterScript.Run(ctx, s.rdb,
			[]string{sl.endpoints(), sl.deadLetters(d.EndpointID), sl.deadLetterOrder(d.EndpointID)},
			d.EndpointID, d.ID, data, d.CreatedAt.UnixMilli(), store.MaxDeadLetters).Int()
		if err == nil && n == 0 {
			err = store.ErrNotFound
		}
		return err
	}()
	if err != nil {
		return fmt.Errorf("storing dead letter %q of endpoint %q: %w", d.ID, d.EndpointID, err)
	}
	return nil
}

func (s *Store) ListDeadLetters(ctx context.Context, integrationKey, endpointID string) ([]store.DeadLetter, error) {
	sl := s.slot(integrationKey)
	list, err := listOfEndpoint[store.DeadLetter](ctx, s, integrationKey, endpointID, sl.deadLetters(endpointID),
		func(p redis.Pipeliner, key string) *redis.StringSliceCmd { return p.HVals(ctx, key) })
	if err != nil {
		return nil, fmt.Errorf("listing dead letters of endpoint %q of integration %q: %w", endpointID, integrationKey, err)
	}
	store.SortDeadLetters(list)
	return list, nil
}

func (s *Store) GetDeadLetter(ctx context.Context, integrationKey, endpointID, id string) (store.DeadLetter, error) {
	d, err := func() (store.DeadLetter, error) {
		if !endpointKeys(integrationKey, endpointID, id) {
			return store.DeadLetter{}, store.ErrNotFound
		}
		sl := s.slot(integrationKey)
		data, err := s.rdb.HGet(ctx, sl.deadLetters(endpointID), id).Result()
		return decode[store.DeadLetter](sl.deadLetters(endpointID), data, err)
	}()
	if err != nil {
		return store.DeadLetter{}, fmt.Errorf("reading dead letter %q of endpoint %q: %w", id, endpointID, err)
	}
	return d, nil
}

func (s *Store) DeleteDeadLetter(ctx context.Context, integrationKey, endpointID, id string) error {
	err := func() error {
		if !endpointKeys(integrationKey, endpointID, id) {
			return store.ErrNotFound
		}
		sl := s.slot(integrationKey)
		var deleted *redis.IntCmd
		_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			deleted = p.HDel(ctx, sl.deadLetters(endpointID), id)
			p.ZRem(ctx, sl.deadLetterOrder(endpointID), id)
			return nil
		})
		if err == nil && deleted.Val() == 0 {
			return store.ErrNotFound
		}
		return err
	}()
	if err != nil {
		return fmt.Errorf("deleting dead letter %q of endpoint %q: %w", id, endpointID, err)
	}
	return nil
}
