package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// Channel keys (see store.ChannelStore). The per-connection hashes live in the integration's
// slot and go with the connection; the global pointer is checked against the hash on every
// lookup, so one left behind by a crash reads as not found:
//
//	p:{int:K}:connection:<id>:channels   HASH    channel key -> channel id
//	p:{int:K}:connection:<id>:cursors    HASH    channel key -> cursor
//	p:{int:K}:active-channels            SET     <connection id>:<channel key>:<subscription id>
//	p:channel:<channel id>               STRING  ChannelRef JSON
//
// The active-channels set is the channel counterpart of the selector index: one member per
// channel subscription, added and removed by index and unindex in the transaction that
// writes the subscription, so ListActiveChannels reads one set per integration and costs in
// proportion to the channel subscriptions, not to the connections. A member names its
// subscription, not only its channel, so that no write has to read the connection's other
// subscriptions to know whether the channel stays active: a channel is active while at
// least one member names it. The three parts pass store.ValidKey, so ':' separates them
// unambiguously.
//
// The set starts empty for channel subscriptions written by versions before it (there was
// no release with channels before it): updating such a subscription indexes it.

var _ store.ChannelStore = (*Store)(nil)

func (sl slot) connectionChannels(id string) string {
	return sl.base + ":connection:" + id + ":channels"
}
func (sl slot) connectionCursors(id string) string { return sl.base + ":connection:" + id + ":cursors" }

// channelKeys are the keys of connection id's channels, deleted with it.
func (sl slot) channelKeys(id string) []string {
	return []string{sl.connectionChannels(id), sl.connectionCursors(id)}
}

func (sl slot) activeChannels() string { return sl.base + ":active-channels" }

// activeChannel is the member of channel subscription sub in its slot's active-channels set.
func activeChannel(sub store.Subscription) string {
	return sub.ConnectionID + ":" + sub.ChannelKey + ":" + sub.ID
}

func (s *Store) channelPointer(id string) string { return s.prefix + ":channel:" + id }

// ChannelID keeps the id in the connection's channels hash, which is the truth, and points
// p:channel:<id> at it. As with webhook tokens, racing callers each try their own candidate
// in one transaction; the first commit wins and the others read it on their retry.
func (s *Store) ChannelID(ctx context.Context, connectionID, channelKey string) (string, error) {
	if !store.ValidKey(channelKey) {
		return "", fmt.Errorf("creating an id for channel %q of connection %q: %w", channelKey, connectionID, store.ErrInvalid)
	}
	sl, err := s.owner(ctx, s.connectionOwner, connectionID)
	if err != nil {
		return "", fmt.Errorf("creating an id for channel %q of connection %q: %w", channelKey, connectionID, err)
	}
	candidate, err := newToken()
	if err != nil {
		return "", err
	}
	var id string
	err = s.atomically(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, sl.connection(connectionID)).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		id, err = tx.HGet(ctx, sl.connectionChannels(connectionID), channelKey).Result()
		if !errors.Is(err, redis.Nil) {
			return err
		}
		id = candidate
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, sl.connectionChannels(connectionID), channelKey, candidate)
			return nil
		})
		return err
	}, sl.connection(connectionID), sl.connectionChannels(connectionID))
	if err != nil {
		return "", fmt.Errorf("creating an id for channel %q of connection %q: %w", channelKey, connectionID, err)
	}
	// Written on every call: a crash before this line is healed by the next call, and the id
	// reaches no one before it is resolvable.
	ref, err := json.Marshal(store.ChannelRef{IntegrationKey: sl.integrationKey, ConnectionID: connectionID, ChannelKey: channelKey})
	if err != nil {
		return "", err
	}
	if err := s.rdb.Set(ctx, s.channelPointer(id), ref, 0).Err(); err != nil {
		return "", fmt.Errorf("creating an id for channel %q of connection %q: %w", channelKey, connectionID, err)
	}
	return id, nil
}

func (s *Store) ResolveChannelID(ctx context.Context, id string) (store.ChannelRef, error) {
	// The id is a secret: it stays out of error messages.
	if !store.ValidKey(id) {
		return store.ChannelRef{}, fmt.Errorf("resolving a channel id: %w", store.ErrNotFound)
	}
	ref, err := get[store.ChannelRef](ctx, s.rdb, s.channelPointer(id))
	if err != nil {
		return store.ChannelRef{}, fmt.Errorf("resolving a channel id: %w", err)
	}
	if !store.ValidKey(ref.IntegrationKey) || !store.ValidKey(ref.ConnectionID) {
		return store.ChannelRef{}, fmt.Errorf("resolving a channel id: %w", store.ErrNotFound)
	}
	current, err := s.rdb.HGet(ctx, s.slot(ref.IntegrationKey).connectionChannels(ref.ConnectionID), ref.ChannelKey).Result()
	if errors.Is(err, redis.Nil) || (err == nil && current != id) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.ChannelRef{}, fmt.Errorf("resolving a channel id: %w", err)
	}
	return ref, nil
}

