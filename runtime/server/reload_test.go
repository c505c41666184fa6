package server_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/server"
)

// reloadDeadline is how long a test waits for an edit to be picked up: generous, since the
// poll runs every 50ms here but a loaded CI machine may be slow to compile.
const reloadDeadline = 20 * time.Second

// eventually retries check until it returns "" or reloadDeadline passes, then fails with
// the last thing check said.
func eventually(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(reloadDeadline)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, reloadDeadline, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type connectorsList struct {
	Connectors []struct{ Key string }
	Errors     []string
}

func (l connectorsList) keys() []string {
	var out []string
	for _, c := range l.Connectors {
		out = append(out, c.Key)
	}
	return out
}

// TestHotReload edits the example connector's handle.js under a running server: a clean
// edit takes over, a broken one is reported (log and GET /v1/connectors, as path:line) while
// the last good version keeps answering, a fix takes over again; a new connector appears
// and a removed one goes (its integration's ingest answering 503, for the sender to retry).
func TestHotReload(t *testing.T) {
	dir := connectorsDir(t, fakeAPI(t, nil))
	cfg := server.Config{ConnectorsDir: dir, ReloadInterval: 50 * time.Millisecond}
	embeddedBackend(t)(&cfg)
	logs := &syncBuffer{}
	h := start(t, cfg, logs)

	h.must(201, "POST", "/v1/integrations", map[string]any{"key": "ex1", "connectorKey": "example", "parameters": map[string]any{}})
	path := h.webhookPath("ex1", "webhook-key")
	handle := filepath.Join(dir, "example", "global-webhooks", "webhook-key", "handle.js")
	reply := func(data string) string {
		return "export default async function handle({ data }) {\n" +
			"  return { response: { status: 200, data: " + data + " } }\n}\n"
	}
	write := func(path, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	answers := func(want string) func() string {
		return func() string {
			r := h.post(path, "application/json", []byte(`{"from_user_id":"U1"}`))
			if got := string(r.body); got != want {
				return "answer " + got + ", want " + want
			}
			return ""
		}
	}
	list := func() connectorsList {
		var l connectorsList
		h.must(200, "GET", "/v1/connectors", nil).json(t, &l)
		return l
	}

	t.Run("version A at start", func(t *testing.T) {
		if r := h.post(path, "application/json", []byte(`{"from_user_id":"U1"}`)); r.status != 201 || string(r.body) != "Webhook received" {
			t.Fatalf("got %d %q", r.status, r.body)
		}
	})

	t.Run("a clean edit takes over", func(t *testing.T) {
		write(handle, reply(`"B"`))
		eventually(t, "edit B", answers("B"))
	})

	t.Run("a broken edit is reported and B keeps serving", func(t *testing.T) {
		write(handle, "export default async function handle() {\n  return {\n}}}\n")
		want := handle + ":3: "
		eventually(t, "problem listed", func() string {
			l := list()
			if !slices.ContainsFunc(l.Errors, func(e string) bool { return strings.HasPrefix(e, want) }) {
				return "errors " + strings.Join(l.Errors, "; ")
			}
			if !slices.Contains(l.keys(), "example") {
				return "example no longer listed"
			}
			return ""
		})
		if msg := answers("B")(); msg != "" {
			t.Fatal(msg)
		}
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not hold %q", want)
		}
	})

	t.Run("a fix takes over and clears the problem", func(t *testing.T) {
		write(handle, reply(`"C"`))
		eventually(t, "edit C", answers("C"))
		eventually(t, "problems cleared", func() string {
			if l := list(); len(l.Errors) != 0 {
				return "errors " + strings.Join(l.Errors, "; ")
			}
			return ""
		})
	})

	t.Run("a new connector appears, a removed one goes", func(t *testing.T) {
		copyTree(t, "../../testdata/e2e/connectors/faulty", filepath.Join(dir, "fresh"))
		write(filepath.Join(dir, "fresh", "connector.yml"), "key: fresh\nname: Fresh\n")
		eventually(t, "fresh listed", func() string {
			if l := list(); !slices.Contains(l.keys(), "fresh") {
				return "connectors " + strings.Join(l.keys(), ",")
			}
			return ""
		})
		h.must(201, "POST", "/v1/integrations", map[string]any{"key": "fr1", "connectorKey": "fresh", "parameters": map[string]any{}})
		fresh := h.webhookPath("fr1", "hook")
		if r := h.post(fresh, "application/json", []byte(`{"user":"u"}`)); r.status != 202 {
			t.Fatalf("fresh answered %d %s", r.status, r.body)
		}

		if err := os.RemoveAll(filepath.Join(dir, "fresh")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "fresh gone", func() string {
			if l := list(); slices.Contains(l.keys(), "fresh") {
				return "still listed"
			}
			return ""
		})
		r := h.post(fresh, "application/json", []byte(`{"user":"u"}`))
		if r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Fatalf("ingest of a removed connector: %d (Retry-After %q), want 503 with Retry-After", r.status, r.header.Get("Retry-After"))
		}
	})
}
