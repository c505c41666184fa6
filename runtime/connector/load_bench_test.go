package connector

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// BenchmarkLoad500 loads a tree of 500 connectors, the shipped ones copied over and over
// under new keys: what `switchboard serve` and `check` do at start-up. Issue 8's target is
// under 3 seconds.
func BenchmarkLoad500(b *testing.B) {
	dir := b.TempDir()
	shipped, err := filepath.Glob("../../connectors/*/connector.yml")
	if err != nil || len(shipped) == 0 {
		b.Fatalf("no shipped connectors: %v", err)
	}
	keyLine := regexp.MustCompile(`(?m)^key: .*$`)
	for i := range 500 {
		src := filepath.Dir(shipped[i%len(shipped)])
		dst := filepath.Join(dir, fmt.Sprintf("c%03d", i))
		if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
			b.Fatal(err)
		}
		yml := filepath.Join(dst, "connector.yml")
		data, err := os.ReadFile(yml)
		if err != nil {
			b.Fatal(err)
		}
		data = keyLine.ReplaceAll(data, fmt.Appendf(nil, "key: c%03d", i))
		if err := os.WriteFile(yml, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		set, err := Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(set.Connectors); n != 500 {
			b.Fatalf("%d connectors loaded, want 500", n)
		}
	}
}
