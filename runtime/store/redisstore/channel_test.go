package redisstore

import (
	"errors"
	"testing"

	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/storetest"
)

func TestChannelConformance(t *testing.T) {
	url := testRedisURL()
	storetest.RunChannels(t, func(t *testing.T) storetest.ChannelStore { return openTestStore(t, url) })
}

func TestChannelPersistence(t *testing.T) {
	url := testRedisURL()
	storetest.RunChannelPersistence(t, func(t *testing.T) (storetest.ChannelStore, func(t *testing.T) storetest.ChannelStore) {
		prefix := randomPrefix(t)
		reopen := func(t *testing.T) storetest.ChannelStore { return openTestStoreAt(t, url, prefix) }
		return openTestStoreAt(t, url, prefix), reopen
	})
}

// TestClusterChannelConformance keeps every multi-key command of the channel additions
// within one slot.
func TestClusterChannelConformance(t *testing.T) {
	url := startCluster(t)
	storetest.RunChannels(t, func(t *testing.T) storetest.ChannelStore { return openTestStore(t, url) })
}

// TestDeleteLeavesNoChannelKeys checks that channel ids, their global pointers and cursors
// go with their connection and integration.
func TestDeleteLeavesNoChannelKeys(t *testing.T) {
	ctx := t.Context()
	s := openTestStore(t, testRedisURL())
	if err := s.CreateIntegration(ctx, store.Integration{Key: "shop"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"conn_1", "conn_2"} {
		if err := s.CreateConnection(ctx, store.Connection{ID: id, IntegrationKey: "shop"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ChannelID(ctx, id, "orders"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetChannelCursor(ctx, id, "orders", "1"); err != nil {
			t.Fatal(err)
		}
		sub := store.Subscription{ID: "sub_" + id, ConnectionID: id, ChannelKey: "orders", EventType: "order.created", EventKey: "order.created"}
		if err := s.CreateSubscription(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteConnection(ctx, "conn_1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteIntegration(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	keys, err := prefixKeys(ctx, s.rdb, s.prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("keys left after deleting everything: %q", keys)
	}
}

// TestDanglingChannelPointer: a pointer whose connection hash no longer names it is not found.
func TestDanglingChannelPointer(t *testing.T) {
	ctx := t.Context()
	s := openTestStore(t, testRedisURL())
	const id = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if err := s.rdb.Set(ctx, s.channelPointer(id), `{"integrationKey":"shop","connectionId":"conn_1","channelKey":"orders"}`, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveChannelID(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResolveChannelID through a dangling pointer: err = %v, want ErrNotFound", err)
	}
}
