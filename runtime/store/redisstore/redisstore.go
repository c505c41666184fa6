// Package redisstore is the store.Store that any number of switchboard processes share: a
// Redis server or a Redis Cluster.
//
// # Key layout
//
// Every key starts with the store's prefix (p below). The records of one integration K, with
// their indexes, share the hash tag {int:K}, so they live in one cluster slot and one
// WATCH/MULTI/EXEC transaction may touch any of them (no CROSSSLOT errors on a cluster):
//
//	p:{int:K}:integration                      STRING  Integration JSON
//	p:{int:K}:connections                      SET     ids of K's connections
//	p:{int:K}:connection:<id>                  STRING  Connection JSON
//	p:{int:K}:connection:<id>:subscriptions    SET     ids of the connection's subscriptions
//	p:{int:K}:subscription:<id>                STRING  Subscription JSON
//	p:{int:K}:routes:<webhook>:<selector>      HASH    subscription id -> Route JSON (the selector index)
//	p:{int:K}:tokens                           HASH    webhook key -> token
//
// and the channel keys of channel.go, among them p:{int:K}:active-channels, the index of
// channel subscriptions that ListActiveChannels reads. That index starts empty for channel
// subscriptions written by versions before it: they are not listed until updated.
//
// Lookups that arrive without an integration key go through small global keys, each alone in
// its slot:
//
//	p:integrations                             SET     integration keys, for ListIntegrations
//	p:connection:<id>                          STRING  the integration key of connection <id>
//	p:subscription:<id>                        STRING  the integration key of subscription <id>
//	p:token:<token>                            STRING  {"integrationKey","webhookKey"} of a webhook token
//
// Keys, ids and webhook keys pass store.ValidKey, so they hold no ':', '{' or '}'; a
// selector is the last part of its key and may hold anything.
//
// # Atomicity
//
// A record, its per-integration indexes and its cascades change in one optimistic
// transaction (WATCH the keys read, MULTI/EXEC the writes, again if a watched key changed),
// so a subscription and its selector index entry appear, move and disappear together, and
// MatchRoutes, one pipeline of HVALS, sees a consistent slot. The per-integration records
// are the truth; a global key is only a pointer to them. Writes are ordered so that a crash
// between the two leaves at worst a dangling global key: it is written before its record is
// created and removed after its record is deleted, and every lookup through one checks the
// record, treating a dangling pointer as not found. A create that finds a dangling pointer
// to another integration takes it over. Not covered: deleting a record and re-creating its
// id concurrently, or a crash-dangling id pointer raced by creates in two integrations, may
// leave the new record unreachable by id (it still lists and routes).
package redisstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// DefaultPrefix is the key prefix used when none is given.
const DefaultPrefix = "switchboard"

// maxAttempts bounds the retries of an optimistic transaction whose watched keys keep
// changing under it.
const maxAttempts = 100

var errContended = errors.New("too many concurrent changes, giving up")

// Store is the Redis store.Store. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	owned  bool   // Open made rdb, so Close closes it
	cache  *cache // nil: every read goes to Redis (see EnableCache)
	batch  *batcher
}

var _ store.Store = (*Store)(nil)

// New returns a Store keeping its keys under prefix (DefaultPrefix when empty) in the
// client's Redis. The caller keeps owning the client: Close leaves it open. New panics if
// prefix holds '{' or '}', which would break the hash tags.
func New(client redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		panic(fmt.Sprintf("redisstore: key prefix %q holds a hash tag brace", prefix))
	}
	return &Store{rdb: client, prefix: prefix, batch: &batcher{rdb: client}}
}

// Open connects to the Redis at url and checks that it answers. The URL is either
//
//	redis://[user:password@]host:port[/db][?options]          one server (rediss:// for TLS)
//	redis+cluster://[user:password@]host:port[?addr=host:port&addr=...][&options]
//	                                                          a Redis Cluster (rediss+cluster:// for TLS)
//
// with the options of go-redis's ParseURL and ParseClusterURL; timeouts and retries the URL
// leaves unset fail fast (failfast.go). The Store owns the connection: Close closes it.
func Open(ctx context.Context, url, prefix string) (*Store, error) {
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("opening redis store: key prefix %q holds a hash tag brace", prefix)
	}
	var client redis.UniversalClient
	scheme, rest, _ := strings.Cut(url, "://")
	switch scheme {
	case "redis", "rediss":
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("parsing redis url: %w", err)
		}
		failFast(opts)
		client = redis.NewClient(opts)
	case "redis+cluster", "rediss+cluster":
		opts, err := redis.ParseClusterURL(strings.TrimSuffix(scheme, "+cluster") + "://" + rest)
		if err != nil {
			return nil, fmt.Errorf("parsing redis cluster url: %w", err)
		}
		failFastCluster(opts)
		client = redis.NewClusterClient(opts)
	default:
		return nil, fmt.Errorf("parsing redis url: scheme %q is none of redis, rediss, redis+cluster, rediss+cluster", scheme)
	}
	s := New(client, prefix)
	s.owned = true
	if err := s.Ping(ctx); err != nil {
		client.Close()
		return nil, fmt.Errorf("opening redis store: %w", err)
	}
	return s, nil
}

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("pinging redis: %w", err)
	}
	return nil
}

