// Package embedded is the store.Store of a single switchboard process: one bbolt file under
// the data directory (conventionally <data-dir>/switchboard.db).
//
// The Store owns the file: bbolt locks it, and a second process opening it gets an error
// after a second instead of waiting forever. Every write is one bbolt read-write
// transaction, so a record, its index entries and its cascades commit together or not at
// all, also across a crash; writes are serialised, reads run concurrently on snapshots.
// Operations check ctx before starting; bbolt transactions themselves cannot be interrupted.
//
// Layout: one bucket per record kind, keyed by key or id and holding the record as JSON, and
// one bucket per index. Composite keys join their parts with NUL; every part but a
// selector passes store.ValidKey and so holds no NUL:
//
//	integrations              key -> Integration
//	connections               id -> Connection
//	subscriptions             id -> Subscription
//	tokens                    token -> {integrationKey, webhookKey}
//	webhook-tokens            integration \0 webhook -> token
//	routes                    integration \0 webhook \0 selector \0 subscription id -> Route
//	integration-connections   integration \0 connection id -> (empty)
//	connection-subscriptions  connection id \0 subscription id -> (empty)
//
// and the channel buckets of channel.go.
//
// A new record kind is a new bucket in bucketNames, with its cascades in the delete
// functions of its owner.
package embedded

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// Bucket names.
const (
	integrations            = "integrations"
	connections             = "connections"
	subscriptions           = "subscriptions"
	tokens                  = "tokens"
	webhookTokens           = "webhook-tokens"
	routes                  = "routes"
	integrationConnections  = "integration-connections"
	connectionSubscriptions = "connection-subscriptions"
	meta                    = "meta"
)

var bucketNames = [...]string{
	integrations, connections, subscriptions, tokens, webhookTokens, routes,
	integrationConnections, connectionSubscriptions, meta,
	channelIDs, connectionChannels, channelCursors, channelSubscriptions,
}

// schemaVersion is kept in the meta bucket so that a later layout can recognise and migrate
// (or refuse) files written by this one. Version 2 added the channel-subscriptions index;
// Open fills it for a version 1 file, and a version 1 switchboard, which would not keep it,
// refuses the file.
const schemaVersion = "2"

// lockTimeout bounds the wait for the file lock held by another process.
const lockTimeout = time.Second

// Store is the embedded store.Store. It is safe for concurrent use.
type Store struct {
	db   *bbolt.DB
	seen seenWriter // group commit of MarkSeen (dedup.go)
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the store file at path, creating its directory when missing.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the store directory: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("opening store %s: %w: another process holds its lock", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range bucketNames {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("creating bucket %s: %w", name, err)
			}
		}
		b := tx.Bucket([]byte(meta))
		switch v := string(b.Get([]byte("version"))); v {
		case schemaVersion:
			return nil
		case "":
			return b.Put([]byte("version"), []byte(schemaVersion))
		case "1":
			if err := indexChannelSubscriptions(tx); err != nil {
				return fmt.Errorf("migrating from layout version 1: %w", err)
			}
			return b.Put([]byte("version"), []byte(schemaVersion))
		default:
			return fmt.Errorf("file has layout version %s, this switchboard reads %s", v, schemaVersion)
		}
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Ping reports whether the file is open.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(tx *bbolt.Tx) error { return nil })
}

// Close closes the file; later calls fail.
func (s *Store) Close(ctx context.Context) error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing store: %w", err)
	}
	return nil
}

func (s *Store) CreateIntegration(ctx context.Context, in store.Integration) error {
	if !store.ValidKey(in.Key) {
		return fmt.Errorf("creating integration %q: %w", in.Key, store.ErrInvalid)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(integrations))
		if b.Get([]byte(in.Key)) != nil {
			return store.ErrExists
		}
		return put(b, key(in.Key), in)
	})
	if err != nil {
		return fmt.Errorf("creating integration %q: %w", in.Key, err)
	}
	return nil
}

func (s *Store) UpdateIntegration(ctx context.Context, in store.Integration) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(integrations))
		if _, err := get[store.Integration](b, key(in.Key)); err != nil {
			return err
		}
		return put(b, key(in.Key), in)
	})
	if err != nil {
		return fmt.Errorf("updating integration %q: %w", in.Key, err)
	}
	return nil
}

func (s *Store) GetIntegration(ctx context.Context, k string) (store.Integration, error) {
	var in store.Integration
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		in, err = get[store.Integration](tx.Bucket([]byte(integrations)), key(k))
		return err
	})
	if err != nil {
		return store.Integration{}, fmt.Errorf("reading integration %q: %w", k, err)
	}
	return in, nil
}

