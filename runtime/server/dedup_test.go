package server_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/bus/bustest"
	"github.com/switchboard-run/switchboard/runtime/server"
)

// TestDedupBeyondDuplicateWindow: a sender's retry of an event already published publishes
// nothing, also after the bus's duplicate window has passed (shrunk here to a second), and is
// still answered with handle's response. Events are recognised by their id, else by the
// sender's delivery id header; a request with neither is published again, since another
// event may well have the same body.
func TestDedupBeyondDuplicateWindow(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			cfg := server.Config{ConnectorsDir: numberedConnectors(t, numberedHandle)}
			be.configure(t)(&cfg)
			h := start(t, cfg, &syncBuffer{})
			path := setUpNumbered(t, h)
			shrinkDuplicateWindow(t, h.srv.NATSURL(), time.Second)
			events := bustest.Watch(t, h.srv.NATSURL(), eventSubjects)

			post := func(body string, header ...string) {
				t.Helper()
				req, _ := http.NewRequestWithContext(t.Context(), "POST", h.base+path, bytes.NewReader([]byte(body)))
				req.Header.Set("Content-Type", "application/json")
				for i := 0; i+1 < len(header); i += 2 {
					req.Header.Set(header[i], header[i+1])
				}
				if r := h.send(req, false); r.status != 202 || string(r.body) != "ok" {
					t.Fatalf("%s: %d %s, want handle's 202 ok", body, r.status, r.body)
				}
			}
			published := func(want int) {
				t.Helper()
				if got := events.Collect(want, 300*time.Millisecond); len(got) != want {
					t.Errorf("%d events published, want %d", len(got), want)
				}
			}

			post(`{"user":"u1","id":"evt-1","n":1}`)
			post(`{"user":"u1","id":"evt-2","n":2}`)
			post(`{"user":"u1","n":3}`, "X-GitHub-Delivery", "d-3")
			post(`{"user":"u1","n":4}`)
			published(4)

			time.Sleep(1500 * time.Millisecond) // the bus forgets its message ids

			// Retries: the same event id in another body (a new delivery of the same event),
			// the same delivery id.
			post(`{"user":"u1","id":"evt-1","n":1,"redelivered":true}`)
			post(`{"user":"u1","id":"evt-2","n":2}`)
			post(`{"user":"u1","n":3}`, "X-GitHub-Delivery", "d-3")
			published(0)

			// New deliveries: a new delivery id with the same body, and the same body with
			// neither id.
			post(`{"user":"u1","n":3}`, "X-GitHub-Delivery", "d-3b")
			post(`{"user":"u1","n":4}`)
			published(2)

			if m := string(h.must(200, "GET", "/metrics", nil).body); !strings.Contains(m, `switchboard_events_duplicate_total{integration="n1"} 3`) {
				t.Errorf("metrics do not count 3 duplicates")
			}
		})
	}
}
