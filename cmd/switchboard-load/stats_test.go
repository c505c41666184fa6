package main

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	// 1..10000 µs once each: the q-th percentile is q*100 µs, within the histogram's 0.1%.
	s := newStats()
	for us := 1; us <= 10000; us++ {
		s.record(201, nil, time.Duration(us)*time.Microsecond)
	}
	sum := summarize(target{Name: "t"}, s)
	for name, want := range map[string]float64{"p50": 5000, "p90": 9000, "p99": 9900, "p99.9": 9990, "max": 10000} {
		got := float64(sum.LatencyMicros[name])
		if math.Abs(got-want) > want*0.001+1 {
			t.Errorf("%s = %vµs, want %vµs ±0.1%%", name, got, want)
		}
	}
	if sum.Requests != 10000 || sum.OK != 10000 || sum.Statuses["201"] != 10000 {
		t.Errorf("counts: %+v", sum)
	}
}

func TestPercentilesSkewed(t *testing.T) {
	// 990 fast (1ms) and 10 slow (1s) responses: p50 and p90 are fast, p99.9 is slow.
	s := newStats()
	for i := range 1000 {
		latency := time.Millisecond
		if i%100 == 99 {
			latency = time.Second
		}
		s.record(200, nil, latency)
	}
	sum := summarize(target{}, s)
	near := func(got, want int64) bool { return math.Abs(float64(got-want)) <= float64(want)/1000+1 }
	if !near(sum.LatencyMicros["p50"], 1000) || !near(sum.LatencyMicros["p90"], 1000) || !near(sum.LatencyMicros["p99"], 1000) {
		t.Errorf("p50/p90/p99 = %v, want 1ms", sum.LatencyMicros)
	}
	if !near(sum.LatencyMicros["p99.9"], 1_000_000) || !near(sum.LatencyMicros["max"], 1_000_000) {
		t.Errorf("p99.9/max = %v, want 1s", sum.LatencyMicros)
	}
}

func TestStatsMergeAndErrors(t *testing.T) {
	a, b := newStats(), newStats()
	a.record(201, nil, time.Millisecond)
	a.record(503, nil, 2*time.Millisecond)
	b.record(201, nil, 3*time.Millisecond)
	b.record(0, fmt.Errorf("dialing: %w", syscall.ECONNREFUSED), 0)
	b.record(0, errors.New("something odd"), 0)
	a.merge(b)
	if a.Sent != 5 || a.ok() != 2 || a.responses() != 3 || a.Hist.TotalCount() != 3 {
		t.Errorf("sent %d ok %d responses %d recorded %d, want 5 2 3 3", a.Sent, a.ok(), a.responses(), a.Hist.TotalCount())
	}
	if got := formatCounts(a); got != "201:2 503:1 other:1 refused:1" {
		t.Errorf("formatCounts = %q", got)
	}
	if a.FirstError != "something odd" {
		t.Errorf("FirstError = %q", a.FirstError)
	}
}

func TestFormatMicros(t *testing.T) {
	for us, want := range map[int64]string{0: "-", 850: "850µs", 1234: "1.23ms", 56789: "56.8ms", 2_500_000: "2.5s"} {
		if got := formatMicros(us); got != want {
			t.Errorf("formatMicros(%d) = %q, want %q", us, got, want)
		}
	}
	if got := ratio(50, 100); !strings.HasPrefix(got, "0.50") {
		t.Errorf("ratio = %q", got)
	}
}
