package redisstore

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// silentRedis accepts connections and never answers, like a Redis host that hangs or a
// network that drops packets.
func silentRedis(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return "redis://" + ln.Addr().String()
}

// TestFailFast: a silent Redis fails a call by the caller's deadline, and without one
// within a few seconds, not go-redis's default dozen.
func TestFailFast(t *testing.T) {
	url := silentRedis(t)
	for _, tt := range []struct {
		name     string
		deadline time.Duration // 0: none
		within   time.Duration
	}{
		{"the caller's deadline bounds the call", 300 * time.Millisecond, time.Second},
		{"without a deadline, two reads of 2s at most", 0, 6 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			start := time.Now()
			s, err := Open(ctx, url, "p")
			if err == nil {
				s.Close(ctx)
				t.Fatal("Open of a silent Redis succeeded")
			}
			if d := time.Since(start); d > tt.within {
				t.Errorf("failed after %v, want within %v: %v", d, tt.within, err)
			}
		})
	}
}
