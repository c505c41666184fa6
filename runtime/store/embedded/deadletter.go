package embedded

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// Ingest dead letters (store.IngestDeadLetterStore) have a bucket of their own, created by
// the first write:
//
//	ingest-dead-letters    integration \0 dead letter id -> IngestDeadLetter
//
// Keys sort by id within an integration, which is creation order, so trimming to the newest
// store.MaxIngestDeadLetters deletes from the front without decoding anything.
const ingestDeadLetters = "ingest-dead-letters"

var _ store.IngestDeadLetterStore = (*Store)(nil)

func (s *Store) PutIngestDeadLetter(ctx context.Context, d store.IngestDeadLetter) error {
	if err := d.Check(); err != nil {
		return fmt.Errorf("storing ingest dead letter: %w", err)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte(integrations)).Get(key(d.IntegrationKey)) == nil {
			return fmt.Errorf("reading integration %q: %w", d.IntegrationKey, store.ErrNotFound)
		}
		b, err := bucket(tx, ingestDeadLetters)
		if err != nil {
			return err
		}
		if err := put(b, key(d.IntegrationKey, d.ID), d); err != nil {
			return err
		}
		ids := suffixes(b, key(d.IntegrationKey))
		for i := 0; i < len(ids)-store.MaxIngestDeadLetters; i++ {
			if err := b.Delete(key(d.IntegrationKey, string(ids[i]))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing ingest dead letter %q: %w", d.ID, err)
	}
	return nil
}

func (s *Store) ListIngestDeadLetters(ctx context.Context, integrationKey string) ([]store.IngestDeadLetter, error) {
	var list []store.IngestDeadLetter
	if !store.ValidKey(integrationKey) {
		return list, ctx.Err()
	}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := readBucket(tx, ingestDeadLetters)
		if b == nil {
			return nil
		}
		for _, id := range suffixes(b, key(integrationKey)) {
			d, err := get[store.IngestDeadLetter](b, key(integrationKey, string(id)))
			if err != nil {
				return err
			}
			list = append(list, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing ingest dead letters of integration %q: %w", integrationKey, err)
	}
	store.SortIngestDeadLetters(list)
	return list, nil
}

func (s *Store) GetIngestDeadLetter(ctx context.Context, integrationKey, id string) (store.IngestDeadLetter, error) {
	var d store.IngestDeadLetter
	if !store.ValidKey(integrationKey) || !store.ValidKey(id) {
		return d, fmt.Errorf("reading ingest dead letter %q: %w", id, store.ErrNotFound)
	}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := readBucket(tx, ingestDeadLetters)
		if b == nil {
			return store.ErrNotFound
		}
		var err error
		d, err = get[store.IngestDeadLetter](b, key(integrationKey, id))
		return err
	})
	if err != nil {
		return store.IngestDeadLetter{}, fmt.Errorf("reading ingest dead letter %q: %w", id, err)
	}
	return d, nil
}

func (s *Store) DeleteIngestDeadLetter(ctx context.Context, integrationKey, id string) error {
	if !store.ValidKey(integrationKey) || !store.ValidKey(id) {
		return fmt.Errorf("deleting ingest dead letter %q: %w", id, store.ErrNotFound)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b, err := bucket(tx, ingestDeadLetters)
		if err != nil {
			return err
		}
		k := key(integrationKey, id)
		if b.Get(k) == nil {
			return store.ErrNotFound
		}
		return b.Delete(k)
	})
	if err != nil {
		return fmt.Errorf("deleting ingest dead letter %q: %w", id, err)
	}
	return nil
}

// deleteIngestDeadLetters removes an integration's dead letters, in its deletion's
// transaction.
func deleteIngestDeadLetters(tx *bbolt.Tx, integrationKey string) error {
	b := tx.Bucket([]byte(ingestDeadLetters))
	if b == nil {
		return nil
	}
	for _, id := range suffixes(b, key(integrationKey)) {
		if err := b.Delete(key(integrationKey, string(id))); err != nil {
			return err
		}
	}
	return nil
}
