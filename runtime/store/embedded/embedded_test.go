package embedded_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/embedded"
	"github.com/switchboard-run/switchboard/runtime/store/storetest"
)

func openTestStore(t testing.TB, path string) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTestStore(t, filepath.Join(t.TempDir(), "switchboard.db"))
	})
}

func TestPersistence(t *testing.T) {
	storetest.RunPersistence(t, func(t *testing.T) (store.Store, func(t *testing.T) store.Store) {
		path := filepath.Join(t.TempDir(), "data", "switchboard.db")
		reopen := func(t *testing.T) store.Store { return openTestStore(t, path) }
		return openTestStore(t, path), reopen
	})
}

func TestOpenLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "switchboard.db")
	openTestStore(t, path)
	// bbolt's lock is per open file description, so a second Open in this process stands
	// in for a second process.
	_, err := embedded.Open(path)
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second Open: err = %v, want a lock error", err)
	}
}

func BenchmarkMatchRoutes(b *testing.B) {
	s := openTestStore(b, filepath.Join(b.TempDir(), "switchboard.db"))
	storetest.BenchmarkMatchRoutes(b, s)
}
