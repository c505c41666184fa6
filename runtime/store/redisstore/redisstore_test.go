package redisstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/storetest"
)

// The tests run against a real Redis: 127.0.0.1:6379, or SWITCHBOARD_TEST_REDIS_URL. Each
// store gets a fresh random key prefix and its keys are deleted when its test ends, so the
// server may be shared. The cluster test starts its own redis-server in cluster mode.

func testRedisURL() string {
	if url := os.Getenv("SWITCHBOARD_TEST_REDIS_URL"); url != "" {
		return url
	}
	return "redis://127.0.0.1:6379"
}

// openTestStore opens a store under a fresh prefix at url and deletes the prefix's keys when
// the test ends.
func openTestStore(t testing.TB, url string) *Store {
	t.Helper()
	return openTestStoreAt(t, url, randomPrefix(t))
}

func openTestStoreAt(t testing.TB, url, prefix string) *Store {
	t.Helper()
	s, err := Open(t.Context(), url, prefix)
	if err != nil {
		t.Fatalf("%v\nthese tests need a Redis server: start one with `redis-server` or set SWITCHBOARD_TEST_REDIS_URL", err)
	}
	t.Cleanup(func() {
		// A client of its own: the test may have closed the store.
		ctx := context.Background()
		s.Close(ctx)
		cleaner, err := Open(ctx, url, prefix)
		if err == nil {
			err = deleteKeys(ctx, cleaner.rdb, prefix)
			cleaner.Close(ctx)
		}
		if err != nil {
			t.Errorf("deleting the test's keys under %s: %v", prefix, err)
		}
	})
	return s
}

func randomPrefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	return "sbtest-" + hex.EncodeToString(b)
}

// prefixKeys lists the keys under prefix, on every master of a cluster.
func prefixKeys(ctx context.Context, rdb redis.UniversalClient, prefix string) ([]string, error) {
	var mu sync.Mutex
	var keys []string
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return keys, c.ForEachMaster(ctx, scan)
	case *redis.Client:
		return keys, scan(ctx, c)
	}
	return nil, fmt.Errorf("unexpected client type %T", rdb)
}

func deleteKeys(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	keys, err := prefixKeys(ctx, rdb, prefix)
	if err != nil {
		return err
	}
	// One DEL per key: on a cluster, keys of different slots cannot share a command.
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, k)
		}
		return nil
	})
	return err
}

func TestConformance(t *testing.T) {
	url := testRedisURL()
	storetest.Run(t, func(t *testing.T) store.Store { return openTestStore(t, url) })
}

func TestPersistence(t *testing.T) {
	url := testRedisURL()
	storetest.RunPersistence(t, func(t *testing.T) (store.Store, func(t *testing.T) store.Store) {
		prefix := randomPrefix(t)
		reopen := func(t *testing.T) store.Store { return openTestStoreAt(t, url, prefix) }
		return openTestStoreAt(t, url, prefix), reopen
	})
}

// TestClusterConformance runs the suite on a Redis Cluster through a ClusterClient: every
// multi-key command and transaction must stay within one slot, or Redis answers CROSSSLOT.
func TestClusterConformance(t *testing.T) {
	url := startCluster(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openTestStore(t, url)
		if _, ok := s.rdb.(*redis.ClusterClient); !ok {
			t.Fatalf("Open(%s) made a %T, want a *redis.ClusterClient", url, s.rdb)
		}
		return s
	})
}

