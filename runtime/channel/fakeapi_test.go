package channel

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FakeAPI is the test connector's API on a loopback server (exported for the end-to-end
// tests of package channel_test): an SSE stream at /api/stream and polled listings at
// /api/orders and /api/tickets, all requiring "Authorization: Bearer <Token>".
//
// The stream serves every event after the request's Last-Event-ID, then waits for more,
// sending a heartbeat comment every 50ms, until the client goes away; SSEScript, when set,
// replaces that behaviour for the n-th connection (0-based).
type FakeAPI struct {
	*httptest.Server
	Token string

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every change
	events    []FakeEvent
	script    map[int]func(w http.ResponseWriter, flush func(), r *http.Request)
	conns     int
	lastIDs   []string // the Last-Event-ID of each stream connection, "" when none
	openConns int
	listings  map[string]any // path -> JSON body
	status    map[string]int // path -> forced status
	hits      map[string]int // path -> requests served
	badAuth   int
}

// FakeEvent is one event of the fake stream: an SSE id and its data.
type FakeEvent struct {
	ID   string
	Data string
}

// NewFakeAPI starts the fake API; it stops with the test.
func NewFakeAPI(t testing.TB) *FakeAPI {
	t.Helper()
	f := &FakeAPI{
		Token:    "tok-secret",
		changed:  make(chan struct{}),
		script:   map[int]func(http.ResponseWriter, func(), *http.Request){},
		listings: map[string]any{},
		status:   map[string]int{},
		hits:     map[string]int{},
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// Host is the host:port to give connections as their apiHost parameter.
func (f *FakeAPI) Host() string { return strings.TrimPrefix(f.URL, "http://") }

func (f *FakeAPI) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// AddEvents appends events to the stream.
func (f *FakeAPI) AddEvents(evs ...FakeEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, evs...)
	f.notify()
}

// Script replaces the stream's behaviour for the n-th connection.
func (f *FakeAPI) Script(n int, fn func(w http.ResponseWriter, flush func(), r *http.Request)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[n] = fn
}

// SetListing sets the JSON body served at path (e.g. "/api/orders").
func (f *FakeAPI) SetListing(path string, body any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listings[path] = body
	f.notify()
}

// SetStatus makes path answer status (0: serve the listing again).
func (f *FakeAPI) SetStatus(path string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status[path] = status
}

// Hits is the number of requests path has served.
func (f *FakeAPI) Hits(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

// StreamConns is the number of stream connections so far, and how many are open.
func (f *FakeAPI) StreamConns() (total, open int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns, f.openConns
}

// LastEventIDs are the Last-Event-ID headers of the stream connections, in order.
func (f *FakeAPI) LastEventIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lastIDs...)
}

// BadAuth counts requests without the right credentials.
func (f *FakeAPI) BadAuth() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.badAuth
}

func (f *FakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	if r.Header.Get("Authorization") != "Bearer "+f.Token {
		f.badAuth++
		f.mu.Unlock()
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if r.URL.Path == "/api/stream" {
		n := f.conns
		f.conns++
		f.openConns++
		f.lastIDs = append(f.lastIDs, r.Header.Get("Last-Event-ID"))
		fn := f.script[n]
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.openConns--
			f.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		flush := func() { w.(http.Flusher).Flush() }
		flush()
		if fn != nil {
			fn(w, flush, r)
			return
		}
		f.stream(w, flush, r)
		return
	}
	status, body := f.status[r.URL.Path], f.listings[r.URL.Path]
	f.mu.Unlock()
	if status != 0 {
		http.Error(w, "failing on purpose", status)
		return
	}
	if body == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

// stream serves the events after Last-Event-ID, then new ones as they come.
func (f *FakeAPI) stream(w http.ResponseWriter, flush func(), r *http.Request) {
	next := 0
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		f.mu.Lock()
		for i, ev := range f.events {
			if ev.ID == last {
				next = i + 1
			}
		}
		f.mu.Unlock()
	}
	heartbeat := time.NewTicker(50 * time.Millisecond)
	defer heartbeat.Stop()
	for {
		f.mu.Lock()
		pending := f.events[next:]
		next = len(f.events)
		changed := f.changed
		f.mu.Unlock()
		for _, ev := range pending {
			fmt.Fprintf(w, "id: %s\ndata: %s\n\n", ev.ID, ev.Data)
		}
		flush()
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-heartbeat.C:
			fmt.Fprint(w, ": heartbeat\n\n")
			flush()
		}
	}
}

// Tick is the data of a stream event of the test connector's "tick" type.
func Tick(id int) FakeEvent {
	s := strconv.Itoa(id)
	return FakeEvent{ID: s, Data: `{"type":"tick","id":"t` + s + `","data":{"n":` + s + `}}`}
}