// Close closes the connection if Open made it.
func (s *Store) Close(ctx context.Context) error {
	if !s.owned {
		return nil
	}
	if err := s.rdb.Close(); err != nil {
		return fmt.Errorf("closing redis client: %w", err)
	}
	return nil
}

// slot names the keys of one integration; they all share its hash tag.
type slot struct {
	integrationKey string
	base           string // p:{int:K}
}

func (s *Store) slot(integrationKey string) slot {
	return slot{integrationKey: integrationKey, base: s.prefix + ":{int:" + integrationKey + "}"}
}

func (sl slot) integration() string         { return sl.base + ":integration" }
func (sl slot) connections() string         { return sl.base + ":connections" }
func (sl slot) connection(id string) string { return sl.base + ":connection:" + id }
func (sl slot) connectionSubscriptions(id string) string {
	return sl.base + ":connection:" + id + ":subscriptions"
}
func (sl slot) subscription(id string) string { return sl.base + ":subscription:" + id }
func (sl slot) routes(webhookKey, selector string) string {
	return sl.base + ":routes:" + webhookKey + ":" + selector
}
func (sl slot) tokens() string { return sl.base + ":tokens" }

// Global keys.
func (s *Store) integrationsKey() string          { return s.prefix + ":integrations" }
func (s *Store) connectionOwner(id string) string { return s.prefix + ":connection:" + id }
func (s *Store) subscriptionOwner(id string) string {
	return s.prefix + ":subscription:" + id
}
func (s *Store) tokenKey(token string) string { return s.prefix + ":token:" + token }

func (s *Store) CreateIntegration(ctx context.Context, in store.Integration) error {
	if !store.ValidKey(in.Key) {
		return fmt.Errorf("creating integration %q: %w", in.Key, store.ErrInvalid)
	}
	data, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding integration %q: %w", in.Key, err)
	}
	defer s.changed(in.Key)
	// The listing entry goes first, so that a crash leaves at worst a dangling one; and again
	// after the record, in case a DeleteIntegration of the same key removed it in between.
	if err := s.rdb.SAdd(ctx, s.integrationsKey(), in.Key).Err(); err != nil {
		return fmt.Errorf("creating integration %q: %w", in.Key, err)
	}
	created, err := s.rdb.SetNX(ctx, s.slot(in.Key).integration(), data, 0).Result()
	if err != nil {
		return fmt.Errorf("creating integration %q: %w", in.Key, err)
	}
	if !created {
		return fmt.Errorf("creating integration %q: %w", in.Key, store.ErrExists)
	}
	if err := s.rdb.SAdd(ctx, s.integrationsKey(), in.Key).Err(); err != nil {
		return fmt.Errorf("creating integration %q: %w", in.Key, err)
	}
	return nil
}

func (s *Store) UpdateIntegration(ctx context.Context, in store.Integration) error {
	if !store.ValidKey(in.Key) {
		return fmt.Errorf("updating integration %q: %w", in.Key, store.ErrNotFound)
	}
	data, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding integration %q: %w", in.Key, err)
	}
	defer s.changed(in.Key)
	updated, err := s.rdb.SetXX(ctx, s.slot(in.Key).integration(), data, 0).Result()
	switch {
	case err != nil:
		return fmt.Errorf("updating integration %q: %w", in.Key, err)
	case !updated:
		return fmt.Errorf("updating integration %q: %w", in.Key, store.ErrNotFound)
	}
	return nil
}

