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
//	p:{int:K}:ingest-dead-letters     HASH  dead letter id -> IngestDeadLetter JSON
//
// A put is one script that checks the integration and trims the hash to the newest
// store.MaxIngestDeadLetters ids, so none outlives its integration and none is over the
// bound, whatever runs concurrently. DeleteIntegration removes the hash with the slot's
// other keys.

var _ store.IngestDeadLetterStore = (*Store)(nil)

func (sl slot) ingestDeadLetters() string { return sl.base + ":ingest-dead-letters" }

// putIngestDeadLetterScript: KEYS[1] the integration, KEYS[2] the dead letters; ARGV id,
// JSON, the most to keep. Returns 0 when the integration is missing.
var putIngestDeadLetterScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then
	return 0
end
redis.call("HSET", KEYS[2], ARGV[1], ARGV[2])
local max = tonumber(ARGV[3])
if redis.call("HLEN", KEYS[2]) > max then
	local ids = redis.call("HKEYS", KEYS[2])
	table.sort(ids)
	for i = 1, #ids - max do
		redis.call("HDEL", KEYS[2], ids[i])
	end
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
	n, err := putIngestDeadLetterScript.Run(ctx, s.rdb, []string{sl.integration(), sl.ingestDeadLetters()},
		d.ID, data, strconv.Itoa(store.MaxIngestDeadLetters)).Int()
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
	n, err := s.rdb.HDel(ctx, s.slot(integrationKey).ingestDeadLetters(), id).Result()
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("deleting ingest dead letter %q: %w", id, err)
	}
	return nil
}
