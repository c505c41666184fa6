package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// RunSeen runs the conformance suite of store.SeenStore against the stores that open
// returns, under the same rules as Run.
func RunSeen(t *testing.T, open func(t *testing.T) store.SeenStore) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s store.SeenStore)
	}{
		{"MarkAndRead", testSeen},
		{"Expiry", testSeenExpiry},
		{"FirstExpiryStands", testSeenFirstExpiry},
		{"Errors", testSeenErrors},
		{"Concurrent", testSeenConcurrent},
		{"ManyExpired", testSeenPrune},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, open(t)) })
	}
}

func mustSeen(t testing.TB, s store.SeenStore, integrationKey string, keys ...string) []bool {
	t.Helper()
	got, err := s.Seen(t.Context(), integrationKey, keys)
	if err != nil {
		t.Fatalf("Seen(%s, %q): %v", integrationKey, keys, err)
	}
	if len(got) != len(keys) {
		t.Fatalf("Seen(%s, %q) = %v: want %d answers", integrationKey, keys, got, len(keys))
	}
	return got
}

func mustMarkSeen(t testing.TB, s store.SeenStore, integrationKey string, ttl time.Duration, keys ...string) {
	t.Helper()
	if err := s.MarkSeen(t.Context(), integrationKey, keys, ttl); err != nil {
		t.Fatalf("MarkSeen(%s, %q): %v", integrationKey, keys, err)
	}
}

func testSeen(t *testing.T, s store.SeenStore) {
	if got := mustSeen(t, s, "slack", "a", "b"); !slices.Equal(got, []bool{false, false}) {
		t.Fatalf("before any mark: %v", got)
	}
	if got := mustSeen(t, s, "slack"); len(got) != 0 {
		t.Errorf("no keys: %v", got)
	}
	mustMarkSeen(t, s, "slack", time.Hour, "a", "c")
	mustMarkSeen(t, s, "slack", time.Hour) // nothing to mark
	if got := mustSeen(t, s, "slack", "a", "b", "c", "a"); !slices.Equal(got, []bool{true, false, true, true}) {
		t.Errorf("after marking a and c: %v", got)
	}
	// Marks are per integration; any byte but NUL may be in a key.
	if got := mustSeen(t, s, "github", "a", "c"); !slices.Equal(got, []bool{false, false}) {
		t.Errorf("another integration sees %v", got)
	}
	odd := "sel:{x}:é *"
	mustMarkSeen(t, s, "github", time.Hour, odd)
	if got := mustSeen(t, s, "github", odd, "a"); !slices.Equal(got, []bool{true, false}) {
		t.Errorf("odd key: %v", got)
	}
	if got := mustSeen(t, s, "bad key", "a"); !slices.Equal(got, []bool{false}) {
		t.Errorf("invalid integration key: %v", got)
	}
}

func testSeenExpiry(t *testing.T, s store.SeenStore) {
	mustMarkSeen(t, s, "slack", 300*time.Millisecond, "short")
	mustMarkSeen(t, s, "slack", time.Hour, "long")
	if got := mustSeen(t, s, "slack", "short", "long"); !slices.Equal(got, []bool{true, true}) {
		t.Fatalf("fresh marks: %v", got)
	}
	time.Sleep(500 * time.Millisecond)
	if got := mustSeen(t, s, "slack", "short", "long"); !slices.Equal(got, []bool{false, true}) {
		t.Errorf("after the short ttl: %v, want only long seen", got)
	}
	mustMarkSeen(t, s, "slack", time.Hour, "short")
	if got := mustSeen(t, s, "slack", "short"); !got[0] {
		t.Errorf("marked again after expiry: not seen")
	}
}

func testSeenFirstExpiry(t *testing.T, s store.SeenStore) {
	mustMarkSeen(t, s, "slack", 300*time.Millisecond, "k")
	mustMarkSeen(t, s, "slack", time.Hour, "k")
	time.Sleep(500 * time.Millisecond)
	if got := mustSeen(t, s, "slack", "k"); got[0] {
		t.Errorf("a second mark extended the first one's expiry")
	}
}

func testSeenErrors(t *testing.T, s store.SeenStore) {
	ctx := t.Context()
	for _, tt := range []struct {
		name        string
		integration string
		keys        []string
		ttl         time.Duration
	}{
		{"invalid integration key", "bad key", []string{"a"}, time.Hour},
		{"empty key", "slack", []string{"a", ""}, time.Hour},
		{"key with NUL", "slack", []string{"a\x00b"}, time.Hour},
		{"zero ttl", "slack", []string{"a"}, 0},
	} {
		if err := s.MarkSeen(ctx, tt.integration, tt.keys, tt.ttl); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tt.name, err)
		}
	}
	if got := mustSeen(t, s, "slack", "a"); got[0] {
		t.Errorf("a refused mark wrote something")
	}
}

func testSeenConcurrent(t *testing.T, s store.SeenStore) {
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				k := fmt.Sprintf("k%d", (w*20+i)%40) // every key marked by several workers
				if err := s.MarkSeen(t.Context(), "slack", []string{k}, time.Hour); err != nil {
					t.Errorf("MarkSeen(%s): %v", k, err)
				}
			}
		})
	}
	wg.Wait()
	keys := make([]string, 41)
	for i := range 40 {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	keys[40] = "k40"
	got := mustSeen(t, s, "slack", keys...)
	for i, seen := range got {
		if seen != (i < 40) {
			t.Errorf("%s seen = %v", keys[i], seen)
		}
	}
}

// testSeenPrune marks many keys that expire, then more: none of the expired reads as seen,
// and every fresh one does, whatever the store does about the expired ones.
func testSeenPrune(t *testing.T, s store.SeenStore) {
	old := make([]string, 300)
	for i := range old {
		old[i] = fmt.Sprintf("old-%03d", i)
	}
	mustMarkSeen(t, s, "slack", 200*time.Millisecond, old...)
	time.Sleep(300 * time.Millisecond)
	for i := range 50 {
		mustMarkSeen(t, s, "slack", time.Hour, fmt.Sprintf("new-%03d", i))
	}
	for i, seen := range mustSeen(t, s, "slack", old...) {
		if seen {
			t.Errorf("%s seen after its expiry", old[i])
		}
	}
	for i := range 50 {
		if k := fmt.Sprintf("new-%03d", i); !mustSeen(t, s, "slack", k)[0] {
			t.Errorf("%s not seen", k)
		}
	}
}
