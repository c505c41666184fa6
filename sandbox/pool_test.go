package sandbox

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// spin keeps a runtime busy for about ms milliseconds.
const spin = "export default ({ ms }) => { const end = Date.now() + ms; while (Date.now() < end) {} return ms }"

func TestPoolBoundsItsRuntimes(t *testing.T) {
	p := NewPool(mustCompile(t, spin), Config{Size: 1, Max: 2})
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := 0
	for range 8 {
		wg.Go(func() {
			if _, err := p.Call(t.Context(), map[string]any{"ms": 20}, Env{}); err != nil {
				t.Error(err)
			}
			mu.Lock()
			peak = max(peak, len(p.slots))
			mu.Unlock()
		})
	}
	wg.Wait()
	if peak > 2 {
		t.Errorf("%d runtimes alive at once, want at most Max 2", peak)
	}
	if n := len(p.idle); n != len(p.slots) {
		t.Errorf("%d idle runtimes, %d alive: every runtime should be back", n, len(p.slots))
	}
}

func TestPoolWaitEndsWithTheCall(t *testing.T) {
	p := NewPool(mustCompile(t, spin), Config{Max: 1, Size: 1})
	go p.Call(context.Background(), map[string]any{"ms": 1000}, Env{})
	for len(p.slots) == 0 { // until the first call holds the only runtime
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.Call(ctx, map[string]any{"ms": 0}, Env{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for a runtime past the deadline: %v, want DeadlineExceeded", err)
	}
}

func TestPoolDropsExtraRuntimesOnceIdle(t *testing.T) {
	p := NewPool(mustCompile(t, spin), Config{Size: 1, Max: 4, IdleTimeout: time.Nanosecond})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { p.Call(t.Context(), map[string]any{"ms": 20}, Env{}) })
	}
	wg.Wait()
	time.Sleep(time.Millisecond)
	for range 4 { // calls one at a time: the pool no longer needs more than Size
		if _, err := p.Call(t.Context(), map[string]any{"ms": 0}, Env{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(p.slots); n != 1 {
		t.Errorf("%d runtimes alive after the burst, want Size 1", n)
	}
}
