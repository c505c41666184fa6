package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/bus/bustest"
	"github.com/switchboard-run/switchboard/runtime/server"
)

// brokenHandle fails on every request, naming the event it could not read.
const brokenHandle = `export default async function handle({ data }) {
  throw new Error('cannot read event ' + data.id)
}
`

// TestIngestDeadLetters: a request whose handle throws is answered 500 and kept; replaying
// it fails again (422) while the connector is broken; once the connector is fixed (the file
// rewritten, the server started again on the same data directory), replaying publishes the
// event and removes the dead letter.
func TestIngestDeadLetters(t *testing.T) {
	connectors := numberedConnectors(t, brokenHandle)
	dataDir := t.TempDir()
	cfg := server.Config{ConnectorsDir: connectors, DataDir: dataDir, EmbeddedNATSListen: "127.0.0.1:0"}
	logs := &syncBuffer{}
	h := start(t, cfg, logs)
	path := setUpNumbered(t, h)

	var id, version string
	t.Run("a failing handle is dead-lettered", func(t *testing.T) {
		h := h.with(t)
		req := h.post(path+"?src=test", "application/json", numbered(1))
		if req.status != 500 {
			t.Fatalf("status %d, want 500; %s", req.status, req.body)
		}
		h.post(path, "application/json", numbered(2))
		// The sender retries the first: one dead letter, two attempts.
		if r := h.post(path+"?src=test", "application/json", numbered(1)); r.status != 500 {
			t.Fatalf("retry: status %d, want 500", r.status)
		}

		var list []map[string]any
		h.must(200, "GET", "/v1/integrations/n1/dead-letters", nil).json(t, &list)
		if len(list) != 2 {
			t.Fatalf("%d dead letters, want 2: %v", len(list), list)
		}
		dl := list[1] // newest first: the first request is last
		id, _ = dl["id"].(string)
		version, _ = dl["connectorVersion"].(string)
		if !strings.HasPrefix(id, "dl_") || dl["webhookKey"] != "hook" || dl["method"] != "POST" ||
			!strings.Contains(dl["error"].(string), "cannot read event evt-1") || dl["attempts"] != 2.0 ||
			!strings.HasPrefix(version, "sha256:") || dl["bodySize"] != float64(len(numbered(1))) {
			t.Errorf("listed dead letter = %v", dl)
		}
		for _, field := range []string{"headers", "body", "query"} {
			if _, ok := dl[field]; ok {
				t.Errorf("the list shows %s", field)
			}
		}

		var one map[string]any
		h.must(200, "GET", "/v1/integrations/n1/dead-letters/"+id, nil).json(t, &one)
		headers, _ := one["headers"].(map[string]any)
		if one["body"] != string(numbered(1)) || one["bodyEncoding"] != "utf8" || one["query"] != "src=test" ||
			headers["Content-Type"] == nil {
			t.Errorf("dead letter = %v", one)
		}
		if strings.Contains(string(h.must(200, "GET", "/v1/integrations/n1/dead-letters/"+id, nil).body), strings.TrimPrefix(path, "/webhooks/")) {
			t.Errorf("the dead letter shows the webhook token")
		}
	})

	t.Run("replaying with the broken connector fails", func(t *testing.T) {
		h := h.with(t)
		r := h.must(422, "POST", "/v1/integrations/n1/dead-letters/"+id+"/replay", nil)
		if code, msg := r.errorCode(t); code != "handle_failed" || !strings.Contains(msg, "cannot read event evt-1") {
			t.Errorf("error %s %q", code, msg)
		}
		var one map[string]any
		h.must(200, "GET", "/v1/integrations/n1/dead-letters/"+id, nil).json(t, &one)
		if one["attempts"] != 3.0 {
			t.Errorf("attempts = %v, want 3", one["attempts"])
		}
	})

	t.Run("errors", func(t *testing.T) {
		h := h.with(t)
		h.must(404, "GET", "/v1/integrations/nope/dead-letters", nil)
		h.must(404, "GET", "/v1/integrations/n1/dead-letters/dl_nope", nil)
		h.must(404, "POST", "/v1/integrations/n1/dead-letters/dl_nope/replay", nil)
		h.must(404, "DELETE", "/v1/integrations/n1/dead-letters/dl_nope", nil)
		if m := string(h.must(200, "GET", "/metrics", nil).body); !strings.Contains(m, `switchboard_ingest_dead_letters_total{integration="n1"} 3`) {
			t.Errorf("metrics do not count 3 dead-lettered requests")
		}
	})

	// The fix, and a new server on the same data directory.
	h.stop()
	if err := os.WriteFile(filepath.Join(connectors, "numbered/global-webhooks/hook/handle.js"), []byte(numberedHandle), 0o644); err != nil {
		t.Fatal(err)
	}
	h = start(t, cfg, logs)
	events := bustest.Watch(t, h.srv.NATSURL(), eventSubjects)

	t.Run("replaying with the fixed connector publishes", func(t *testing.T) {
		h := h.with(t)
		var res struct {
			ID                               string
			Published, Unmatched, Duplicates int
			Response                         struct{ Status int }
		}
		h.must(200, "POST", "/v1/integrations/n1/dead-letters/"+id+"/replay", nil).json(t, &res)
		if res.ID != id || res.Published != 1 || res.Response.Status != 202 {
			t.Errorf("replay = %+v, want 1 published and handle's 202", res)
		}
		got := events.Collect(1, 300*time.Millisecond)
		if len(got) != 1 || !strings.Contains(string(got[0].Data), `"eventId":"evt-1"`) {
			t.Errorf("events = %v, want evt-1 once", got)
		}
		h.must(404, "GET", "/v1/integrations/n1/dead-letters/"+id, nil)
		h.must(404, "POST", "/v1/integrations/n1/dead-letters/"+id+"/replay", nil)
	})

	t.Run("the sender's retry after the replay publishes nothing", func(t *testing.T) {
		h := h.with(t)
		if r := h.post(path, "application/json", numbered(1)); r.status != 202 {
			t.Fatalf("retry: %d %s", r.status, r.body)
		}
		if got := events.Collect(0, 300*time.Millisecond); len(got) != 0 {
			t.Errorf("the retry published %d events", len(got))
		}
	})

	t.Run("delete", func(t *testing.T) {
		h := h.with(t)
		var list []struct{ ID, ConnectorVersion string }
		h.must(200, "GET", "/v1/integrations/n1/dead-letters", nil).json(t, &list)
		if len(list) != 1 {
			t.Fatalf("%d dead letters left, want 1", len(list))
		}
		h.must(204, "DELETE", "/v1/integrations/n1/dead-letters/"+list[0].ID, nil)
		h.must(404, "GET", "/v1/integrations/n1/dead-letters/"+list[0].ID, nil)
	})
}
