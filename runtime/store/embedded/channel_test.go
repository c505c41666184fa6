package embedded_test

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/embedded"
	"github.com/switchboard-run/switchboard/runtime/store/storetest"
)

func TestChannelConformance(t *testing.T) {
	storetest.RunChannels(t, func(t *testing.T) storetest.ChannelStore {
		return openTestStore(t, filepath.Join(t.TempDir(), "switchboard.db"))
	})
}

func TestChannelPersistence(t *testing.T) {
	storetest.RunChannelPersistence(t, func(t *testing.T) (storetest.ChannelStore, func(t *testing.T) storetest.ChannelStore) {
		path := filepath.Join(t.TempDir(), "data", "switchboard.db")
		reopen := func(t *testing.T) storetest.ChannelStore { return openTestStore(t, path) }
		return openTestStore(t, path), reopen
	})
}

// TestMigrateChannelSubscriptions: a layout version 1 file, written before the
// channel-subscriptions index, gets the index filled when it is opened, and a file of a
// later layout is refused.
func TestMigrateChannelSubscriptions(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "switchboard.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateIntegration(ctx, store.Integration{Key: "shop"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"conn_1", "conn_2"} {
		if err := s.CreateConnection(ctx, store.Connection{ID: id, IntegrationKey: "shop"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []store.Subscription{
		{ID: "sub_1", ConnectionID: "conn_1", ChannelKey: "orders", EventType: "order.created", EventKey: "order.created"},
		{ID: "sub_2", ConnectionID: "conn_1", ChannelKey: "orders", EventType: "order.updated", EventKey: "order.updated"},
		{ID: "sub_3", ConnectionID: "conn_2", EventKey: "message", GlobalWebhookKey: "events", Selector: "team:T1"},
	} {
		if err := s.CreateSubscription(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	setLayout(t, path, "1", func(tx *bbolt.Tx) error {
		return tx.DeleteBucket([]byte("channel-subscriptions"))
	})

	s = openTestStore(t, path)
	got, err := s.ListActiveChannels(ctx)
	want := []store.ChannelRef{{IntegrationKey: "shop", ConnectionID: "conn_1", ChannelKey: "orders"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ListActiveChannels after migrating = %+v, %v; want %+v", got, err, want)
	}
	if err := s.DeleteSubscription(ctx, "sub_1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSubscription(ctx, "sub_2"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ListActiveChannels(ctx); err != nil || len(got) != 0 {
		t.Errorf("ListActiveChannels after deleting the migrated subscriptions = %+v, %v; want none", got, err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	setLayout(t, path, "3", nil)
	if _, err := embedded.Open(path); err == nil || !strings.Contains(err.Error(), "layout version 3") {
		t.Errorf("Open of a layout version 3 file: err = %v, want a layout error", err)
	}
}

// setLayout marks the closed store file at path as of layout version, after running edit
// (if any) in the same transaction.
func setLayout(t *testing.T, path, version string, edit func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		if edit != nil {
			if err := edit(tx); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("meta")).Put([]byte("version"), []byte(version))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func BenchmarkListActiveChannels(b *testing.B) {
	storetest.BenchmarkListActiveChannels(b, openTestStore(b, filepath.Join(b.TempDir(), "switchboard.db")))
}
