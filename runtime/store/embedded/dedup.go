package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// Seen marks (store.SeenStore) live in a bucket of their own, created by the first mark:
//
//	seen    integration \0 key -> expiry (Unix milliseconds, 8 bytes big endian)
//
// An expired mark reads as not seen. Marks are pruned lazily: each MarkSeen also looks at
// the pruneSpan marks that follow its first key and deletes the expired ones. The router's
// keys are hashes, so that is a random spot of the integration's marks, and pruneSpan per
// write outpaces the few marks a write adds. Marks are not removed with their integration
// (they expire), for the reason redisstore gives.
const seenBucket = "seen"

// pruneSpan is how many neighbouring marks one MarkSeen checks for expiry.
const pruneSpan = 64

var _ store.SeenStore = (*Store)(nil)

func (s *Store) Seen(ctx context.Context, integrationKey string, keys []string) ([]bool, error) {
	out := make([]bool, len(keys))
	if len(keys) == 0 || !store.ValidKey(integrationKey) {
		return out, ctx.Err()
	}
	now := time.Now().UnixMilli()
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := readBucket(tx, seenBucket)
		if b == nil {
			return nil
		}
		for i, k := range keys {
			if v := b.Get(key(integrationKey, k)); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) > now {
				out[i] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading seen marks of integration %q: %w", integrationKey, err)
	}
	return out, nil
}

func (s *Store) MarkSeen(ctx context.Context, integrationKey string, keys []string, ttl time.Duration) error {
	switch {
	case !store.ValidKey(integrationKey):
		return fmt.Errorf("marking events seen: integration key %q: %w", integrationKey, store.ErrInvalid)
	case ttl < time.Millisecond:
		return fmt.Errorf("marking events seen: ttl %v: %w", ttl, store.ErrInvalid)
	}
	for _, k := range keys {
		if k == "" || bytes.IndexByte([]byte(k), 0) >= 0 {
			return fmt.Errorf("marking events seen: key %q: %w", k, store.ErrInvalid)
		}
	}
	if len(keys) == 0 {
		return ctx.Err()
	}
	now := time.Now()
	var expiry [8]byte
	binary.BigEndian.PutUint64(expiry[:], uint64(now.Add(ttl).UnixMilli()))
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b, err := bucket(tx, seenBucket)
		if err != nil {
			return err
		}
		for _, k := range keys {
			kk := key(integrationKey, k)
			if v := b.Get(kk); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) > now.UnixMilli() {
				continue // the first mark's expiry stands
			}
			if err := b.Put(kk, expiry[:]); err != nil {
				return err
			}
		}
		return pruneSeen(b, key(integrationKey, keys[0]), now.UnixMilli())
	})
	if err != nil {
		return fmt.Errorf("marking %d events of integration %q seen: %w", len(keys), integrationKey, err)
	}
	return nil
}

// pruneSeen deletes the expired marks among the pruneSpan that follow from.
func pruneSeen(b *bbolt.Bucket, from []byte, now int64) error {
	var dead [][]byte
	c := b.Cursor()
	n := 0
	for k, v := c.Seek(from); k != nil && n < pruneSpan; k, v = c.Next() {
		n++
		if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= now {
			dead = append(dead, bytes.Clone(k))
		}
	}
	if n < pruneSpan {
		// Wrap around, so that the marks before the first key get their turn too.
		for k, v := c.First(); k != nil && n < pruneSpan && bytes.Compare(k, from) < 0; k, v = c.Next() {
			n++
			if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= now {
				dead = append(dead, bytes.Clone(k))
			}
		}
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
