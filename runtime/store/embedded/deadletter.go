package embedded

import (
	"context"
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// Ingest dead letters (store.IngestDeadLetterStore) have two buckets of their own, created
// by the first write:
//
//	ingest-dead-letters        integration \0 dead letter id -> IngestDeadLetter
//	ingest-dead-letter-order   integration \0 CreatedAt (Unix ns, 8 bytes big endian) \0 id -> (empty)
//
// The order bucket sorts an integration's dead letters oldest first, so trimming to the
// newest store.MaxIngestDeadLetters deletes from its front without decoding the records.
const (
	ingestDeadLetters     = "ingest-dead-letters"
	ingestDeadLetterOrder = "ingest-dead-letter-order"
)

var _ store.IngestDeadLetterStore = (*Store)(nil)

// orderKey is d's key in the order bucket.
func orderKey(d store.IngestDeadLetter) []byte {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(d.CreatedAt.UnixNano()))
	k := append(key(d.IntegrationKey), 0)
	k = append(k, ts[:]...)
	k = append(k, 0)
	return append(k, d.ID...)
}

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
		order, err := bucket(tx, ingestDeadLetterOrder)
		if err != nil {
			return err
		}
		if old, err := get[store.IngestDeadLetter](b, key(d.IntegrationKey, d.ID)); err == nil {
			if err := order.Delete(orderKey(old)); err != nil {
				return err
			}
		}
		if err := put(b, key(d.IntegrationKey, d.ID), d); err != nil {
			return err
		}
		if err := order.Put(orderKey(d), nil); err != nil {
			return err
		}
		// Trim: the order keys of the integration, oldest first.
		prefix := append(key(d.IntegrationKey), 0)
		keys := prefixKeys(order, prefix)
		for _, ok := range keys[:max(0, len(keys)-store.MaxIngestDeadLetters)] {
			id := ok[len(prefix)+8+1:]
			if err := b.Delete(key(d.IntegrationKey, string(id))); err != nil {
				return err
			}
			if err := order.Delete(ok); err != nil {
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
		order, err := bucket(tx, ingestDeadLetterOrder)
		if err != nil {
			return err
		}
		d, err := get[store.IngestDeadLetter](b, key(integrationKey, id))
		if err != nil {
			return err
		}
		if err := order.Delete(orderKey(d)); err != nil {
			return err
		}
		return b.Delete(key(integrationKey, id))
	})
	if err != nil {
		return fmt.Errorf("deleting ingest dead letter %q: %w", id, err)
	}
	return nil
}

// deleteIngestDeadLetters removes an integration's dead letters, in its deletion's
// transaction.
func deleteIngestDeadLetters(tx *bbolt.Tx, integrationKey string) error {
	for _, name := range []string{ingestDeadLetters, ingestDeadLetterOrder} {
		b := tx.Bucket([]byte(name))
		if b == nil {
			continue
		}
		for _, k := range prefixKeys(b, append(key(integrationKey), 0)) {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}
