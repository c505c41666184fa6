package catalog_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/catalog"
	"github.com/switchboard-run/switchboard/runtime/connector"
)

// writeConnector writes a connector with one global webhook "hook" whose handle.js is
// handle, under dir/name.
func writeConnector(t *testing.T, dir, name, key, handle string) {
	t.Helper()
	files := map[string]string{
		"connector.yml":                  "key: " + key + "\nname: " + key + "\n",
		"global-webhooks/hook/spec.yml":  "name: Hook\nmethods:\n  handle:\n    implementationType: javascript\n",
		"global-webhooks/hook/handle.js": handle,
	}
	for rel, body := range files {
		writeFile(t, dir, filepath.Join(name, rel), body)
	}
}

// writeFile writes root/rel and then ages it and its folders up to root.
func writeFile(t *testing.T, root, rel, body string) {
	t.Helper()
	path := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	age(t, root, path)
}

// age sets the modification times of path and its folders up to root to an hour ago (a
// millisecond later at every call, so that every edit shows): out of the racy window, as if
// written a while ago, so that a Reload right after sees exactly one change.
func age(t *testing.T, root, path string) {
	t.Helper()
	aged++
	old := time.Now().Add(-time.Hour + time.Duration(aged)*time.Millisecond)
	for p := path; len(p) > len(root); p = filepath.Dir(p) {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

var aged int

func handleJS(reply string) string {
	return "export default async function handle() { return { response: { data: " + reply + " } } }\n"
}

func keys(cs []*connector.Connector) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Key)
	}
	return out
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	writeConnector(t, dir, "alpha", "alpha", handleJS(`"A"`))
	writeConnector(t, dir, "beta", "beta", handleJS(`"beta"`))

	var logs bytes.Buffer
	c, err := catalog.New(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got := keys(c.Connectors()); !slices.Equal(got, []string{"alpha", "beta"}) {
		t.Fatalf("connectors %v", got)
	}
	alpha, _ := c.Connector("alpha")
	beta, _ := c.Connector("beta")
	handleRel := filepath.Join("alpha", "global-webhooks", "hook", "handle.js")
	handle := filepath.Join(dir, handleRel)

	t.Run("unchanged tree reloads nothing", func(t *testing.T) {
		if err := c.Reload(); err != nil {
			t.Fatal(err)
		}
		if cn, _ := c.Connector("alpha"); cn != alpha {
			t.Fatal("alpha was reloaded without a change")
		}
	})

	t.Run("edit replaces only that connector", func(t *testing.T) {
		writeFile(t, dir, handleRel, handleJS(`"B"`))
		if err := c.Reload(); err != nil {
			t.Fatal(err)
		}
		cn, _ := c.Connector("alpha")
		if cn == alpha {
			t.Fatal("alpha not reloaded after its handle.js changed")
		}
		if cn.Webhooks["hook"].Handle == alpha.Webhooks["hook"].Handle {
			t.Fatal("the reloaded connector shares the old script")
		}
		if b, _ := c.Connector("beta"); b != beta {
			t.Fatal("beta reloaded though it did not change")
		}
		alpha = cn
	})

	t.Run("broken edit keeps the last good version", func(t *testing.T) {
		writeFile(t, dir, handleRel, "export default async function handle() {\n  return {\n}}}\n")
		if err := c.Reload(); err != nil {
			t.Fatal(err)
		}
		if cn, _ := c.Connector("alpha"); cn != alpha {
			t.Fatal("alpha not served in its last good version")
		}
		probs := c.Problems()
		if len(probs) == 0 || !strings.HasPrefix(probs[0], handle+":3:") {
			t.Fatalf("problems %q, want one at %s:3", probs, handle)
		}
		if !strings.Contains(logs.String(), handle+":3:") {
			t.Fatalf("the log does not name the problem:\n%s", logs.String())
		}
	})

	t.Run("fixed edit takes over", func(t *testing.T) {
		writeFile(t, dir, handleRel, handleJS(`"C"`))
		if err := c.Reload(); err != nil {
			t.Fatal(err)
		}
		if cn, _ := c.Connector("alpha"); cn == alpha {
			t.Fatal("fixed alpha not served")
		}
		if p := c.Problems(); len(p) != 0 {
			t.Fatalf("problems left after the fix: %q", p)
		}
	})

	t.Run("new connector appears, broken new one is reported", func(t *testing.T) {
		writeConnector(t, dir, "gamma", "gamma", handleJS(`"G"`))
		writeConnector(t, dir, "delta", "delta", "syntax error (\n")
		if err := c.Reload(); err != nil {
			t.Fatal(err)
		}
		if got := keys(c.Connectors()); !slices.Equal(got, []string{"alpha", "beta", "gamma"}) {
			t.Fatalf("connectors %v", got)
		}
		if p := c.Problems(); len(p) != 1 || !strings.Contains(p[0], filepath.Join("delta", "global-webhooks")) {
			t.Fatalf("problems %q", p)
		}
	})

	t.Run("a key already served is refused", func(t *testing.T) {
		writeConnector(t, dir, "zeta", "beta", handleJS(`"Z"`))
		if err := c.Reload(); err != nil {
			t.Fatal(err)
		}
		if b, _ := c.Connector("beta"); b != beta {
			t.Fatal("beta taken over by another directory")
		}
		if p := c.Problems(); !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, `"beta" is already used`) }) {
			t.Fatalf("problems %q", p)
		}
	})

	t.Run("removed directories go away with their problems", func(t *testing.T) {
		for _, name := range []string{"gamma", "delta", "zeta"} {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Reload(); err != nil {
			t.Fatal(err)
		}
		if got := keys(c.Connectors()); !slices.Equal(got, []string{"alpha", "beta"}) {
			t.Fatalf("connectors %v", got)
		}
		if p := c.Problems(); len(p) != 0 {
			t.Fatalf("problems %q", p)
		}
	})

	t.Run("connector.yml removed is a broken edit", func(t *testing.T) {
		if err := os.Remove(filepath.Join(dir, "beta", "connector.yml")); err != nil {
			t.Fatal(err)
		}
		age(t, dir, filepath.Join(dir, "beta"))
		if err := c.Reload(); err != nil {
			t.Fatal(err)
		}
		if b, _ := c.Connector("beta"); b != beta {
			t.Fatal("beta not served in its last good version")
		}
		if len(c.Problems()) == 0 {
			t.Fatal("no problem reported")
		}
	})
}

func TestNewRefusesBrokenTree(t *testing.T) {
	dir := t.TempDir()
	writeConnector(t, dir, "alpha", "alpha", "nope (\n")
	_, err := catalog.New(dir, nil)
	if _, ok := err.(*connector.LoadError); !ok {
		t.Fatalf("New: %v, want a *connector.LoadError", err)
	}
}

// TestRunPicksUpEdits checks the polling loop end to end, with a fresh (racy) edit.
func TestRunPicksUpEdits(t *testing.T) {
	dir := t.TempDir()
	writeConnector(t, dir, "alpha", "alpha", handleJS(`"A"`))
	c, err := catalog.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := c.Connector("alpha")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, 20*time.Millisecond) }()

	path := filepath.Join(dir, "alpha", "global-webhooks", "hook", "handle.js")
	if err := os.WriteFile(path, []byte(handleJS(`"B"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cn, _ := c.Connector("alpha"); cn != before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("edit not picked up within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
