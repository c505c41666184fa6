package connector

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/connector")

// writeArchive extracts a txtar archive into a fresh directory and returns it.
func writeArchive(tb testing.TB, ar *txtar.Archive) string {
	tb.Helper()
	dir := tb.TempDir()
	for _, f := range ar.Files {
		path := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, f.Data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// writeTree extracts an archive given as text (see txtar) into a fresh directory.
func writeTree(tb testing.TB, archive string) string {
	tb.Helper()
	return writeArchive(tb, txtar.Parse([]byte(archive)))
}

// problems returns a load error's problems as strings with dir shown as "DIR".
func problems(tb testing.TB, err error, dir string) []string {
	tb.Helper()
	le, ok := err.(*LoadError)
	if !ok {
		tb.Fatalf("want a *LoadError, got %T: %v", err, err)
	}
	var out []string
	for _, p := range le.Problems {
		out = append(out, strings.ReplaceAll(p.String(), dir, "DIR"))
	}
	return out
}

// golden compares got with the file at path, rewriting it under -update.
func golden(tb testing.TB, path, got string) {
	tb.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if got != string(want) {
		tb.Errorf("output differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func errorsAs[T error](err error, target *T) bool { return errors.As(err, target) }
