package api

import (
	"testing"
	"time"
)

func TestIngestLimits(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)

	t.Run("zero rate is no limit", func(t *testing.T) {
		l := newIngestLimits(0, 0)
		for range 10_000 {
			if ok, _ := l.allow("i", "w", now); !ok {
				t.Fatal("refused without a limit")
			}
		}
	})

	t.Run("burst, then refused with the wait for one token", func(t *testing.T) {
		l := newIngestLimits(2, 3) // a token every 500ms
		for i := range 3 {
			if ok, _ := l.allow("i", "w", now); !ok {
				t.Fatalf("request %d of the burst refused", i+1)
			}
		}
		ok, wait := l.allow("i", "w", now)
		if ok || wait != 500*time.Millisecond {
			t.Fatalf("after the burst: ok %v, wait %v; want refused, 500ms", ok, wait)
		}
		if e, secs := rateLimited(wait); e.Status != 429 || secs != "1" {
			t.Fatalf("rateLimited(%v) = %d, Retry-After %s; want 429, 1", wait, e.Status, secs)
		}
		if ok, _ := l.allow("i", "w", now.Add(500*time.Millisecond)); !ok {
			t.Fatal("refused after the bucket refilled one token")
		}
	})

	t.Run("each URL has its own bucket", func(t *testing.T) {
		l := newIngestLimits(1, 1)
		if ok, _ := l.allow("i", "w", now); !ok {
			t.Fatal("first request refused")
		}
		if ok, _ := l.allow("i", "w", now); ok {
			t.Fatal("second request to the same URL allowed")
		}
		for _, k := range [][2]string{{"i", "other"}, {"j", "w"}} {
			if ok, _ := l.allow(k[0], k[1], now); !ok {
				t.Fatalf("%v refused because another URL is flooded", k)
			}
		}
	})

	t.Run("slow rate gives a Retry-After in whole seconds", func(t *testing.T) {
		l := newIngestLimits(0.1, 1) // a token every 10s
		l.allow("i", "w", now)
		_, wait := l.allow("i", "w", now.Add(2500*time.Millisecond))
		if _, secs := rateLimited(wait); secs != "8" {
			t.Fatalf("Retry-After %s after waiting 2.5s of 10s, want 8", secs)
		}
	})
}
