package router_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/router"
	"github.com/switchboard-run/switchboard/runtime/store"
)

// memSeen is an in-memory Seen store recording its marks.
type memSeen struct {
	mu      sync.Mutex
	marks   map[string]time.Duration // integration \x00 key -> ttl
	readErr error
	markErr error
}

func (m *memSeen) Seen(_ context.Context, integrationKey string, keys []string) ([]bool, error) {
	if m.readErr != nil {
		return nil, m.readErr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]bool, len(keys))
	for i, k := range keys {
		_, out[i] = m.marks[integrationKey+"\x00"+k]
	}
	return out, nil
}

func (m *memSeen) MarkSeen(_ context.Context, integrationKey string, keys []string, ttl time.Duration) error {
	if m.markErr != nil {
		return m.markErr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.marks == nil {
		m.marks = map[string]time.Duration{}
	}
	for _, k := range keys {
		m.marks[integrationKey+"\x00"+k] = ttl
	}
	return nil
}

// seenMatcher is a Matcher that is also a Seen store, as the real stores are.
type seenMatcher struct {
	*memMatcher
	*memSeen
}

func TestRouteSeen(t *testing.T) {
	routes := map[string][]store.Route{
		"slack/events/team:T1": {{SubscriptionID: "sub_1", ConnectionID: "conn_1", CustomerID: "cust_1", EventKey: "posted"}},
	}
	ev := func(id string) router.Event {
		return router.Event{Selector: "team:T1", Payload: map[string]any{"id": id}, ID: id}
	}
	input := func(dk string, evs ...router.Event) router.Input {
		return router.Input{IntegrationKey: "slack", WebhookKey: "events", Events: evs, DeliveryKey: dk}
	}

	t.Run("a retry publishes only what is new", func(t *testing.T) {
		seen := &memSeen{}
		pub := &fakePublisher{}
		r := router.New(router.Config{Matcher: &memMatcher{routes: routes}, Publisher: pub, Seen: seen, SeenTTL: time.Hour})
		res, err := r.Route(t.Context(), input("d1", ev("e1"), ev("e2")))
		if err != nil || res.Published != 2 || res.Duplicates != 0 {
			t.Fatalf("first: %+v %v", res, err)
		}
		if len(seen.marks) != 2 {
			t.Errorf("marks after the first request: %v, want 2", seen.marks)
		}
		for _, ttl := range seen.marks {
			if ttl != time.Hour {
				t.Errorf("ttl %v, want 1h", ttl)
			}
		}
		res, err = r.Route(t.Context(), input("d2", ev("e2"), ev("e3")))
		if err != nil || res.Published != 1 || res.Duplicates != 1 {
			t.Fatalf("second: %+v %v, want 1 published and 1 duplicate", res, err)
		}
		if got := pub.calls[1]; len(got) != 1 || got[0].ID == pub.calls[0][0].ID || got[0].ID == pub.calls[0][1].ID {
			t.Errorf("second publish: %d messages", len(got))
		}
		res, err = r.Route(t.Context(), input("d3", ev("e1"), ev("e3")))
		if err != nil || res.Published != 0 || res.Duplicates != 2 || len(pub.calls) != 2 {
			t.Fatalf("third: %+v %v (publishes %d), want nothing published", res, err, len(pub.calls))
		}
	})

	t.Run("events without ids are recognised by delivery id and position", func(t *testing.T) {
		seen := &memSeen{}
		pub := &fakePublisher{}
		r := router.New(router.Config{Matcher: &memMatcher{routes: routes}, Publisher: pub, Seen: seen})
		noID := router.Event{Selector: "team:T1", Payload: "x"}
		withID := func(id string, evs ...router.Event) router.Input {
			in := input("body-hash", evs...)
			in.DeliveryID = id
			return in
		}
		first, _ := r.Route(t.Context(), withID("d1", noID, noID))
		again, _ := r.Route(t.Context(), withID("d1", noID, noID))
		other, _ := r.Route(t.Context(), withID("d2", noID))
		// Without a delivery id, the same body is not taken for a retry beyond the bus's
		// window: two events may have the same body.
		none, _ := r.Route(t.Context(), input("body-hash", noID))
		noneAgain, _ := r.Route(t.Context(), input("body-hash", noID))
		if first.Published != 2 || again.Duplicates != 2 || other.Published != 1 || none.Published != 1 || noneAgain.Published != 1 {
			t.Errorf("first %+v, again %+v, other %+v, without delivery id %+v then %+v", first, again, other, none, noneAgain)
		}
		if len(seen.marks) != 3 {
			t.Errorf("%d marks, want 3", len(seen.marks))
		}
	})

	t.Run("nothing is marked when publishing fails", func(t *testing.T) {
		seen := &memSeen{}
		pub := &fakePublisher{err: errors.New("bus down")}
		r := router.New(router.Config{Matcher: &memMatcher{routes: routes}, Publisher: pub, Seen: seen})
		if _, err := r.Route(t.Context(), input("d1", ev("e1"))); err == nil {
			t.Fatal("no error")
		}
		if len(seen.marks) != 0 {
			t.Errorf("marked %v after a failed publish", seen.marks)
		}
		pub.err = nil
		if res, err := r.Route(t.Context(), input("d1", ev("e1"))); err != nil || res.Published != 1 {
			t.Errorf("retry: %+v %v, want published", res, err)
		}
	})

	t.Run("unmatched events are not marked", func(t *testing.T) {
		seen := &memSeen{}
		r := router.New(router.Config{Matcher: &memMatcher{routes: routes}, Publisher: &fakePublisher{}, Seen: seen})
		res, err := r.Route(t.Context(), input("d1", router.Event{Selector: "team:T9", ID: "e9"}))
		if err != nil || res.Unmatched != 1 || len(seen.marks) != 0 {
			t.Errorf("%+v %v, marks %v", res, err, seen.marks)
		}
	})

	t.Run("an unreadable seen store fails the request", func(t *testing.T) {
		down := errors.New("store down")
		pub := &fakePublisher{}
		r := router.New(router.Config{Matcher: &memMatcher{routes: routes}, Publisher: pub, Seen: &memSeen{readErr: down}})
		if _, err := r.Route(t.Context(), input("d1", ev("e1"))); !errors.Is(err, down) || len(pub.calls) != 0 {
			t.Errorf("err %v, %d publishes; want the store's error and nothing published", err, len(pub.calls))
		}
	})

	t.Run("a failed mark still reports the publish", func(t *testing.T) {
		r := router.New(router.Config{Matcher: &memMatcher{routes: routes}, Publisher: &fakePublisher{}, Seen: &memSeen{markErr: errors.New("down")}})
		if res, err := r.Route(t.Context(), input("d1", ev("e1"))); err != nil || res.Published != 1 {
			t.Errorf("%+v %v, want published", res, err)
		}
	})

	t.Run("a matcher that is a Seen store is used as one", func(t *testing.T) {
		m := seenMatcher{&memMatcher{routes: routes}, &memSeen{}}
		r := router.New(router.Config{Matcher: m, Publisher: &fakePublisher{}})
		r.Route(t.Context(), input("d1", ev("e1")))
		if res, _ := r.Route(t.Context(), input("d2", ev("e1"))); res.Duplicates != 1 {
			t.Errorf("%+v, want a duplicate", res)
		}
	})

	t.Run("keys are per webhook", func(t *testing.T) {
		seen := &memSeen{}
		both := map[string][]store.Route{
			"slack/events/team:T1": routes["slack/events/team:T1"],
			"slack/other/team:T1":  routes["slack/events/team:T1"],
		}
		r := router.New(router.Config{Matcher: &memMatcher{routes: both}, Publisher: &fakePublisher{}, Seen: seen})
		r.Route(t.Context(), input("d1", ev("e1")))
		in := input("d1", ev("e1"))
		in.WebhookKey = "other"
		if res, _ := r.Route(t.Context(), in); res.Published != 1 {
			t.Errorf("same id on another webhook: %+v, want published", res)
		}
	})
}