// TestDeleteLeavesNoKeys checks that deleting every integration removes every key the
// store wrote, global pointers included.
func TestDeleteLeavesNoKeys(t *testing.T) {
	ctx := t.Context()
	s := openTestStore(t, testRedisURL())
	for _, k := range []string{"slack", "github"} {
		if err := s.CreateIntegration(ctx, store.Integration{Key: k}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WebhookToken(ctx, k, "events"); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			c := store.Connection{ID: fmt.Sprintf("%s-conn-%d", k, i), IntegrationKey: k}
			if err := s.CreateConnection(ctx, c); err != nil {
				t.Fatal(err)
			}
			for j := range 3 {
				sub := store.Subscription{ID: fmt.Sprintf("%s-sub-%d", c.ID, j), ConnectionID: c.ID, GlobalWebhookKey: "events", Selector: fmt.Sprint(j)}
				if err := s.CreateSubscription(ctx, sub); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// A subscription and a connection deleted on their own first.
	if err := s.DeleteSubscription(ctx, "slack-conn-0-sub-0"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConnection(ctx, "github-conn-1"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"slack", "github"} {
		if err := s.DeleteIntegration(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := prefixKeys(ctx, s.rdb, s.prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("keys left after deleting everything: %q", keys)
	}
}

// TestDanglingPointers plays the crash cases: a global pointer without its record is not
// found, and a create of the same id, in any integration, takes it over.
func TestDanglingPointers(t *testing.T) {
	ctx := t.Context()
	s := openTestStore(t, testRedisURL())
	for _, k := range []string{"slack", "github"} {
		if err := s.CreateIntegration(ctx, store.Integration{Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	// Left by crashed creates in slack.
	for _, key := range []string{s.connectionOwner("conn_1"), s.subscriptionOwner("sub_1")} {
		if err := s.rdb.Set(ctx, key, "slack", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.GetConnection(ctx, "conn_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetConnection through a dangling pointer: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetSubscription(ctx, "sub_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSubscription through a dangling pointer: err = %v, want ErrNotFound", err)
	}
	// A dangling token pointer, left by a crashed DeleteIntegration.
	if err := s.rdb.Set(ctx, s.tokenKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), `{"integrationKey":"slack","webhookKey":"events"}`, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ResolveWebhookToken(ctx, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResolveWebhookToken through a dangling pointer: err = %v, want ErrNotFound", err)
	}

	c := store.Connection{ID: "conn_1", IntegrationKey: "github", CustomerID: "cust_1"}
	if err := s.CreateConnection(ctx, c); err != nil {
		t.Fatalf("CreateConnection over a dangling pointer of another integration: %v", err)
	}
	if got, err := s.GetConnection(ctx, "conn_1"); err != nil || got.IntegrationKey != "github" {
		t.Errorf("GetConnection = %+v, %v", got, err)
	}
	sub := store.Subscription{ID: "sub_1", ConnectionID: "conn_1", GlobalWebhookKey: "events", Selector: "x"}
	if err := s.CreateSubscription(ctx, sub); err != nil {
		t.Fatalf("CreateSubscription over a dangling pointer: %v", err)
	}
	routes, err := s.MatchRoutes(ctx, "github", "events", []string{"x"})
	if err != nil || len(routes["x"]) != 1 {
		t.Errorf("MatchRoutes = %v, %v; want the subscription", routes, err)
	}

	// A refused create releases the pointer it claimed.
	if err := s.CreateConnection(ctx, store.Connection{ID: "conn_2", IntegrationKey: "missing"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateConnection in a missing integration: err = %v, want ErrNotFound", err)
	}
	if n := s.rdb.Exists(ctx, s.connectionOwner("conn_2")).Val(); n != 0 {
		t.Errorf("a refused create left its pointer behind")
	}
}

func TestOpen(t *testing.T) {
	tests := []struct {
		name, url, prefix string
		want              string // in the error
	}{
		{"unknown scheme", "http://127.0.0.1:6379", "", "scheme"},
		{"bad prefix", testRedisURL(), "a{b}", "hash tag"},
		{"bad url", "redis://127.0.0.1:notaport", "", "parsing redis url"},
		{"unreachable", "redis://127.0.0.1:1", "", "pinging redis"},
		{"unreachable cluster", "redis+cluster://127.0.0.1:1", "", "pinging redis"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			s, err := Open(ctx, tt.url, tt.prefix)
			if err == nil {
				s.Close(ctx)
				t.Fatalf("Open(%s) succeeded", tt.url)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%s): err = %v, want one mentioning %q", tt.url, err, tt.want)
			}
		})
	}
}

func TestNewLeavesClientOpen(t *testing.T) {
	opts, err := redis.ParseURL(testRedisURL())
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	defer client.Close()
	s := New(client, "")
	if s.prefix != DefaultPrefix {
		t.Errorf("prefix = %q, want %q", s.prefix, DefaultPrefix)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(t.Context()).Err(); err != nil {
		t.Errorf("client after Store.Close: %v", err)
	}
}

func BenchmarkMatchRoutes(b *testing.B) {
	storetest.BenchmarkMatchRoutes(b, openTestStore(b, testRedisURL()))
}

func BenchmarkMatchRoutesCluster(b *testing.B) {
	storetest.BenchmarkMatchRoutes(b, openTestStore(b, startCluster(b)))
}

// startCluster starts a one-node Redis Cluster owning every slot on a free port and returns
// its redis+cluster:// URL. The server is killed when the test ends.
func startCluster(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		bin = "/usr/bin/redis-server"
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	var out bytes.Buffer
	cmd := exec.Command(bin,
		"--port", port, "--bind", "127.0.0.1",
		"--cluster-enabled", "yes", "--cluster-config-file", dir+"/nodes.conf",
		"--save", "", "--appendonly", "no", "--dir", dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})

	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := t.Context()
	waitFor(t, &out, "redis-server to answer", func() bool { return c.Ping(ctx).Err() == nil })
	if err := c.ClusterAddSlotsRange(ctx, 0, 16383).Err(); err != nil {
		t.Fatalf("assigning slots: %v", err)
	}
	waitFor(t, &out, "cluster_state:ok", func() bool {
		info, err := c.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	})
	return "redis+cluster://" + addr
}

func waitFor(t testing.TB, log *bytes.Buffer, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: timed out; server output:\n%s", what, log)
		}
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
