package embedded

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/bbolt"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// The channel buckets (see store.ChannelStore); their entries go with their connection, in
// deleteConnection:
//
//	channel-ids            channel id -> ChannelRef
//	connection-channels    connection id \0 channel key -> channel id
//	channel-cursors        connection id \0 channel key -> cursor
//	channel-subscriptions  connection id \0 channel key \0 subscription id -> integration key
//
// channel-subscriptions is the channel counterpart of the routes index, written and removed
// with its subscription (putSubscription, unindex): ListActiveChannels scans it alone, so
// it costs in proportion to the channel subscriptions, not to all subscriptions. Its keys
// sort by connection id and then channel key, so the entries of one channel are adjacent.
const (
	channelIDs           = "channel-ids"
	connectionChannels   = "connection-channels"
	channelCursors       = "channel-cursors"
	channelSubscriptions = "channel-subscriptions"
)

var _ store.ChannelStore = (*Store)(nil)

func (s *Store) ChannelID(ctx context.Context, connectionID, channelKey string) (string, error) {
	if !store.ValidKey(channelKey) {
		return "", fmt.Errorf("creating an id for channel %q of connection %q: %w", channelKey, connectionID, store.ErrInvalid)
	}
	kc := key(connectionID, channelKey)
	var id string
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if _, err := get[store.Connection](tx.Bucket([]byte(connections)), key(connectionID)); err != nil {
			return err
		}
		id = string(tx.Bucket([]byte(connectionChannels)).Get(kc))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("reading the id of channel %q of connection %q: %w", channelKey, connectionID, err)
	}
	if id != "" {
		return id, nil
	}
	// First use: writes are serialised, so checking again inside the write transaction
	// settles races between callers.
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		c, err := get[store.Connection](tx.Bucket([]byte(connections)), key(connectionID))
		if err != nil {
			return err
		}
		cc := tx.Bucket([]byte(connectionChannels))
		if existing := cc.Get(kc); existing != nil {
			id = string(existing)
			return nil
		}
		t, err := newToken()
		if err != nil {
			return err
		}
		ref := store.ChannelRef{IntegrationKey: c.IntegrationKey, ConnectionID: c.ID, ChannelKey: channelKey}
		if err := put(tx.Bucket([]byte(channelIDs)), []byte(t), ref); err != nil {
			return err
		}
		id = t
		return cc.Put(kc, []byte(t))
	})
	if err != nil {
		return "", fmt.Errorf("creating an id for channel %q of connection %q: %w", channelKey, connectionID, err)
	}
	return id, nil
}

func (s *Store) ResolveChannelID(ctx context.Context, id string) (store.ChannelRef, error) {
	var ref store.ChannelRef
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		if id == "" {
			return store.ErrNotFound
		}
		ref, err = get[store.ChannelRef](tx.Bucket([]byte(channelIDs)), []byte(id))
		return err
	})
	if err != nil {
		// The id is a secret, like a webhook token: it stays out of the message.
		return store.ChannelRef{}, fmt.Errorf("resolving a channel id: %w", err)
	}
	return ref, nil
}

func (s *Store) ListChannelSubscriptions(ctx context.Context, connectionID, channelKey, eventType string) ([]store.Subscription, error) {
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
			if sub.ChannelKey == channelKey && (eventType == "" || sub.EventType == eventType) {
				list = append(list, sub)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing subscriptions of channel %q of connection %q: %w", channelKey, connectionID, err)
	}
	return list, nil
}

// ListActiveChannels scans the channel-subscriptions index.
func (s *Store) ListActiveChannels(ctx context.Context) ([]store.ChannelRef, error) {
	var list []store.ChannelRef
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(channelSubscriptions)).ForEach(func(k, v []byte) error {
			parts := strings.Split(string(k), "\x00")
			if len(parts) != 3 {
				return fmt.Errorf("decoding %q: not connection id, channel key and subscription id", k)
			}
			ref := store.ChannelRef{IntegrationKey: string(v), ConnectionID: parts[0], ChannelKey: parts[1]}
			if len(list) == 0 || list[len(list)-1] != ref {
				list = append(list, ref)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing active channels: %w", err)
	}
	// Already in this order: NUL sorts before every byte a valid key holds.
	slices.SortFunc(list, compareRefs)
	return list, nil
}

// indexChannel adds channel subscription sub to the channel-subscriptions index.
func indexChannel(tx *bbolt.Tx, sub store.Subscription) error {
	return tx.Bucket([]byte(channelSubscriptions)).Put(key(sub.ConnectionID, sub.ChannelKey, sub.ID), []byte(sub.IntegrationKey))
}

// unindexChannel removes channel subscription sub from the channel-subscriptions index.
func unindexChannel(tx *bbolt.Tx, sub store.Subscription) error {
	return tx.Bucket([]byte(channelSubscriptions)).Delete(key(sub.ConnectionID, sub.ChannelKey, sub.ID))
}

// indexChannelSubscriptions fills the channel-subscriptions index from the subscriptions of
// a file written before it had one: once, when Open migrates the file.
func indexChannelSubscriptions(tx *bbolt.Tx) error {
	return tx.Bucket([]byte(subscriptions)).ForEach(func(k, v []byte) error {
		sub, err := decode[store.Subscription](k, v)
		if err != nil || sub.ChannelKey == "" {
			return err
		}
		return indexChannel(tx, sub)
	})
}

func compareRefs(a, b store.ChannelRef) int {
	if c := strings.Compare(a.ConnectionID, b.ConnectionID); c != 0 {
		return c
	}
	return strings.Compare(a.ChannelKey, b.ChannelKey)
}

func (s *Store) ChannelCursor(ctx context.Context, connectionID, channelKey string) (string, error) {
	var cursor string
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if _, err := get[store.Connection](tx.Bucket([]byte(connections)), key(connectionID)); err != nil {
			return err
		}
		cursor = string(tx.Bucket([]byte(channelCursors)).Get(key(connectionID, channelKey)))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("reading the cursor of channel %q of connection %q: %w", channelKey, connectionID, err)
	}
	return cursor, nil
}

func (s *Store) SetChannelCursor(ctx context.Context, connectionID, channelKey, cursor string) error {
	if !store.ValidKey(channelKey) {
		return fmt.Errorf("setting the cursor of channel %q of connection %q: %w", channelKey, connectionID, store.ErrInvalid)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if _, err := get[store.Connection](tx.Bucket([]byte(connections)), key(connectionID)); err != nil {
			return err
		}
		b := tx.Bucket([]byte(channelCursors))
		if cursor == "" {
			return b.Delete(key(connectionID, channelKey))
		}
		return b.Put(key(connectionID, channelKey), []byte(cursor))
	})
	if err != nil {
		return fmt.Errorf("setting the cursor of channel %q of connection %q: %w", channelKey, connectionID, err)
	}
	return nil
}

// deleteChannels removes the channel ids and cursors of connection id.
func deleteChannels(tx *bbolt.Tx, connectionID string) error {
	cc := tx.Bucket([]byte(connectionChannels))
	ids := tx.Bucket([]byte(channelIDs))
	for _, channelKey := range suffixes(cc, key(connectionID)) {
		kc := key(connectionID, string(channelKey))
		if err := ids.Delete(cc.Get(kc)); err != nil {
			return err
		}
		if err := cc.Delete(kc); err != nil {
			return err
		}
	}
	cursors := tx.Bucket([]byte(channelCursors))
	for _, channelKey := range suffixes(cursors, key(connectionID)) {
		if err := cursors.Delete(key(connectionID, string(channelKey))); err != nil {
			return err
		}
	}
	return nil
}
