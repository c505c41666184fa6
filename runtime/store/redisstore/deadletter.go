package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// Ingest dead letters (store.IngestDeadLetterStore) live in their integration's slot:
//
//	p:{int:K}:ingest-dead-letters        HASH  dead letter id -> IngestDeadLetter JSON
//	p:{int:K}:ingest-dead-letter-order   ZSET  dead letter ids by CreatedAt (Unix µs), for trimming
//
// A put is one script that checks the integration and trims both to the newest
// store.MaxIngestDeadLetters, so none outlives its integration and none is over the bound,
// whatever runs concurrently. DeleteIntegration removes both with the slot's other keys.

var _ store.IngestDeadLetterStore = (*Store)(nil)

func (sl slot) ingestDeadLetters() string     { return sl.base + ":ingest-dead-letters" }
func (sl slot) ingestDeadLetterOrder() string { return sl.base + ":ingest-dead-letter-order" }

// putIngestDeadLetterScript: KEYS[1] the integration, KEYS[2] the dead letters, KEYS[3]
// their order; ARGV id, JSON, CreatedAt, the most to keep. Returns 0 when the integration is
// missing. Equal scores sort by id, so the oldest go first, the lowest id among equals.
var putIngestDeadLetterScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then
	return 0
end
redis.call("HSET", KEYS[2], ARGV[1], ARGV[2])
redis.call("ZADD", KEYS[3], ARGV[3], ARGV[1])
local extra = redis.call("ZCARD", KEYS[3]) - tonumber(ARGV[4])
if extra > 0 then
	local ids = redis.call("ZRANGE", KEYS[3], 0, extra - 1)
	redis.call("HDEL", KEYS[2], unpack(ids))
	redis.call("ZREM", KEYS[3], unpack(ids))
end
return 1`)

func (s *Store) PutIngestDeadLetter(ctx context.Context, d store.IngestDeadLetter) error {
	if err := d.Check(); err != nil {
		return fmt.Errorf("storing ingest dead letter: %w", err)
	}
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encoding ingest dead letter %q: %w", d.ID, err)
	}
	sl := s.slot(d.IntegrationKey)
	n, err := putIngestDeadLetterScript.Run(ctx, s.rdb, []string{sl.integration(), sl.ingestDeadLetters(), sl.ingestDeadLetterOrder()},
		d.ID, data, strconv.FormatInt(d.CreatedAt.UnixMicro(), 10), strconv.Itoa(store.MaxIngestDeadLetters)).Int()
	if err == nil && n == 0 {
		err = fmt.Errorf("reading integration %q: %w", d.IntegrationKey, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("storing ingest dead letter %q: %w", d.ID, err)
	}
	return nil
}

func (s *Store) ListIngestDeadLetters(ctx context.Context, integrationKey string) ([]store.IngestDeadLetter, error) {
	if !store.ValidKey(integrationKey) {
		return nil, ctx.Err()
	}
	sl := s.slot(integrationKey)
	vals, err := s.rdb.HVals(ctx, sl.ingestDeadLetters()).Result()
	if err != nil {
		return nil, fmt.Errorf("listing ingest dead letters of integration %q: %w", integrationKey, err)
	}
	list := make([]store.IngestDeadLetter, 0, len(vals))
	for _, v := range vals {
		d, err := decode[store.IngestDeadLetter](sl.ingestDeadLetters(), v, nil)
		if err != nil {
			return nil, err
		}
		list = append(list, d)
	}
	store.SortIngestDeadLetters(list)
	return list, nil
}

func (s *Store) GetIngestDeadLetter(ctx context.Context, integrationKey, id string) (store.IngestDeadLetter, error) {
	if !store.ValidKey(integrationKey) || !store.ValidKey(id) {
		return store.IngestDeadLetter{}, fmt.Errorf("reading ingest dead letter %q: %w", id, store.ErrNotFound)
	}
	sl := s.slot(integrationKey)
	data, err := s.rdb.HGet(ctx, sl.ingestDeadLetters(), id).Result()
	d, err := decode[store.IngestDeadLetter](sl.ingestDeadLetters(), data, err)
	if err != nil {
		return store.IngestDeadLetter{}, fmt.Errorf("reading ingest dead letter %q: %w", id, err)
	}
	return d, nil
}

func (s *Store) DeleteIngestDeadLetter(ctx context.Context, integrationKey, id string) error {
	if !store.ValidKey(integrationKey) || !store.ValidKey(id) {
		return fmt.Errorf("deleting ingest dead letter %q: %w", id, store.ErrNotFound)
	}
	sl := s.slot(integrationKey)
	var del *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.HDel(ctx, sl.ingestDeadLetters(), id)
		p.ZRem(ctx, sl.ingestDeadLetterOrder(), id)
		return nil
	})
	if err == nil && del.Val() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("deleting ingest dead letter %q: %w", id, err)
	}
	return nil
}
