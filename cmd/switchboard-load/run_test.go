package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// webhookServer answers like a global webhook: 201 for a user below users, 404 for the
// rest, and counts what it saw.
type webhookServer struct {
	users   int64
	delay   time.Duration
	got     atomic.Int64
	matched atomic.Int64
	bad     atomic.Int64 // bodies that were not the expected JSON
	maxUser atomic.Int64
	onHit   func()
}

func (s *webhookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.got.Add(1)
	if s.onHit != nil {
		s.onHit()
	}
	var body struct {
		EventID    string `json:"event_id"`
		FromUserID *int64 `json:"from_user_id"`
	}
	data, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(data, &body); err != nil || body.FromUserID == nil || body.EventID == "" ||
		r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		s.bad.Add(1)
	}
	time.Sleep(s.delay)
	for body.FromUserID != nil {
		if m := s.maxUser.Load(); *body.FromUserID <= m || s.maxUser.CompareAndSwap(m, *body.FromUserID) {
			break
		}
	}
	if body.FromUserID != nil && *body.FromUserID < s.users {
		s.matched.Add(1)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "Webhook received")
		return
	}
	w.WriteHeader(http.StatusNotFound)
}

type result struct {
	Targets []summary `json:"targets"`
}

func runJSON(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), append([]string{"-json"}, args...), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var res result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("decoding the results: %v\n%s", err, stdout.String())
	}
	return res
}

func TestRunClosedLoop(t *testing.T) {
	srv := &webhookServer{users: 100}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	res := runJSON(t, "-n", "200", "-concurrency", "4", "-users", "100", "-match", "0.5",
		"-target", "hook="+ts.URL+"/webhooks/tok@"+strconv.Itoa(os.Getpid()))
	if len(res.Targets) != 1 {
		t.Fatalf("%d targets in the results", len(res.Targets))
	}
	got := res.Targets[0]
	if got.Requests != 200 || srv.got.Load() != 200 {
		t.Errorf("sent %d, server saw %d, want 200", got.Requests, srv.got.Load())
	}
	if got.Statuses["201"]+got.Statuses["404"] != 200 || len(got.Statuses) != 2 || len(got.Errors) != 0 {
		t.Errorf("statuses %v errors %v, want only 201 and 404 summing to 200", got.Statuses, got.Errors)
	}
	if got.Statuses["201"] != srv.matched.Load() || got.Matched != srv.matched.Load() || got.OK != got.Statuses["201"] {
		t.Errorf("201s %d, tool's matched %d, ok %d, server's matched %d: want all equal",
			got.Statuses["201"], got.Matched, got.OK, srv.matched.Load())
	}
	if m := got.Statuses["201"]; m < 50 || m > 150 {
		t.Errorf("%d of 200 matched with -match 0.5", m)
	}
	if srv.bad.Load() != 0 {
		t.Errorf("%d malformed requests", srv.bad.Load())
	}
	if got.LatencyMicros["p50"] <= 0 || got.LatencyMicros["p99.9"] < got.LatencyMicros["p50"] {
		t.Errorf("latencies %v", got.LatencyMicros)
	}
	if got.ProcErr != "" || got.ServerPeakRSSBytes <= 0 {
		t.Errorf("no /proc figures for the test process: %q, peak rss %d", got.ProcErr, got.ServerPeakRSSBytes)
	}
}

func TestRunInterleaves(t *testing.T) {
	var mu sync.Mutex
	var order []string
	hit := func(name string) func() {
		return func() {
			mu.Lock()
			defer mu.Unlock()
			if len(order) == 0 || order[len(order)-1] != name {
				order = append(order, name)
			}
		}
	}
	a := httptest.NewServer(&webhookServer{users: 10, onHit: hit("A")})
	defer a.Close()
	b := httptest.NewServer(&webhookServer{users: 10, onHit: hit("B")})
	defer b.Close()

	res := runJSON(t, "-n", "60", "-rounds", "3", "-concurrency", "2", "-users", "10", "-baseline", "b",
		"a="+a.URL, "b="+b.URL)
	if got := strings.Join(order, ","); got != "A,B,A,B,A,B" {
		t.Errorf("turns %s, want A,B,A,B,A,B", got)
	}
	for _, s := range res.Targets {
		if s.Requests != 60 {
			t.Errorf("%s: %d requests, want 60", s.Name, s.Requests)
		}
	}
}