func (s *Store) GetIntegration(ctx context.Context, key string) (store.Integration, error) {
	if !store.ValidKey(key) {
		return store.Integration{}, fmt.Errorf("reading integration %q: %w", key, store.ErrNotFound)
	}
	if in, ok := s.cache.lookupIntegration(key); ok {
		return in, nil
	}
	st, cacheable := s.cache.stamp()
	in, err := get[store.Integration](ctx, s.rdb, s.slot(key).integration())
	if err != nil {
		return store.Integration{}, fmt.Errorf("reading integration %q: %w", key, err)
	}
	if cacheable {
		s.cache.putIntegration(in, st)
	}
	return in, nil
}

func (s *Store) ListIntegrations(ctx context.Context) ([]store.Integration, error) {
	keys, err := s.rdb.SMembers(ctx, s.integrationsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("listing integrations: %w", err)
	}
	// Each record is in its own slot: a pipeline of GETs, not an MGET.
	cmds := make([]*redis.StringCmd, len(keys))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, s.slot(k).integration())
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("listing integrations: %w", err)
	}
	list := []store.Integration{}
	for i, cmd := range cmds {
		data, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue // dangling listing entry
		}
		in, err := decode[store.Integration](keys[i], data, err)
		if err != nil {
			return nil, fmt.Errorf("listing integrations: %w", err)
		}
		list = append(list, in)
	}
	slices.SortFunc(list, func(a, b store.Integration) int { return cmp.Compare(a.Key, b.Key) })
	return list, nil
}

// DeleteIntegration removes every key of the integration's slot in one transaction, then
// the global keys that pointed into it.
func (s *Store) DeleteIntegration(ctx context.Context, key string) error {
	if !store.ValidKey(key) {
		return fmt.Errorf("deleting integration %q: %w", key, store.ErrNotFound)
	}
	sl := s.slot(key)
	defer s.changed(key)
	var connIDs, subIDs, tokens, channelIDs []string
	err := s.atomically(ctx, func(tx *redis.Tx) error {
		connIDs, subIDs, tokens, channelIDs = nil, nil, nil, nil
		n, err := tx.Exists(ctx, sl.integration()).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		if connIDs, err = tx.SMembers(ctx, sl.connections()).Result(); err != nil {
			return err
		}
		var subs []store.Subscription
		for _, id := range connIDs {
			// Watched so that a subscription created or changed meanwhile fails this
			// transaction (or this one fails that): none may outlive its integration.
			cs, ids, err := s.readConnectionSubscriptions(ctx, tx, sl, id)
			if err != nil {
				return err
			}
			subs = append(subs, cs...)
			subIDs = append(subIDs, ids...)
			chans, err := readChannelIDs(ctx, tx, sl, id)
			if err != nil {
				return err
			}
			channelIDs = append(channelIDs, chans...)
		}
		webhookTokens, err := tx.HGetAll(ctx, sl.tokens()).Result()
		if err != nil {
			return err
		}
		for _, t := range webhookTokens {
			tokens = append(tokens, t)
		}

		dead := []string{sl.integration(), sl.connections(), sl.tokens(), sl.activeChannels(), sl.ingestDeadLetters(), sl.ingestDeadLetterOrder()}
		endpointKeys, err := readEndpointKeys(ctx, tx, sl)
		if err != nil {
			return err
		}
		dead = append(dead, endpointKeys...)
		for _, id := range connIDs {
			dead = append(dead, sl.connection(id), sl.connectionSubscriptions(id))
			dead = append(dead, sl.channelKeys(id)...)
		}
		for _, sub := range subs {
			dead = append(dead, sl.subscription(sub.ID))
			if sub.GlobalWebhookKey != "" {
				dead = append(dead, sl.routes(sub.GlobalWebhookKey, sub.Selector))
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, dead...)
			return nil
		})
		return err
	}, sl.integration(), sl.connections(), sl.tokens())
	if err != nil {
		return fmt.Errorf("deleting integration %q: %w", key, err)
	}

	// The global pointers, now dangling, go after the records.
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range connIDs {
			releaseScript.Eval(ctx, p, []string{s.connectionOwner(id)}, key)
		}
		for _, id := range subIDs {
			releaseScript.Eval(ctx, p, []string{s.subscriptionOwner(id)}, key)
		}
		for _, t := range tokens {
			p.Del(ctx, s.tokenKey(t))
		}
		for _, cid := range channelIDs {
			p.Del(ctx, s.channelPointer(cid))
		}
		p.SRem(ctx, s.integrationsKey(), key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting integration %q: removing its index entries: %w", key, err)
	}
	// A CreateIntegration of the same key may have run meanwhile: keep it listed.
	n, err := s.rdb.Exists(ctx, sl.integration()).Result()
	if err == nil && n == 1 {
		err = s.rdb.SAdd(ctx, s.integrationsKey(), key).Err()
	}
	if err != nil {
		return fmt.Errorf("deleting integration %q: %w", key, err)
	}
	return nil
}