func (s *Store) ListChannelSubscriptions(ctx context.Context, connectionID, channelKey, eventType string) ([]store.Subscription, error) {
	all, err := s.ListSubscriptions(ctx, connectionID)
	if err != nil {
		return nil, fmt.Errorf("listing subscriptions of channel %q: %w", channelKey, err)
	}
	list := []store.Subscription{}
	for _, sub := range all {
		if sub.ChannelKey == channelKey && (eventType == "" || sub.EventType == eventType) {
			list = append(list, sub)
		}
	}
	return list, nil
}

// ListActiveChannels reads the active-channels set of every listed integration, in one
// pipeline: one command per integration, however many connections there are.
func (s *Store) ListActiveChannels(ctx context.Context) ([]store.ChannelRef, error) {
	integrations, err := s.rdb.SMembers(ctx, s.integrationsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("listing active channels: %w", err)
	}
	integrations = slices.DeleteFunc(integrations, func(ik string) bool { return !store.ValidKey(ik) })
	if len(integrations) == 0 {
		return nil, nil
	}
	// Each set is in its integration's slot: a cluster client splits the pipeline by node.
	members := make([]*redis.StringSliceCmd, len(integrations))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ik := range integrations {
			members[i] = p.SMembers(ctx, s.slot(ik).activeChannels())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing active channels: %w", err)
	}
	var list []store.ChannelRef
	seen := map[store.ChannelRef]bool{}
	for i, m := range members {
		for _, member := range m.Val() {
			connectionID, rest, _ := strings.Cut(member, ":")
			channelKey, subscriptionID, _ := strings.Cut(rest, ":")
			if !store.ValidKey(connectionID) || !store.ValidKey(channelKey) || !store.ValidKey(subscriptionID) {
				continue // not written by this store
			}
			ref := store.ChannelRef{IntegrationKey: integrations[i], ConnectionID: connectionID, ChannelKey: channelKey}
			if !seen[ref] {
				seen[ref] = true
				list = append(list, ref)
			}
		}
	}
	slices.SortFunc(list, func(a, b store.ChannelRef) int {
		return cmp.Or(cmp.Compare(a.ConnectionID, b.ConnectionID), cmp.Compare(a.ChannelKey, b.ChannelKey))
	})
	return list, nil
}

func (s *Store) ChannelCursor(ctx context.Context, connectionID, channelKey string) (string, error) {
	sl, err := s.owner(ctx, s.connectionOwner, connectionID)
	if err != nil {
		return "", fmt.Errorf("reading the cursor of channel %q of connection %q: %w", channelKey, connectionID, err)
	}
	var exists *redis.IntCmd
	var cursor *redis.StringCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, sl.connection(connectionID))
		cursor = p.HGet(ctx, sl.connectionCursors(connectionID), channelKey)
		return nil
	})
	switch {
	case err != nil && !errors.Is(err, redis.Nil):
	case exists.Val() == 0:
		err = store.ErrNotFound
	default:
		return cursor.Val(), nil
	}
	return "", fmt.Errorf("reading the cursor of channel %q of connection %q: %w", channelKey, connectionID, err)
}

func (s *Store) SetChannelCursor(ctx context.Context, connectionID, channelKey, cursor string) error {
	if !store.ValidKey(channelKey) {
		return fmt.Errorf("setting the cursor of channel %q of connection %q: %w", channelKey, connectionID, store.ErrInvalid)
	}
	sl, err := s.owner(ctx, s.connectionOwner, connectionID)
	if err != nil {
		return fmt.Errorf("setting the cursor of channel %q of connection %q: %w", channelKey, connectionID, err)
	}
	// Watching the connection keeps a cursor from outliving a connection deleted meanwhile.
	err = s.atomically(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, sl.connection(connectionID)).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if cursor == "" {
				p.HDel(ctx, sl.connectionCursors(connectionID), channelKey)
			} else {
				p.HSet(ctx, sl.connectionCursors(connectionID), channelKey, cursor)
			}
			return nil
		})
		return err
	}, sl.connection(connectionID))
	if err != nil {
		return fmt.Errorf("setting the cursor of channel %q of connection %q: %w", channelKey, connectionID, err)
	}
	return nil
}

// readChannelIDs watches and reads the channel ids of connection id inside tx, for a delete
// that removes them with the connection.
func readChannelIDs(ctx context.Context, tx *redis.Tx, sl slot, id string) ([]string, error) {
	if err := tx.Watch(ctx, sl.connectionChannels(id)).Err(); err != nil {
		return nil, err
	}
	return tx.HVals(ctx, sl.connectionChannels(id)).Result()
}