func (s *Store) ListIntegrations(ctx context.Context) ([]store.Integration, error) {
	list := []store.Integration{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(integrations)).ForEach(func(k, v []byte) error {
			in, err := decode[store.Integration](k, v)
			list = append(list, in)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing integrations: %w", err)
	}
	return list, nil
}

func (s *Store) DeleteIntegration(ctx context.Context, k string) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(integrations))
		if _, err := get[store.Integration](b, key(k)); err != nil {
			return err
		}
		for _, id := range suffixes(tx.Bucket([]byte(integrationConnections)), key(k)) {
			c, err := get[store.Connection](tx.Bucket([]byte(connections)), id)
			if err != nil {
				return fmt.Errorf("reading connection %q: %w", id, err)
			}
			if err := deleteConnection(tx, c); err != nil {
				return err
			}
		}
		wt := tx.Bucket([]byte(webhookTokens))
		for _, webhook := range suffixes(wt, key(k)) {
			kw := key(k, string(webhook))
			if err := tx.Bucket([]byte(tokens)).Delete(wt.Get(kw)); err != nil {
				return err
			}
			if err := wt.Delete(kw); err != nil {
				return err
			}
		}
		if err := deleteIngestDeadLetters(tx, k); err != nil {
			return err
		}
		if err := deleteEndpoints(tx, k); err != nil {
			return err
		}
		return b.Delete(key(k))
	})
	if err != nil {
		return fmt.Errorf("deleting integration %q: %w", k, err)
	}
	return nil
}

func (s *Store) WebhookToken(ctx context.Context, integrationKey, webhookKey string) (string, error) {
	switch {
	case !store.ValidKey(integrationKey):
		return "", fmt.Errorf("reading integration %q: %w", integrationKey, store.ErrNotFound)
	case !store.ValidKey(webhookKey):
		return "", fmt.Errorf("creating a token for webhook %q of integration %q: %w", webhookKey, integrationKey, store.ErrInvalid)
	}
	kw := key(integrationKey, webhookKey)
	var token string
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		token = string(tx.Bucket([]byte(webhookTokens)).Get(kw))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("reading the token of webhook %q of integration %q: %w", webhookKey, integrationKey, err)
	}
	if token != "" {
		return token, nil
	}

	// First use: writes are serialised, so checking again inside the write transaction
	// settles races between callers.
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		if _, err := get[store.Integration](tx.Bucket([]byte(integrations)), key(integrationKey)); err != nil {
			return err
		}
		wt := tx.Bucket([]byte(webhookTokens))
		if t := wt.Get(kw); t != nil {
			token = string(t)
			return nil
		}
		t, err := newToken()
		if err != nil {
			return err
		}
		if err := put(tx.Bucket([]byte(tokens)), []byte(t), store.WebhookRef{IntegrationKey: integrationKey, WebhookKey: webhookKey}); err != nil {
			return err
		}
		token = t
		return wt.Put(kw, []byte(t))
	})
	if err != nil {
		return "", fmt.Errorf("creating a token for webhook %q of integration %q: %w", webhookKey, integrationKey, err)
	}
	return token, nil
}

func (s *Store) ResolveWebhookToken(ctx context.Context, token string) (string, string, error) {
	if token == "" {
		return "", "", fmt.Errorf("resolving a webhook token: %w", store.ErrNotFound)
	}
	var owner store.WebhookRef
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		owner, err = get[store.WebhookRef](tx.Bucket([]byte(tokens)), []byte(token))
		return err
	})
	if err != nil {
		// The token itself is a secret: it stays out of the message.
		return "", "", fmt.Errorf("resolving a webhook token: %w", err)
	}
	return owner.IntegrationKey, owner.WebhookKey, nil
}

func (s *Store) CreateConnection(ctx context.Context, c store.Connection) error {
	if !store.ValidKey(c.ID) || !store.ValidKey(c.IntegrationKey) {
		return fmt.Errorf("creating connection %q of integration %q: %w", c.ID, c.IntegrationKey, store.ErrInvalid)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if _, err := get[store.Integration](tx.Bucket([]byte(integrations)), key(c.IntegrationKey)); err != nil {
			return fmt.Errorf("reading integration: %w", err)
		}
		b := tx.Bucket([]byte(connections))
		if b.Get([]byte(c.ID)) != nil {
			return store.ErrExists
		}
		if err := put(b, key(c.ID), c); err != nil {
			return err
		}
		return tx.Bucket([]byte(integrationConnections)).Put(key(c.IntegrationKey, c.ID), nil)
	})
	if err != nil {
		return fmt.Errorf("creating connection %q: %w", c.ID, err)
	}
	return nil
}

