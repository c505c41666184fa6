package api_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/api"
	"github.com/switchboard-run/switchboard/runtime/bus"
	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/runtime/router"
	"github.com/switchboard-run/switchboard/runtime/server/servertest"
	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/embedded"
)

// benchUsers is how many users have a subscription in BenchmarkIngest.
const benchUsers = 100

// BenchmarkIngest measures the whole ingest path of a global webhook in process, without
// the network: the real API handler, the example connector's handle.js on the sandbox pool,
// the embedded store and an in-process NATS with JetStream (every publish acknowledged),
// for a ~1 KB JSON body. "matched" requests come from a user with one subscription (one
// publish each), "unmatched" ones from a user with none (no publish). Each body is unique,
// so the bus never drops one as a duplicate. Building the body is inside the timed loop (a
// few hundred nanoseconds and one allocation).
func BenchmarkIngest(b *testing.B) {
	h, path := newIngestBench(b)
	for _, bc := range []struct {
		name    string
		matched bool
	}{{"matched", true}, {"unmatched", false}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(ingestBody(0, 0))))
			for i := 0; b.Loop(); i++ {
				ingestOnce(b, h, path, ingestBody(uint64(i), benchUser(i, bc.matched)))
			}
		})
	}
	b.Run("matched-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(ingestBody(0, 0))))
		var seq atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := seq.Add(1)
				ingestOnce(b, h, path, ingestBody(i, benchUser(int(i), true)))
			}
		})
	})
}

func benchUser(i int, matched bool) int {
	if matched {
		return i % benchUsers
	}
	return 1_000_000 + i
}

func ingestOnce(b *testing.B, h http.Handler, path string, body []byte) {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		b.Fatalf("ingest: status %d: %s", rec.Code, rec.Body)
	}
}

// ingestBodyTail pads the body to about 1 KB, like a chat app's message event.
var ingestBodyTail = `,"event":{"type":"message","channel":"C2147483705","channel_type":"channel",` +
	`"ts":"1355517523.000005","text":"` + strings.Repeat("the nightly build finished with 0 failures; ", 13) + `",` +
	`"blocks":[{"type":"rich_text","block_id":"Bk1","elements":[{"type":"rich_text_section",` +
	`"elements":[{"type":"text","text":"deploy finished"},{"type":"user","user_id":"U0LAN0Z89"}]}]}]},` +
	`"authorizations":[{"enterprise_id":null,"team_id":"T024BE7LD","user_id":"U0LAN0Z89","is_bot":false}]}`

func ingestBody(seq uint64, user int) []byte {
	b := make([]byte, 0, 1100)
	b = append(b, `{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","team_id":"T024BE7LD","type":"event_callback","event_id":"Ev`...)
	b = strconv.AppendUint(b, seq, 36)
	b = append(b, `","from_user_id":`...)
	b = strconv.AppendInt(b, int64(user), 10)
	return append(b, ingestBodyTail...)
}

// newIngestBench wires the API as the server does, from public constructors, with an
// integration of the example connector whose users 0..benchUsers-1 have one subscription
// each, and returns it with the webhook's path.
func newIngestBench(b *testing.B) (http.Handler, string) {
	b.Helper()
	ctx := b.Context()
	cn, err := connector.LoadConnector(filepath.Join("..", "..", "connectors", "example"))
	if err != nil {
		b.Fatalf("loading the example connector: %v", err)
	}
	st, err := embedded.Open(filepath.Join(b.TempDir(), "switchboard.db"))
	if err != nil {
		b.Fatalf("opening the embedded store: %v", err)
	}
	nats := servertest.StartNATS(b)
	bs, err := nats.Connect(ctx, bus.Config{})
	if err != nil {
		b.Fatalf("connecting to nats: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		bs.Close(ctx)
		st.Close(ctx)
	})

	now := time.Now().UTC()
	if err := st.CreateIntegration(ctx, store.Integration{Key: "bench", ConnectorKey: "example",
		Parameters: map[string]any{}, CreatedAt: now, UpdatedAt: now}); err != nil {
		b.Fatalf("creating the integration: %v", err)
	}
	for u := range benchUsers {
		id := fmt.Sprint("conn_", u)
		if err := st.CreateConnection(ctx, store.Connection{ID: id, IntegrationKey: "bench",
			CustomerID: fmt.Sprint("cust_", u%10), CreatedAt: now}); err != nil {
			b.Fatalf("creating a connection: %v", err)
		}
		if err := st.CreateSubscription(ctx, store.Subscription{ID: fmt.Sprint("sub_", u), ConnectionID: id,
			EventKey: "message-posted", Status: "subscribed", GlobalWebhookKey: "webhook-key",
			Selector: fmt.Sprint("user_id:", u), CreatedAt: now, UpdatedAt: now}); err != nil {
			b.Fatalf("creating a subscription: %v", err)
		}
	}
	token, err := st.WebhookToken(ctx, "bench", "webhook-key")
	if err != nil {
		b.Fatalf("creating the webhook token: %v", err)
	}

	a := api.New(api.Config{
		Store:      st,
		Router:     router.New(router.Config{Matcher: st, Publisher: bs}),
		Connectors: api.SetCatalog{Set: &connector.Set{Connectors: map[string]*connector.Connector{cn.Key: cn}}},
		PublicURL:  "http://localhost:8080",
	})
	return a, "/webhooks/" + token
}
