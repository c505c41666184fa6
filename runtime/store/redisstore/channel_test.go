package redisstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

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

// TestListActiveChannelsCommands: ListActiveChannels costs one command per integration
// (and one for their list), not one per connection. 10,000 connections with a
// global-webhook subscription each stand in for the million of a large installation.
func TestListActiveChannelsCommands(t *testing.T) {
	ctx := t.Context()
	s := openTestStore(t, testRedisURL())
	const connections = 10_000
	for _, ik := range []string{"shop", "chat"} {
		if err := s.CreateIntegration(ctx, store.Integration{Key: ik}); err != nil {
			t.Fatal(err)
		}
	}
	// 32 writers at a time, each taking the next connection.
	var next atomic.Int64
	errs := make([]error, 32)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < connections && errs[w] == nil; i = next.Add(1) - 1 {
				id := fmt.Sprintf("conn_%05d", i)
				errs[w] = s.CreateConnection(ctx, store.Connection{ID: id, IntegrationKey: "shop"})
				if errs[w] == nil {
					sub := store.Subscription{ID: "sub_" + id, ConnectionID: id, EventKey: "message", GlobalWebhookKey: "events", Selector: fmt.Sprintf("team:T%d", i)}
					errs[w] = s.CreateSubscription(ctx, sub)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("seeding: %v", err)
	}
	if err := s.CreateConnection(ctx, store.Connection{ID: "conn_chat", IntegrationKey: "chat"}); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []store.Subscription{
		{ID: "ch_1", ConnectionID: "conn_00042", ChannelKey: "orders", EventType: "order.created", EventKey: "order.created"},
		{ID: "ch_2", ConnectionID: "conn_00042", ChannelKey: "orders", EventType: "order.updated", EventKey: "order.updated"},
		{ID: "ch_3", ConnectionID: "conn_09999", ChannelKey: "stream", EventType: "tick", EventKey: "tick"},
		{ID: "ch_4", ConnectionID: "conn_chat", ChannelKey: "messages", EventType: "posted", EventKey: "posted"},
	} {
		if err := s.CreateSubscription(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}

	var counter commandCounter
	s.rdb.AddHook(&counter)
	counter.on.Store(true)
	got, err := s.ListActiveChannels(ctx)
	counter.on.Store(false)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.ChannelRef{
		{IntegrationKey: "shop", ConnectionID: "conn_00042", ChannelKey: "orders"},
		{IntegrationKey: "shop", ConnectionID: "conn_09999", ChannelKey: "stream"},
		{IntegrationKey: "chat", ConnectionID: "conn_chat", ChannelKey: "messages"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ListActiveChannels\n got %+v\nwant %+v", got, want)
	}
	if n, limit := counter.n.Load(), int64(1+2); n > limit {
		t.Errorf("ListActiveChannels sent %d commands for %d connections in 2 integrations, want at most %d", n, connections+1, limit)
	}
}

// commandCounter is a go-redis hook counting the commands sent while on, leaving out those
// with which go-redis sets up a new connection.
type commandCounter struct {
	on atomic.Bool
	n  atomic.Int64
}

func (c *commandCounter) count(cmds ...redis.Cmder) {
	if !c.on.Load() {
		return
	}
	for _, cmd := range cmds {
		switch cmd.Name() {
		case "hello", "client", "auth", "select":
		default:
			c.n.Add(1)
		}
	}
}

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count(cmd)
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.count(cmds...)
		return next(ctx, cmds)
	}
}

func BenchmarkListActiveChannels(b *testing.B) {
	storetest.BenchmarkListActiveChannels(b, openTestStore(b, testRedisURL()))
}