// WebhookToken keeps the token in the integration's tokens hash, which is the truth, and
// points p:token:<token> at it. Racing callers each try to set their own candidate in one
// transaction; the first commit wins and the others read it on their retry.
func (s *Store) WebhookToken(ctx context.Context, integrationKey, webhookKey string) (string, error) {
	switch {
	case !store.ValidKey(integrationKey):
		return "", fmt.Errorf("reading integration %q: %w", integrationKey, store.ErrNotFound)
	case !store.ValidKey(webhookKey):
		return "", fmt.Errorf("creating a token for webhook %q of integration %q: %w", webhookKey, integrationKey, store.ErrInvalid)
	}
	sl := s.slot(integrationKey)
	candidate, err := newToken()
	if err != nil {
		return "", err
	}
	var token string
	err = s.atomically(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, sl.integration()).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("reading integration: %w", store.ErrNotFound)
		}
		token, err = tx.HGet(ctx, sl.tokens(), webhookKey).Result()
		if !errors.Is(err, redis.Nil) {
			return err
		}
		token = candidate
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, sl.tokens(), webhookKey, candidate)
			return nil
		})
		return err
	}, sl.integration(), sl.tokens())
	if err != nil {
		return "", fmt.Errorf("creating a token for webhook %q of integration %q: %w", webhookKey, integrationKey, err)
	}
	// Written on every call: a crash before this line is healed by the next call, and the
	// token reaches no one before it is resolvable.
	owner, err := json.Marshal(store.WebhookRef{IntegrationKey: integrationKey, WebhookKey: webhookKey})
	if err != nil {
		return "", err
	}
	if err := s.rdb.Set(ctx, s.tokenKey(token), owner, 0).Err(); err != nil {
		return "", fmt.Errorf("creating a token for webhook %q of integration %q: %w", webhookKey, integrationKey, err)
	}
	return token, nil
}

func (s *Store) ResolveWebhookToken(ctx context.Context, token string) (string, string, error) {
	// The token is a secret: it stays out of error messages.
	if !store.ValidKey(token) {
		return "", "", fmt.Errorf("resolving a webhook token: %w", store.ErrNotFound)
	}
	if owner, ok := s.cache.lookupToken(token); ok {
		return owner.IntegrationKey, owner.WebhookKey, nil
	}
	st, cacheable := s.cache.stamp()
	owner, err := get[store.WebhookRef](ctx, s.rdb, s.tokenKey(token))
	if err != nil {
		return "", "", fmt.Errorf("resolving a webhook token: %w", err)
	}
	// The pointer may dangle: the integration was deleted (and perhaps re-created, with new
	// tokens) while a crash kept it from being removed.
	current, err := s.rdb.HGet(ctx, s.slot(owner.IntegrationKey).tokens(), owner.WebhookKey).Result()
	if errors.Is(err, redis.Nil) || (err == nil && current != token) {
		err = store.ErrNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("resolving a webhook token: %w", err)
	}
	if cacheable {
		s.cache.putToken(token, owner, st)
	}
	return owner.IntegrationKey, owner.WebhookKey, nil
}

func (s *Store) CreateConnection(ctx context.Context, c store.Connection) error {
	if !store.ValidKey(c.ID) || !store.ValidKey(c.IntegrationKey) {
		return fmt.Errorf("creating connection %q of integration %q: %w", c.ID, c.IntegrationKey, store.ErrInvalid)
	}
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding connection %q: %w", c.ID, err)
	}
	sl := s.slot(c.IntegrationKey)
	ownerKey := s.connectionOwner(c.ID)
	claimed, err := s.claim(ctx, ownerKey, c.IntegrationKey, func(owner string) string { return s.slot(owner).connection(c.ID) })
	if err != nil {
		return fmt.Errorf("creating connection %q: %w", c.ID, err)
	}
	err = s.atomically(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, sl.integration()).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("reading integration %q: %w", c.IntegrationKey, store.ErrNotFound)
		}
		if n, err = tx.Exists(ctx, sl.connection(c.ID)).Result(); err != nil {
			return err
		}
		if n == 1 {
			return store.ErrExists
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, sl.connection(c.ID), data, 0)
			p.SAdd(ctx, sl.connections(), c.ID)
			return nil
		})
		return err
	}, sl.integration(), sl.connection(c.ID))
	if err != nil {
		if claimed {
			s.release(ctx, ownerKey, c.IntegrationKey)
		}
		return fmt.Errorf("creating connection %q: %w", c.ID, err)
	}
	return nil
}

