package embedded_test

import (
	"path/filepath"
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
