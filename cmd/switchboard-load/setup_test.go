package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-run/switchboard/runtime/store/redisstore"
)

const testRedisURL = "redis://127.0.0.1:6379"

// testPrefixes returns a fresh switchboard prefix and baseline prefix in the Redis at
// 127.0.0.1:6379, deleted when the test ends. Without that Redis the test is skipped, but
// in CI (which starts one) it fails.
func testPrefixes(t *testing.T) (string, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		rdb.Close()
		if os.Getenv("CI") != "" {
			t.Fatalf("no Redis at 127.0.0.1:6379: %v", err)
		}
		t.Skipf("no Redis at 127.0.0.1:6379: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "sbload-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx := context.Background()
		defer rdb.Close()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return prefix, prefix + "-bl"
}

func TestSetup(t *testing.T) {
	for _, bulk := range []string{"true", "false"} {
		t.Run("bulk="+bulk, func(t *testing.T) {
			prefix, blPrefix := testPrefixes(t)
			var stdout bytes.Buffer
			args := []string{"setup", "-redis-url", testRedisURL, "-prefix", prefix, "-baseline-prefix", blPrefix,
				"-subscriptions", "60", "-per-user", "2", "-batch", "7", "-bulk=" + bulk}
			if err := run(t.Context(), args, &stdout, io.Discard); err != nil {
				t.Fatal(err)
			}
			out := stdout.String()
			for _, want := range []string{"webhook URL: http://127.0.0.1:8080/webhooks/", "run with: -users 30", "checked through redisstore"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}

			// What switchboard reads: the token resolves, and every user routes to its two
			// subscriptions (verifySwitchboard checked three; check them all).
			rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
			defer rdb.Close()
			st := redisstore.New(rdb, prefix)
			token := out[strings.Index(out, "/webhooks/")+len("/webhooks/"):]
			token = token[:strings.IndexByte(token, '\n')]
			if ik, wk, err := st.ResolveWebhookToken(t.Context(), token); err != nil || ik != "load" || wk != "webhook-key" {
				t.Errorf("token resolves to %q %q %v", ik, wk, err)
			}
			sels := make([]string, 30)
			for u := range int64(30) {
				sels[u] = selector(u)
			}
			routes, err := st.MatchRoutes(t.Context(), "load", "webhook-key", sels)
			if err != nil {
				t.Fatal(err)
			}
			for u, sel := range sels {
				if len(routes[sel]) != 2 || routes[sel][0].CustomerID != "cust_"+strings.TrimPrefix(sel, "user_id:") {
					t.Errorf("user %d routes to %v", u, routes[sel])
				}
			}
			conns, err := st.ListConnections(t.Context(), "load")
			if err != nil || len(conns) != 30 {
				t.Errorf("%d connections (%v), want 30", len(conns), err)
			}

			// What the baselines read.
			members, err := rdb.SMembers(t.Context(), blPrefix+":sel:user_id:29").Result()
			if err != nil || len(members) != 2 || !strings.Contains(members[0], `"o":"cust_29"`) {
				t.Errorf("baseline set of user 29: %v %v", members, err)
			}

			// Run again, idempotent; then smaller, which must notice the stale users.
			if err := run(t.Context(), args, io.Discard, io.Discard); err != nil {
				t.Errorf("setup again: %v", err)
			}
			smaller := append([]string{}, args...)
			smaller[len(smaller)-6] = "20" // -subscriptions
			if err := run(t.Context(), smaller, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "earlier setup") {
				t.Errorf("smaller setup over a larger one: err = %v, want it refused", err)
			}
		})
	}
}
