package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
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
//
// Every ingest request with event ids marks them, so MarkSeen is the store's hottest write.
// A bbolt write is one fsync, and writes are serialised: concurrent MarkSeen calls are
// therefore committed together (group commit, seenWriter): a call arriving while a commit
// runs joins the next one, and a lone call commits at once, with no added delay (bbolt's
// Batch would wait for company).
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
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.seen.mark(ctx, s.db, seenMarks{integrationKey, keys, time.Now().Add(ttl)}); err != nil {
		return fmt.Errorf("marking %d events of integration %q seen: %w", len(keys), integrationKey, err)
	}
	return nil
}

// seenMarks are the keys one MarkSeen call marks.
type seenMarks struct {
	integrationKey string
	keys           []string
	expiry         time.Time
}

// seenWriter commits concurrent MarkSeen calls in one bbolt transaction. Whoever finds no
// commit running commits every pending call (its own included); calls arriving meanwhile
// wait, and the next commit is run by a goroutine the finishing committer starts.
type seenWriter struct {
	mu      sync.Mutex
	busy    bool // a commit is running or about to
	pending []seenMarks
	waiters []chan error
}

func (w *seenWriter) mark(ctx context.Context, db *bbolt.DB, m seenMarks) error {
	done := make(chan error, 1)
	w.mu.Lock()
	w.pending = append(w.pending, m)
	w.waiters = append(w.waiters, done)
	commit := !w.busy
	w.busy = true
	w.mu.Unlock()
	if commit {
		w.commit(db)
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err() // the marks may still be written: no harm
	}
}

// commit writes the pending marks in one transaction and answers their callers; marks that
// arrived meanwhile get a commit of their own, started here.
func (w *seenWriter) commit(db *bbolt.DB) {
	w.mu.Lock()
	batch, waiters := w.pending, w.waiters
	w.pending, w.waiters = nil, nil
	w.mu.Unlock()

	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := bucket(tx, seenBucket)
		if err != nil {
			return err
		}
		now := time.Now().UnixMilli()
		for _, m := range batch {
			var expiry [8]byte
			binary.BigEndian.PutUint64(expiry[:], uint64(m.expiry.UnixMilli()))
			for _, k := range m.keys {
				kk := key(m.integrationKey, k)
				if v := b.Get(kk); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) > now {
					continue // the first mark's expiry stands
				}
				if err := b.Put(kk, expiry[:]); err != nil {
					return err
				}
			}
			if err := pruneSeen(b, key(m.integrationKey, m.keys[0]), now); err != nil {
				return err
			}
		}
		return nil
	})
	for _, c := range waiters {
		c <- err
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		w.busy = false
		return
	}
	go w.commit(db)
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
