// Package servertest runs a switchboard server for the length of a test.
package servertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-run/switchboard/runtime/bus"
	"github.com/switchboard-run/switchboard/runtime/server"
)

// ShutdownTimeout bounds how long stop waits for the server to shut down.
const ShutdownTimeout = 20 * time.Second

// Run runs srv until stop is called or the test ends. stop, which may be called more than
// once, waits for the shutdown and fails the test if Run returned an error or did not
// return within ShutdownTimeout.
func Run(t testing.TB, srv *server.Server) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("server.Run: %v", err)
				}
			case <-time.After(ShutdownTimeout):
				t.Errorf("the server did not shut down within %s", ShutdownTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// RedisPrefix returns a fresh key prefix on the Redis at addr (host:port, database 0) whose
// keys are deleted when the test ends, so that tests share a Redis without seeing or
// leaving each other's keys. It fails the test when that Redis does not answer.
func RedisPrefix(t testing.TB, addr string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "sbtest-" + hex.EncodeToString(b)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		rdb.Close()
		t.Fatalf("this test needs a real Redis at %s (.ci/run starts one): %v", addr, err)
	}
	t.Cleanup(func() {
		defer rdb.Close()
		ctx := context.Background()
		var cursor uint64
		for {
			keys, next, err := rdb.Scan(ctx, cursor, prefix+"*", 1000).Result()
			if err != nil {
				t.Errorf("cleaning up redis keys %s*: %v", prefix, err)
				return
			}
			if len(keys) > 0 {
				rdb.Del(ctx, keys...)
			}
			if cursor = next; cursor == 0 {
				return
			}
		}
	})
	return prefix
}

// StartNATS starts a NATS server with JetStream of the test's own, in-process on a random
// loopback port (reached by URL like an external one), shut down when the test ends.
func StartNATS(t testing.TB) *bus.Embedded {
	t.Helper()
	n, err := bus.StartEmbedded(t.Context(), bus.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("starting nats: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return n
}