func (s *Store) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	var c store.Connection
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		c, err = get[store.Connection](tx.Bucket([]byte(connections)), key(id))
		return err
	})
	if err != nil {
		return store.Connection{}, fmt.Errorf("reading connection %q: %w", id, err)
	}
	return c, nil
}

func (s *Store) ListConnections(ctx context.Context, integrationKey string) ([]store.Connection, error) {
	list := []store.Connection{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if _, err := get[store.Integration](tx.Bucket([]byte(integrations)), key(integrationKey)); err != nil {
			return err
		}
		b := tx.Bucket([]byte(connections))
		for _, id := range suffixes(tx.Bucket([]byte(integrationConnections)), key(integrationKey)) {
			c, err := get[store.Connection](b, id)
			if err != nil {
				return fmt.Errorf("reading connection %q: %w", id, err)
			}
			list = append(list, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing connections of integration %q: %w", integrationKey, err)
	}
	return list, nil
}

func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		c, err := get[store.Connection](tx.Bucket([]byte(connections)), key(id))
		if err != nil {
			return err
		}
		return deleteConnection(tx, c)
	})
	if err != nil {
		return fmt.Errorf("deleting connection %q: %w", id, err)
	}
	return nil
}

// deleteConnection removes c with its subscriptions and their index entries.
func deleteConnection(tx *bbolt.Tx, c store.Connection) error {
	for _, id := range suffixes(tx.Bucket([]byte(connectionSubscriptions)), key(c.ID)) {
		sub, err := get[store.Subscription](tx.Bucket([]byte(subscriptions)), id)
		if err != nil {
			return fmt.Errorf("reading subscription %q: %w", id, err)
		}
		if err := deleteSubscription(tx, sub); err != nil {
			return err
		}
	}
	if err := deleteChannels(tx, c.ID); err != nil {
		return err
	}
	if err := tx.Bucket([]byte(integrationConnections)).Delete(key(c.IntegrationKey, c.ID)); err != nil {
		return err
	}
	return tx.Bucket([]byte(connections)).Delete(key(c.ID))
}

func (s *Store) CreateSubscription(ctx context.Context, sub store.Subscription) error {
	if err := sub.Check(); err != nil {
		return fmt.Errorf("creating subscription: %w", err)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		c, err := get[store.Connection](tx.Bucket([]byte(connections)), key(sub.ConnectionID))
		if err != nil {
			return fmt.Errorf("reading connection %q: %w", sub.ConnectionID, err)
		}
		if err := sub.Bind(c); err != nil {
			return err
		}
		if tx.Bucket([]byte(subscriptions)).Get(key(sub.ID)) != nil {
			return store.ErrExists
		}
		if err := tx.Bucket([]byte(connectionSubscriptions)).Put(key(sub.ConnectionID, sub.ID), nil); err != nil {
			return err
		}
		return putSubscription(tx, sub)
	})
	if err != nil {
		return fmt.Errorf("creating subscription %q: %w", sub.ID, err)
	}
	return nil
}

func (s *Store) UpdateSubscription(ctx context.Context, sub store.Subscription) error {
	if err := sub.Check(); err != nil {
		return fmt.Errorf("updating subscription: %w", err)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		old, err := get[store.Subscription](tx.Bucket([]byte(subscriptions)), key(sub.ID))
		if err != nil {
			return err
		}
		if sub.ConnectionID != old.ConnectionID {
			return fmt.Errorf("moving to connection %q from %q: %w", sub.ConnectionID, old.ConnectionID, store.ErrInvalid)
		}
		c, err := get[store.Connection](tx.Bucket([]byte(connections)), key(sub.ConnectionID))
		if err != nil {
			return fmt.Errorf("reading connection %q: %w", sub.ConnectionID, err)
		}
		if err := sub.Bind(c); err != nil {
			return err
		}
		if err := unindex(tx, old); err != nil {
			return err
		}
		return putSubscription(tx, sub)
	})
	if err != nil {
		return fmt.Errorf("updating subscription %q: %w", sub.ID, err)
	}
	return nil
}

func (s *Store) GetSubscription(ctx context.Context, id string) (store.Subscription, error) {
	var sub store.Subscription
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		sub, err = get[store.Subscription](tx.Bucket([]byte(subscriptions)), key(id))
		return err
	})
	if err != nil {
		return store.Subscription{}, fmt.Errorf("reading subscription %q: %w", id, err)
	}
	return sub, nil
}