// TestRunUsersOf: -users-of gives one target its own subscribed users, so that one
// interleaved run compares 10 subscriptions with 1,000 and each target's matched requests
// name users it has.
func TestRunUsersOf(t *testing.T) {
	small := &webhookServer{users: 10}
	a := httptest.NewServer(small)
	defer a.Close()
	big := &webhookServer{users: 1000}
	b := httptest.NewServer(big)
	defer b.Close()

	res := runJSON(t, "-n", "400", "-concurrency", "2", "-users", "10", "-users-of", "big=1000", "-match", "1",
		"small="+a.URL, "big="+b.URL)
	if small.matched.Load() != 400 || big.matched.Load() != 400 {
		t.Errorf("matched %d and %d of 400: every user must be a subscribed one of its own target", small.matched.Load(), big.matched.Load())
	}
	if big.maxUser.Load() < 10 {
		t.Errorf("big's highest user is %d: it got small's users", big.maxUser.Load())
	}
	if res.Targets[1].Users != 1000 || res.Targets[0].Users != 0 {
		t.Errorf("users in the results: %d, %d", res.Targets[0].Users, res.Targets[1].Users)
	}
	for _, args := range [][]string{{"-users-of", "nobody=5", "a=" + a.URL}, {"-users-of", "a=0", "a=" + a.URL}} {
		if err := run(t.Context(), args, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "-users-of") {
			t.Errorf("%v: error %v, want one naming -users-of", args, err)
		}
	}
}

func TestRunOpenLoopCountsQueueing(t *testing.T) {
	// 40 requests due every 5ms, one at a time, to a server that takes 20ms: the last is
	// due at 195ms and answered near 800ms. Measured from its due time, the worst latency
	// is about 600ms; a closed loop measure would say 20ms.
	srv := &webhookServer{users: 10, delay: 20 * time.Millisecond}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	res := runJSON(t, "-rate", "200", "-n", "40", "-concurrency", "1", "-users", "10", "-match", "1", ts.URL)
	got := res.Targets[0]
	if got.Requests != 40 || got.Statuses["201"] != 40 {
		t.Fatalf("requests %d statuses %v, want 40 201s", got.Requests, got.Statuses)
	}
	if max := got.LatencyMicros["max"]; max < 400_000 {
		t.Errorf("max latency %dµs, want > 400ms: queueing is not counted", max)
	}
	if p50 := got.LatencyMicros["p50"]; p50 < 100_000 {
		t.Errorf("p50 %dµs, want > 100ms", p50)
	}
}

func TestRunOpenLoopPaced(t *testing.T) {
	srv := &webhookServer{users: 10}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	start := time.Now()
	res := runJSON(t, "-rate", "100", "-duration", "300ms", "-concurrency", "4", "-users", "10", ts.URL)
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Errorf("30 requests at 100/s took %v", took)
	}
	if got := res.Targets[0].Requests; got != 30 {
		t.Errorf("%d requests, want 30 (100/s for 300ms)", got)
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "1", "http://10.1.2.3:8080/webhooks/x"},
		{"-n", "1", "a=http://127.0.0.1:1/", "b=http://example.com/"},
		{"setup", "-redis-url", "redis://192.168.0.5:6379"},
		{"setup", "-redis-url", "redis://127.0.0.1:6379", "-api", "http://switchboard.internal:8080"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			err := run(ctx, args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
				t.Fatalf("err = %v, want a refusal", err)
			}
		})
	}
}

func TestRunReport(t *testing.T) {
	a := httptest.NewServer(&webhookServer{users: 10})
	defer a.Close()
	var stdout bytes.Buffer
	if err := run(t.Context(), []string{"-n", "20", "-quiet", "first=" + a.URL, "second=" + a.URL}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	out := stdout.String()
	for _, want := range []string{"target", "p99.9", "first", "second", "ratios to first", "1.00x"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
