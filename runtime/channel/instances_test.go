package channel_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/channel"
	"github.com/switchboard-run/switchboard/runtime/server"
	"github.com/switchboard-run/switchboard/runtime/server/servertest"
)

const redisAddr = "127.0.0.1:6379"

// sharedBackend is a real Redis under a fresh key prefix (deleted afterwards) and a NATS
// server in-process on a random loopback port, reached by URL like an external one: what
// several instances of one deployment share.
func sharedBackend(t *testing.T) func(cfg *server.Config) {
	t.Helper()
	prefix := servertest.RedisPrefix(t, redisAddr)
	natsURL := servertest.StartNATS(t).ClientURL()
	return func(cfg *server.Config) {
		cfg.RedisURL = "redis://" + redisAddr + "/0"
		cfg.RedisPrefix = prefix
		cfg.NATSURL = natsURL
	}
}

// startInstance runs one switchboard of a shared deployment until stop or the end of the
// test.
func startInstance(t *testing.T, name string, backend func(*server.Config)) *e2e {
	t.Helper()
	logs := new(channel.LogBuffer)
	cfg := server.Config{
		Listen:               "127.0.0.1:0",
		PublicURL:            publicURL,
		ConnectorsDir:        filepath.Join("..", "..", "testdata", "channel", "connectors"),
		DataDir:              t.TempDir(),
		AllowPrivateNetworks: true,
		ChannelBackoff:       20 * time.Millisecond,
		ChannelReadTimeout:   2 * time.Second,
		ChannelResync:        200 * time.Millisecond,
		ChannelLeaseTTL:      time.Second,
		Logger:               channel.NewTestLogger(t, logs).With("instance", name),
	}
	backend(&cfg)
	srv, err := server.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	return &e2e{srv: srv, log: logs, stop: servertest.Run(t, srv)}
}

// TestServersShareChannels runs two servers on one Redis and one NATS: the fake API sees
// one poller and one stream between them; when the one running the workers is stopped, the
// other takes them over, and the bus holds every event the API produced exactly once.
func TestServersShareChannels(t *testing.T) {
	const (
		interval = 50 * time.Millisecond // the test connector's polling interval
		window   = 2 * time.Second
	)
	api := channel.NewFakeAPI(t)
	api.SetListing("/api/orders", map[string]any{"items": []any{}})
	backend := sharedBackend(t)
	a := startInstance(t, "a", backend)
	a.setUp(t, api)
	msgs := a.collect(t)
	a.subscribe(t, "poll:order.changed")
	a.subscribe(t, "stream:tick")
	waitFor(t, "a to poll and stream", func() bool {
		_, open := api.StreamConns()
		return api.Hits("/api/orders") >= 2 && open == 1
	})
	b := startInstance(t, "b", backend)

	// The API produces a new order and a new tick every 30ms until stopped.
	want := map[string]bool{}
	produced := make(chan struct{})
	stopProducing := make(chan struct{})
	go func() {
		defer close(produced)
		base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		var listing []any
		for i := 1; ; i++ {
			select {
			case <-stopProducing:
				return
			case <-time.After(30 * time.Millisecond):
			}
			id := fmt.Sprintf("o_%d", i)
			listing = append([]any{map[string]any{"id": id, "updated_at": base.Add(time.Duration(i) * time.Second).Format(time.RFC3339)}}, listing...)
			api.SetListing("/api/orders", map[string]any{"items": listing})
			api.AddEvents(channel.Tick(i))
			want[id], want[fmt.Sprintf("t%d", i)] = true, true
		}
	}()

	// One poller sleeps the interval between polls: at most window/interval+1 polls in a
	// window; two would make about twice that.
	onePoller := func(what string) {
		t.Helper()
		before := api.Hits("/api/orders")
		deadline := time.Now().Add(window)
		for time.Now().Before(deadline) {
			if _, open := api.StreamConns(); open > 1 {
				t.Errorf("%s: %d streams open at once", what, open)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		polls := api.Hits("/api/orders") - before
		if limit := int(window/interval)*3/2 + 2; polls == 0 || polls > limit {
			t.Errorf("%s: %d polls in %v, want between 1 and %d (one poller every %v)", what, polls, window, limit, interval)
		}
		t.Logf("%s: %d polls in %v", what, polls, window)
	}
	onePoller("both instances up")
	if strings.Contains(b.log.String(), "channel worker started") {
		t.Errorf("b started a channel worker while a ran them")
	}

	// a stops: b takes over within a few TTLs and keeps polling and streaming.
	conns, _ := api.StreamConns()
	a.stop()
	polls := api.Hits("/api/orders")
	waitFor(t, "b to take over", func() bool {
		total, open := api.StreamConns()
		return api.Hits("/api/orders") >= polls+3 && total > conns && open == 1
	})
	onePoller("after a stopped")
	if n := strings.Count(b.log.String(), "channel worker started"); n != 2 {
		t.Errorf("b started %d channel workers, want the 2 a ran", n)
	}

	close(stopProducing)
	<-produced
	got := map[string]int{}
	all := msgs.Wait(t, len(want))
	time.Sleep(300 * time.Millisecond) // more polls and heartbeats: nothing else may come
	all = msgs.All()
	for _, m := range all {
		var env struct{ Metadata struct{ EventID string } }
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatal(err)
		}
		got[env.Metadata.EventID]++
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("event %s on the bus %d times, want once", id, got[id])
		}
	}
	for id, n := range got {
		if !want[id] {
			t.Errorf("event %s on the bus %d times, never produced", id, n)
		}
	}
	t.Logf("%d events produced, each on the bus once", len(want))
}