func (s *Store) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	sl, err := s.owner(ctx, s.connectionOwner, id)
	if err != nil {
		return store.Connection{}, fmt.Errorf("reading connection %q: %w", id, err)
	}
	c, err := get[store.Connection](ctx, s.rdb, sl.connection(id))
	if err != nil {
		return store.Connection{}, fmt.Errorf("reading connection %q: %w", id, err)
	}
	return c, nil
}

func (s *Store) ListConnections(ctx context.Context, integrationKey string) ([]store.Connection, error) {
	if !store.ValidKey(integrationKey) {
		return nil, fmt.Errorf("listing connections of integration %q: %w", integrationKey, store.ErrNotFound)
	}
	sl := s.slot(integrationKey)
	list, err := listMembers[store.Connection](ctx, s.rdb, sl.integration(), sl.connections(), sl.connection)
	if err != nil {
		return nil, fmt.Errorf("listing connections of integration %q: %w", integrationKey, err)
	}
	slices.SortFunc(list, func(a, b store.Connection) int { return cmp.Compare(a.ID, b.ID) })
	return list, nil
}

func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	sl, err := s.owner(ctx, s.connectionOwner, id)
	if err != nil {
		return fmt.Errorf("deleting connection %q: %w", id, err)
	}
	defer s.changed(sl.integrationKey)
	var subIDs, channelIDs []string
	err = s.atomically(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, sl.connection(id)).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		subs, ids, err := s.readConnectionSubscriptions(ctx, tx, sl, id)
		if err != nil {
			return err
		}
		subIDs = ids
		if channelIDs, err = readChannelIDs(ctx, tx, sl, id); err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, sl.connection(id), sl.connectionSubscriptions(id))
			p.Del(ctx, sl.channelKeys(id)...)
			p.SRem(ctx, sl.connections(), id)
			for _, sub := range subs {
				p.Del(ctx, sl.subscription(sub.ID))
				unindex(ctx, p, sl, sub)
			}
			return nil
		})
		return err
	}, sl.connection(id))
	if err != nil {
		return fmt.Errorf("deleting connection %q: %w", id, err)
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sid := range subIDs {
			releaseScript.Eval(ctx, p, []string{s.subscriptionOwner(sid)}, sl.integrationKey)
		}
		releaseScript.Eval(ctx, p, []string{s.connectionOwner(id)}, sl.integrationKey)
		for _, cid := range channelIDs {
			p.Del(ctx, s.channelPointer(cid))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting connection %q: removing its index entries: %w", id, err)
	}
	return nil
}

// readConnectionSubscriptions watches and reads the subscriptions of connection id, inside
// tx: a change to any of them before EXEC fails the transaction.
func (s *Store) readConnectionSubscriptions(ctx context.Context, tx *redis.Tx, sl slot, id string) ([]store.Subscription, []string, error) {
	if err := tx.Watch(ctx, sl.connectionSubscriptions(id)).Err(); err != nil {
		return nil, nil, err
	}
	ids, err := tx.SMembers(ctx, sl.connectionSubscriptions(id)).Result()
	if err != nil || len(ids) == 0 {
		return nil, nil, err
	}
	keys := make([]string, len(ids))
	for i, sid := range ids {
		keys[i] = sl.subscription(sid)
	}
	if err := tx.Watch(ctx, keys...).Err(); err != nil {
		return nil, nil, err
	}
	subs, err := mget[store.Subscription](ctx, tx, keys)
	return subs, ids, err
}

