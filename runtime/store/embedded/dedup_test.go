package embedded_test

import (
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/storetest"
)

func TestSeenConformance(t *testing.T) {
	storetest.RunSeen(t, func(t *testing.T) store.SeenStore {
		return openTestStore(t, filepath.Join(t.TempDir(), "switchboard.db"))
	})
}

// TestSeenSurvivesRestart: a mark is kept in the file, so a sender's retry after a restart
// is still recognised.
func TestSeenSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "switchboard.db")
	s := openTestStore(t, path)
	if err := s.MarkSeen(t.Context(), "slack", []string{"evt"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, path)
	got, err := s.Seen(t.Context(), "slack", []string{"evt"})
	if err != nil || !got[0] {
		t.Fatalf("after a restart: %v %v, want seen", got, err)
	}
}

// BenchmarkMarkSeen marks one new key per call from parallel callers, as ingest does; with
// -cpu 1,8,32 it shows the group commit at work (one fsync for many callers).
func BenchmarkMarkSeen(b *testing.B) {
	s := openTestStore(b, filepath.Join(b.TempDir(), "switchboard.db"))
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := strconv.FormatInt(n.Add(1), 10)
			if err := s.MarkSeen(b.Context(), "slack", []string{k}, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
}
