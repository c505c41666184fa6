package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// The delivery buckets (store.EndpointStore). They are created by the first write that needs
// them, so that files written before endpoints existed open unchanged; a read finding one
// missing sees no records.
//
//	endpoints        integration \0 endpoint id -> Endpoint
//	attempts         integration \0 endpoint id \0 sequence (8 bytes, big endian) -> Attempt
//	dead-letters     integration \0 endpoint id \0 dead letter id -> DeadLetter
const (
	endpoints   = "endpoints"
	attempts    = "attempts"
	deadLetters = "dead-letters"
)

var _ store.EndpointStore = (*Store)(nil)

// bucket returns the named bucket of a write transaction, creating it when missing.
func bucket(tx *bbolt.Tx, name string) (*bbolt.Bucket, error) {
	b, err := tx.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", name, err)
	}
	return b, nil
}

// readBucket returns the named bucket of a read transaction, nil when missing.
func readBucket(tx *bbolt.Tx, name string) *bbolt.Bucket { return tx.Bucket([]byte(name)) }

func (s *Store) CreateEndpoint(ctx context.Context, ep store.Endpoint, limit int) error {
	if err := ep.Check(); err != nil {
		return fmt.Errorf("creating endpoint: %w", err)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if _, err := get[store.Integration](tx.Bucket([]byte(integrations)), key(ep.IntegrationKey)); err != nil {
			return fmt.Errorf("reading integration %q: %w", ep.IntegrationKey, err)
		}
		b, err := bucket(tx, endpoints)
		if err != nil {
			return err
		}
		if b.Get(key(ep.IntegrationKey, ep.ID)) != nil {
			return store.ErrExists
		}
		if n := len(suffixes(b, key(ep.IntegrationKey))); n >= limit {
			return fmt.Errorf("integration %q has %d endpoints: %w", ep.IntegrationKey, n, store.ErrLimit)
		}
		return put(b, key(ep.IntegrationKey, ep.ID), ep)
	})
	if err != nil {
		return fmt.Errorf("creating endpoint %q: %w", ep.ID, err)
	}
	return nil
}

func (s *Store) UpdateEndpoint(ctx context.Context, ep store.Endpoint) error {
	if err := ep.Check(); err != nil {
		return fmt.Errorf("updating endpoint: %w", err)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b, err := bucket(tx, endpoints)
		if err != nil {
			return err
		}
		if b.Get(key(ep.IntegrationKey, ep.ID)) == nil {
			return store.ErrNotFound
		}
		return put(b, key(ep.IntegrationKey, ep.ID), ep)
	})
	if err != nil {
		return fmt.Errorf("updating endpoint %q: %w", ep.ID, err)
	}
	return nil
}

func (s *Store) GetEndpoint(ctx context.Context, integrationKey, id string) (store.Endpoint, error) {
	var ep store.Endpoint
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		ep, err = getEndpoint(tx, integrationKey, id)
		return err
	})
	if err != nil {
		return store.Endpoint{}, fmt.Errorf("reading endpoint %q of integration %q: %w", id, integrationKey, err)
	}
	return ep, nil
}

func getEndpoint(tx *bbolt.Tx, integrationKey, id string) (store.Endpoint, error) {
	b := readBucket(tx, endpoints)
	if b == nil || !store.ValidKey(integrationKey) || !store.ValidKey(id) {
		return store.Endpoint{}, store.ErrNotFound
	}
	return get[store.Endpoint](b, key(integrationKey, id))
}

func (s *Store) ListEndpoints(ctx context.Context, integrationKey string) ([]store.Endpoint, error) {
	list := []store.Endpoint{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := readBucket(tx, endpoints)
		if b == nil || !store.ValidKey(integrationKey) {
			return nil
		}
		for _, id := range suffixes(b, key(integrationKey)) {
			ep, err := get[store.Endpoint](b, key(integrationKey, string(id)))
			if err != nil {
				return err
			}
			list = append(list, ep)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing endpoints of integration %q: %w", integrationKey, err)
	}
	store.SortEndpoints(list)
	return list, nil
}

func (s *Store) DeleteEndpoint(ctx context.Context, integrationKey, id string) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if _, err := getEndpoint(tx, integrationKey, id); err != nil {
			return err
		}
		return deleteEndpoint(tx, integrationKey, id)
	})
	if err != nil {
		return fmt.Errorf("deleting endpoint %q of integration %q: %w", id, integrationKey, err)
	}
	return nil
}