func (s *Store) CreateSubscription(ctx context.Context, sub store.Subscription) error {
	if err := sub.Check(); err != nil {
		return fmt.Errorf("creating subscription: %w", err)
	}
	sl, err := s.owner(ctx, s.connectionOwner, sub.ConnectionID)
	if err != nil {
		return fmt.Errorf("creating subscription %q: reading connection %q: %w", sub.ID, sub.ConnectionID, err)
	}
	defer s.changed(sl.integrationKey)
	ownerKey := s.subscriptionOwner(sub.ID)
	claimed, err := s.claim(ctx, ownerKey, sl.integrationKey, func(owner string) string { return s.slot(owner).subscription(sub.ID) })
	if err != nil {
		return fmt.Errorf("creating subscription %q: %w", sub.ID, err)
	}
	err = s.atomically(ctx, func(tx *redis.Tx) error {
		c, err := get[store.Connection](ctx, tx, sl.connection(sub.ConnectionID))
		if err != nil {
			return fmt.Errorf("reading connection %q: %w", sub.ConnectionID, err)
		}
		if err := sub.Bind(c); err != nil {
			return err
		}
		n, err := tx.Exists(ctx, sl.subscription(sub.ID)).Result()
		if err != nil {
			return err
		}
		if n == 1 {
			return store.ErrExists
		}
		data, err := json.Marshal(sub)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, sl.subscription(sub.ID), data, 0)
			p.SAdd(ctx, sl.connectionSubscriptions(sub.ConnectionID), sub.ID)
			return index(ctx, p, sl, sub)
		})
		return err
	}, sl.connection(sub.ConnectionID), sl.subscription(sub.ID))
	if err != nil {
		if claimed {
			s.release(ctx, ownerKey, sl.integrationKey)
		}
		return fmt.Errorf("creating subscription %q: %w", sub.ID, err)
	}
	return nil
}

func (s *Store) UpdateSubscription(ctx context.Context, sub store.Subscription) error {
	if err := sub.Check(); err != nil {
		return fmt.Errorf("updating subscription: %w", err)
	}
	sl, err := s.owner(ctx, s.subscriptionOwner, sub.ID)
	if err != nil {
		return fmt.Errorf("updating subscription %q: %w", sub.ID, err)
	}
	defer s.changed(sl.integrationKey)
	err = s.atomically(ctx, func(tx *redis.Tx) error {
		old, err := get[store.Subscription](ctx, tx, sl.subscription(sub.ID))
		if err != nil {
			return err
		}
		if sub.ConnectionID != old.ConnectionID {
			return fmt.Errorf("moving to connection %q from %q: %w", sub.ConnectionID, old.ConnectionID, store.ErrInvalid)
		}
		c, err := get[store.Connection](ctx, tx, sl.connection(sub.ConnectionID))
		if err != nil {
			return fmt.Errorf("reading connection %q: %w", sub.ConnectionID, err)
		}
		if err := sub.Bind(c); err != nil {
			return err
		}
		data, err := json.Marshal(sub)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			unindex(ctx, p, sl, old)
			p.Set(ctx, sl.subscription(sub.ID), data, 0)
			return index(ctx, p, sl, sub)
		})
		return err
	}, sl.subscription(sub.ID), sl.connection(sub.ConnectionID))
	if err != nil {
		return fmt.Errorf("updating subscription %q: %w", sub.ID, err)
	}
	return nil
}

func (s *Store) GetSubscription(ctx context.Context, id string) (store.Subscription, error) {
	sl, err := s.owner(ctx, s.subscriptionOwner, id)
	if err != nil {
		return store.Subscription{}, fmt.Errorf("reading subscription %q: %w", id, err)
	}
	sub, err := get[store.Subscription](ctx, s.rdb, sl.subscription(id))
	if err != nil {
		return store.Subscription{}, fmt.Errorf("reading subscription %q: %w", id, err)
	}
	return sub, nil
}

func (s *Store) ListSubscriptions(ctx context.Context, connectionID string) ([]store.Subscription, error) {
	sl, err := s.owner(ctx, s.connectionOwner, connectionID)
	if err != nil {
		return nil, fmt.Errorf("listing subscriptions of connection %q: %w", connectionID, err)
	}
	list, err := listMembers[store.Subscription](ctx, s.rdb, sl.connection(connectionID), sl.connectionSubscriptions(connectionID), sl.subscription)
	if err != nil {
		return nil, fmt.Errorf("listing subscriptions of connection %q: %w", connectionID, err)
	}
	slices.SortFunc(list, func(a, b store.Subscription) int { return cmp.Compare(a.ID, b.ID) })
	return list, nil
}

func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	sl, err := s.owner(ctx, s.subscriptionOwner, id)
	if err != nil {
		return fmt.Errorf("deleting subscription %q: %w", id, err)
	}
	defer s.changed(sl.integrationKey)
	err = s.atomically(ctx, func(tx *redis.Tx) error {
		sub, err := get[store.Subscription](ctx, tx, sl.subscription(id))
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, sl.subscription(id))
			p.SRem(ctx, sl.connectionSubscriptions(sub.ConnectionID), id)
			unindex(ctx, p, sl, sub)
			return nil
		})
		return err
	}, sl.subscription(id))
	if err != nil {
		return fmt.Errorf("deleting subscription %q: %w", id, err)
	}
	if err := releaseScript.Run(ctx, s.rdb, []string{s.subscriptionOwner(id)}, sl.integrationKey).Err(); err != nil {
		return fmt.Errorf("deleting subscription %q: removing its index entry: %w", id, err)
	}
	return nil
}