func (s *Store) ListSubscriptions(ctx context.Context, connectionID string) ([]store.Subscription, error) {
	list := []store.Subscription{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if _, err := get[store.Connection](tx.Bucket([]byte(connections)), key(connectionID)); err != nil {
			return err
		}
		b := tx.Bucket([]byte(subscriptions))
		for _, id := range suffixes(tx.Bucket([]byte(connectionSubscriptions)), key(connectionID)) {
			sub, err := get[store.Subscription](b, id)
			if err != nil {
				return fmt.Errorf("reading subscription %q: %w", id, err)
			}
			list = append(list, sub)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing subscriptions of connection %q: %w", connectionID, err)
	}
	return list, nil
}

func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		sub, err := get[store.Subscription](tx.Bucket([]byte(subscriptions)), key(id))
		if err != nil {
			return err
		}
		return deleteSubscription(tx, sub)
	})
	if err != nil {
		return fmt.Errorf("deleting subscription %q: %w", id, err)
	}
	return nil
}

// putSubscription writes sub and its index entry: its route in the selector index, or its
// entry in the channel-subscriptions index.
func putSubscription(tx *bbolt.Tx, sub store.Subscription) error {
	if err := put(tx.Bucket([]byte(subscriptions)), key(sub.ID), sub); err != nil {
		return err
	}
	if sub.ChannelKey != "" {
		return indexChannel(tx, sub)
	}
	if sub.GlobalWebhookKey == "" {
		return nil
	}
	return put(tx.Bucket([]byte(routes)), key(sub.IntegrationKey, sub.GlobalWebhookKey, sub.Selector, sub.ID), store.RouteOf(sub))
}

// unindex removes sub's index entry.
func unindex(tx *bbolt.Tx, sub store.Subscription) error {
	if sub.ChannelKey != "" {
		return unindexChannel(tx, sub)
	}
	if sub.GlobalWebhookKey == "" {
		return nil
	}
	return tx.Bucket([]byte(routes)).Delete(key(sub.IntegrationKey, sub.GlobalWebhookKey, sub.Selector, sub.ID))
}

func deleteSubscription(tx *bbolt.Tx, sub store.Subscription) error {
	if err := unindex(tx, sub); err != nil {
		return err
	}
	if err := tx.Bucket([]byte(connectionSubscriptions)).Delete(key(sub.ConnectionID, sub.ID)); err != nil {
		return err
	}
	return tx.Bucket([]byte(subscriptions)).Delete(key(sub.ID))
}

// MatchRoutes scans, in one read transaction, the index prefix of each selector.
func (s *Store) MatchRoutes(ctx context.Context, integrationKey, webhookKey string, selectors []string) (map[string][]store.Route, error) {
	matched := make(map[string][]store.Route, len(selectors))
	if !store.ValidKey(integrationKey) || !store.ValidKey(webhookKey) {
		return matched, ctx.Err()
	}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte(routes)).Cursor()
		for _, sel := range selectors {
			if _, done := matched[sel]; done {
				continue
			}
			var found []store.Route
			prefix := key(integrationKey, webhookKey, sel, "")
			for k, v := c.Seek(prefix); bytes.HasPrefix(k, prefix); k, v = c.Next() {
				// A selector may hold NUL: the key of selector "a\0b" starts with the
				// prefix of selector "a". Subscription ids hold no NUL, so an entry of this
				// selector has none after the prefix.
				if bytes.IndexByte(k[len(prefix):], 0) >= 0 {
					continue
				}
				r, err := decode[store.Route](k, v)
				if err != nil {
					return err
				}
				found = append(found, r)
			}
			if found != nil {
				matched[sel] = found
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("matching routes of webhook %q of integration %q: %w", webhookKey, integrationKey, err)
	}
	return matched, nil
}

func (s *Store) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func (s *Store) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// key joins parts with NUL. With one part it is the part itself.
func key(parts ...string) []byte {
	return []byte(strings.Join(parts, "\x00"))
}

// suffixes returns, in key order, what follows prefix and a NUL in b's keys. It collects
// them before the caller changes b: deleting under a live cursor skips keys.
func suffixes(b *bbolt.Bucket, prefix []byte) [][]byte {
	p := append(bytes.Clone(prefix), 0)
	var out [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(p); bytes.HasPrefix(k, p); k, _ = c.Next() {
		out = append(out, bytes.Clone(k[len(p):]))
	}
	return out
}

func get[T any](b *bbolt.Bucket, k []byte) (T, error) {
	v := b.Get(k)
	if v == nil {
		var zero T
		return zero, store.ErrNotFound
	}
	return decode[T](k, v)
}

func decode[T any](k, v []byte) (T, error) {
	var r T
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("decoding %q: %w", k, err)
	}
	return r, nil
}

func put(b *bbolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %q: %w", k, err)
	}
	return b.Put(k, data)
}

// newToken returns 192 random bits in unpadded base64url: unguessable and URL-safe.
func newToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