// deleteEndpoint removes an endpoint with its attempts and dead letters.
func deleteEndpoint(tx *bbolt.Tx, integrationKey, id string) error {
	for _, name := range []string{attempts, deadLetters} {
		b := tx.Bucket([]byte(name))
		if b == nil {
			continue
		}
		prefix := append(key(integrationKey, id), 0)
		for _, k := range prefixKeys(b, prefix) {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
	if b := tx.Bucket([]byte(endpoints)); b != nil {
		return b.Delete(key(integrationKey, id))
	}
	return nil
}

// deleteEndpoints removes every endpoint of an integration, for DeleteIntegration.
func deleteEndpoints(tx *bbolt.Tx, integrationKey string) error {
	b := tx.Bucket([]byte(endpoints))
	if b == nil {
		return nil
	}
	for _, id := range suffixes(b, key(integrationKey)) {
		if err := deleteEndpoint(tx, integrationKey, string(id)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) AddAttempt(ctx context.Context, integrationKey string, a store.Attempt) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if _, err := getEndpoint(tx, integrationKey, a.EndpointID); err != nil {
			return err
		}
		b, err := bucket(tx, attempts)
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		prefix := append(key(integrationKey, a.EndpointID), 0)
		k := binary.BigEndian.AppendUint64(bytes.Clone(prefix), seq)
		if err := put(b, k, a); err != nil {
			return err
		}
		// Sequences grow, so the oldest attempts come first under the prefix.
		keys := prefixKeys(b, prefix)
		for _, old := range keys[:max(0, len(keys)-store.MaxAttempts)] {
			if err := b.Delete(old); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording an attempt at endpoint %q of integration %q: %w", a.EndpointID, integrationKey, err)
	}
	return nil
}

func (s *Store) ListAttempts(ctx context.Context, integrationKey, endpointID string) ([]store.Attempt, error) {
	list := []store.Attempt{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if _, err := getEndpoint(tx, integrationKey, endpointID); err != nil {
			return err
		}
		b := readBucket(tx, attempts)
		if b == nil {
			return nil
		}
		prefix := append(key(integrationKey, endpointID), 0)
		c := b.Cursor()
		for k, v := c.Seek(prefix); bytes.HasPrefix(k, prefix); k, v = c.Next() {
			a, err := decode[store.Attempt](k, v)
			if err != nil {
				return err
			}
			list = append(list, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing attempts at endpoint %q of integration %q: %w", endpointID, integrationKey, err)
	}
	for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
		list[i], list[j] = list[j], list[i]
	}
	return list, nil
}

func (s *Store) PutDeadLetter(ctx context.Context, d store.DeadLetter) error {
	if err := d.Check(); err != nil {
		return fmt.Errorf("storing a dead letter: %w", err)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if _, err := getEndpoint(tx, d.IntegrationKey, d.EndpointID); err != nil {
			return err
		}
		b, err := bucket(tx, deadLetters)
		if err != nil {
			return err
		}
		if err := put(b, key(d.IntegrationKey, d.EndpointID, d.ID), d); err != nil {
			return err
		}
		if len(prefixKeys(b, append(key(d.IntegrationKey, d.EndpointID), 0))) <= store.MaxDeadLetters {
			return nil
		}
		list, err := listDeadLetters(b, d.IntegrationKey, d.EndpointID)
		if err != nil {
			return err
		}
		for _, old := range list[min(len(list), store.MaxDeadLetters):] {
			if err := b.Delete(key(d.IntegrationKey, d.EndpointID, old.ID)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing dead letter %q of endpoint %q: %w", d.ID, d.EndpointID, err)
	}
	return nil
}

// listDeadLetters returns the endpoint's dead letters, newest first.
func listDeadLetters(b *bbolt.Bucket, integrationKey, endpointID string) ([]store.DeadLetter, error) {
	list := []store.DeadLetter{}
	if b == nil {
		return list, nil
	}
	prefix := append(key(integrationKey, endpointID), 0)
	c := b.Cursor()
	for k, v := c.Seek(prefix); bytes.HasPrefix(k, prefix); k, v = c.Next() {
		d, err := decode[store.DeadLetter](k, v)
		if err != nil {
			return nil, err
		}
		list = append(list, d)
	}
	store.SortDeadLetters(list)
	return list, nil
}

func (s *Store) ListDeadLetters(ctx context.Context, integrationKey, endpointID string) ([]store.DeadLetter, error) {
	var list []store.DeadLetter
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		if _, err := getEndpoint(tx, integrationKey, endpointID); err != nil {
			return err
		}
		list, err = listDeadLetters(readBucket(tx, deadLetters), integrationKey, endpointID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing dead letters of endpoint %q of integration %q: %w", endpointID, integrationKey, err)
	}
	return list, nil
}

func (s *Store) GetDeadLetter(ctx context.Context, integrationKey, endpointID, id string) (store.DeadLetter, error) {
	var d store.DeadLetter
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		b := readBucket(tx, deadLetters)
		if b == nil || !store.ValidKey(integrationKey) || !store.ValidKey(endpointID) || !store.ValidKey(id) {
			return store.ErrNotFound
		}
		d, err = get[store.DeadLetter](b, key(integrationKey, endpointID, id))
		return err
	})
	if err != nil {
		return store.DeadLetter{}, fmt.Errorf("reading dead letter %q of endpoint %q: %w", id, endpointID, err)
	}
	return d, nil
}

func (s *Store) DeleteDeadLetter(ctx context.Context, integrationKey, endpointID, id string) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b, err := bucket(tx, deadLetters)
		if err != nil {
			return err
		}
		if !store.ValidKey(integrationKey) || !store.ValidKey(endpointID) || !store.ValidKey(id) {
			return store.ErrNotFound
		}
		k := key(integrationKey, endpointID, id)
		if b.Get(k) == nil {
			return store.ErrNotFound
		}
		return b.Delete(k)
	})
	if err != nil {
		return fmt.Errorf("deleting dead letter %q of endpoint %q: %w", id, endpointID, err)
	}
	return nil
}

// prefixKeys returns copies of b's keys that start with prefix, in order.
func prefixKeys(b *bbolt.Bucket, prefix []byte) [][]byte {
	var out [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		out = append(out, bytes.Clone(k))
	}
	return out
}