// index queues the writes of sub's index entry: its route in the selector index, or its
// member of the active-channels set.
func index(ctx context.Context, p redis.Pipeliner, sl slot, sub store.Subscription) error {
	if sub.ChannelKey != "" {
		p.SAdd(ctx, sl.activeChannels(), activeChannel(sub))
	}
	if sub.GlobalWebhookKey == "" {
		return nil
	}
	route, err := json.Marshal(store.RouteOf(sub))
	if err != nil {
		return err
	}
	p.HSet(ctx, sl.routes(sub.GlobalWebhookKey, sub.Selector), sub.ID, route)
	return nil
}

// unindex queues the removal of sub's index entry.
func unindex(ctx context.Context, p redis.Pipeliner, sl slot, sub store.Subscription) {
	if sub.ChannelKey != "" {
		p.SRem(ctx, sl.activeChannels(), activeChannel(sub))
	}
	if sub.GlobalWebhookKey != "" {
		p.HDel(ctx, sl.routes(sub.GlobalWebhookKey, sub.Selector), sub.ID)
	}
}

// MatchRoutes reads the index hashes of all selectors in one pipeline, shared with the
// lookups of concurrent requests (batch.go); one request's keys are in one slot, so on a
// cluster too they take one round trip to one node.
func (s *Store) MatchRoutes(ctx context.Context, integrationKey, webhookKey string, selectors []string) (map[string][]store.Route, error) {
	matched := make(map[string][]store.Route, len(selectors))
	if !store.ValidKey(integrationKey) || !store.ValidKey(webhookKey) {
		return matched, ctx.Err()
	}
	selectors = s.cache.lookupRoutes(integrationKey, webhookKey, selectors, matched)
	if len(selectors) == 0 {
		return matched, nil
	}
	st, cacheable := s.cache.stamp()
	sl := s.slot(integrationKey)
	selectors = slices.Compact(slices.Sorted(slices.Values(selectors)))
	keys := make([]string, len(selectors))
	for i, sel := range selectors {
		keys[i] = sl.routes(webhookKey, sel)
	}
	vals, err := s.batch.hvals(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("matching routes of webhook %q of integration %q: %w", webhookKey, integrationKey, err)
	}
	for i, sel := range selectors {
		values := vals[i]
		if len(values) == 0 {
			continue
		}
		routes := make([]store.Route, len(values))
		for i, v := range values {
			if err := decodeRoute(v, &routes[i]); err != nil {
				return nil, fmt.Errorf("matching routes of webhook %q of integration %q: decoding route: %w", webhookKey, integrationKey, err)
			}
		}
		slices.SortFunc(routes, func(a, b store.Route) int { return cmp.Compare(a.SubscriptionID, b.SubscriptionID) })
		matched[sel] = routes
	}
	if cacheable {
		s.cache.putRoutes(integrationKey, webhookKey, selectors, matched, st)
	}
	return matched, nil
}

// atomically runs fn with keys watched (all in one slot), again while a watched key changed
// before fn's MULTI/EXEC; fn must therefore be safe to repeat.
func (s *Store) atomically(ctx context.Context, fn func(tx *redis.Tx) error, keys ...string) error {
	for attempt := range maxAttempts {
		err := s.rdb.Watch(ctx, fn, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		// Back off a random while, growing, so that contenders spread out.
		wait := mrand.N(time.Duration(1+min(attempt, 10)) * time.Millisecond)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	return errContended
}

// owner follows the global pointer at ownerKey(id) to the slot of its integration;
// ErrNotFound when there is none. The pointer may dangle: callers read the record.
func (s *Store) owner(ctx context.Context, ownerKey func(string) string, id string) (slot, error) {
	if !store.ValidKey(id) {
		return slot{}, store.ErrNotFound
	}
	integrationKey, err := s.rdb.Get(ctx, ownerKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return slot{}, store.ErrNotFound
	}
	if err != nil {
		return slot{}, err
	}
	return s.slot(integrationKey), nil
}

// claim points the global key ownerKey at integrationKey, before the record is created.
// It reports ErrExists when the pointer is taken by an existing record of another
// integration, and whether it wrote the pointer (so that a failed create can release it).
// A pointer already at integrationKey is left to the create's own transaction to judge.
func (s *Store) claim(ctx context.Context, ownerKey, integrationKey string, recordKey func(owner string) string) (bool, error) {
	for range maxAttempts {
		ok, err := s.rdb.SetNX(ctx, ownerKey, integrationKey, 0).Result()
		if err != nil || ok {
			return ok, err
		}
		owner, err := s.rdb.Get(ctx, ownerKey).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue // released meanwhile
		case err != nil:
			return false, err
		case owner == integrationKey:
			return false, nil
		}
		n, err := s.rdb.Exists(ctx, recordKey(owner)).Result()
		if err != nil {
			return false, err
		}
		if n == 1 {
			return false, store.ErrExists
		}
		// Dangling: take it over, unless it changed since it was read.
		err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			if current, err := tx.Get(ctx, ownerKey).Result(); err != nil || current != owner {
				return redis.TxFailedErr
			}
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, ownerKey, integrationKey, 0)
				return nil
			})
			return err
		}, ownerKey)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, redis.TxFailedErr) {
			return false, err
		}
	}
	return false, errContended
}

// releaseScript deletes a global pointer if it still points at the given integration, so
// that a cleanup never removes a pointer another create has claimed since.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// release undoes a claim after a failed create. It is best effort: a pointer left behind
// dangles, which lookups treat as not found and later creates take over.
func (s *Store) release(ctx context.Context, ownerKey, integrationKey string) {
	releaseScript.Run(context.WithoutCancel(ctx), s.rdb, []string{ownerKey}, integrationKey)
}

// listMembers reads the records whose ids are in the set setKey, after checking that the
// parent record at parentKey exists; all three are in one slot. Members whose record is
// gone (deleted between the two reads) are skipped.
func listMembers[T any](ctx context.Context, rdb redis.UniversalClient, parentKey, setKey string, recordKey func(id string) string) ([]T, error) {
	var exists *redis.IntCmd
	var members *redis.StringSliceCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, parentKey)
		members = p.SMembers(ctx, setKey)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if exists.Val() == 0 {
		return nil, store.ErrNotFound
	}
	keys := make([]string, len(members.Val()))
	for i, id := range members.Val() {
		keys[i] = recordKey(id)
	}
	return mget[T](ctx, rdb, keys)
}

// mget reads the JSON records at keys, all in one slot, skipping missing ones.
func mget[T any](ctx context.Context, c redis.Cmdable, keys []string) ([]T, error) {
	out := []T{}
	if len(keys) == 0 {
		return out, nil
	}
	values, err := c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	for i, v := range values {
		data, ok := v.(string)
		if !ok {
			continue // missing
		}
		r, err := decode[T](keys[i], data, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// get reads the JSON record at key; ErrNotFound when there is none.
func get[T any](ctx context.Context, c redis.Cmdable, key string) (T, error) {
	data, err := c.Get(ctx, key).Result()
	return decode[T](key, data, err)
}

func decode[T any](key, data string, err error) (T, error) {
	var r T
	if errors.Is(err, redis.Nil) {
		return r, store.ErrNotFound
	}
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return r, fmt.Errorf("decoding %s: %w", key, err)
	}
	return r, nil
}

// newToken returns 192 random bits in unpadded base64url: unguessable and URL-safe.
func newToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// decodeRoute reads a selector index entry: the JSON indexSubscription writes,
// {"s":…,"c":…,"o":…,"e":…}, read directly when it is exactly that with no escapes in its
// strings (ids and keys have none), else with encoding/json. Every unmatched-in-cache
// ingest request reads one.
func decodeRoute(v string, r *store.Route) error {
	fields := [4]*string{&r.SubscriptionID, &r.ConnectionID, &r.CustomerID, &r.EventKey}
	rest, ok := strings.CutPrefix(v, "{")
	for i, name := range [4]string{`"s":"`, `"c":"`, `"o":"`, `"e":"`} {
		if !ok {
			break
		}
		if i > 0 {
			rest, ok = strings.CutPrefix(rest, ",")
		}
		if rest, ok = strings.CutPrefix(rest, name); !ok {
			break
		}
		end := strings.IndexByte(rest, '"')
		if end < 0 || strings.ContainsRune(rest[:end], '\\') {
			ok = false
			break
		}
		*fields[i], rest = rest[:end], rest[end+1:]
	}
	if ok && rest == "}" {
		return nil
	}
	*r = store.Route{}
	return json.Unmarshal([]byte(v), r)
}
