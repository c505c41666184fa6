package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/bus"
	"github.com/switchboard-run/switchboard/runtime/delivery"
	"github.com/switchboard-run/switchboard/runtime/store"
)

func TestDeliverySigned(t *testing.T) {
	e := start(t, t.TempDir(), delivery.Config{Schedule: fast(3)})
	rcv := newReceiver(t)
	ep := e.createEndpoint(rcv.URL)
	env, data := e.publish("message-posted", `{"text":"hello"}`)

	req := rcv.waitFor(t, 1)[0]
	verify(t, ep.Secret, req)
	if !bytes.Equal(req.body, data) {
		t.Errorf("body\n got %s\nwant %s", req.body, data)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json",
		"User-Agent":   "switchboard",
		"webhook-id":   delivery.MessageID(env.ID, ep.ID),
	} {
		if got := req.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if id := req.header.Get("webhook-id"); !strings.HasPrefix(id, "msg_") {
		t.Errorf("webhook-id %q does not start with msg_", id)
	}

	var attempts []store.Attempt
	eventually(t, "the attempt to be recorded", func() bool {
		e.call("GET", "/v1/integrations/slack/endpoints/"+ep.ID+"/attempts", nil, &attempts)
		return len(attempts) == 1
	})
	if a := attempts[0]; a.Status != 200 || a.Attempt != 1 || a.EventID != env.ID || a.MessageID != req.header.Get("webhook-id") {
		t.Errorf("attempt = %+v", a)
	}
}

func TestRetriesKeepTheWebhookID(t *testing.T) {
	e := start(t, t.TempDir(), delivery.Config{Schedule: fast(5)})
	rcv := newReceiver(t, 500, 500, 200)
	ep := e.createEndpoint(rcv.URL)
	e.publish("message-posted", `{"n":1}`)

	got := rcv.waitFor(t, 3)
	for _, r := range got {
		if id := r.header.Get("webhook-id"); id != got[0].header.Get("webhook-id") {
			t.Errorf("webhook-id %q, want %q on every attempt", id, got[0].header.Get("webhook-id"))
		}
		verify(t, ep.Secret, r)
	}
	var attempts []store.Attempt
	eventually(t, "three attempts", func() bool {
		e.call("GET", "/v1/integrations/slack/endpoints/"+ep.ID+"/attempts", nil, &attempts)
		return len(attempts) == 3
	})
	// Newest first.
	for i, want := range []int{200, 500, 500} {
		if attempts[i].Status != want || attempts[i].Attempt != 3-i {
			t.Errorf("attempts[%d] = status %d attempt %d, want %d and %d", i, attempts[i].Status, attempts[i].Attempt, want, 3-i)
		}
	}
	// Delivered: no more requests come, and no dead letter.
	e.publish("message-posted", `{"n":2}`)
	rcv.waitFor(t, 4)
	var dls []store.DeadLetter
	e.call("GET", "/v1/integrations/slack/endpoints/"+ep.ID+"/dead-letters", nil, &dls)
	if len(dls) != 0 {
		t.Errorf("dead letters: %d, want none", len(dls))
	}
}

func TestGoneDisablesTheEndpoint(t *testing.T) {
	e := start(t, t.TempDir(), delivery.Config{Schedule: fast(5)})
	gone := newReceiver(t, http.StatusGone)
	healthy := newReceiver(t)
	goneEP := e.createEndpoint(gone.URL)
	e.createEndpoint(healthy.URL)

	e.publish("message-posted", `{"n":1}`)
	gone.waitFor(t, 1)
	var ep endpointReply
	eventually(t, "the endpoint to be disabled", func() bool {
		e.call("GET", "/v1/integrations/slack/endpoints/"+goneEP.ID, nil, &ep)
		return !ep.Enabled
	})
	if !strings.Contains(ep.DisabledReason, "410") {
		t.Errorf("disabledReason = %q", ep.DisabledReason)
	}
	var dls []store.DeadLetter
	e.call("GET", "/v1/integrations/slack/endpoints/"+goneEP.ID+"/dead-letters", nil, &dls)
	if len(dls) != 1 {
		t.Errorf("dead letters: %d, want 1", len(dls))
	}

	// Later events reach the healthy endpoint only.
	e.publish("message-posted", `{"n":2}`)
	healthy.waitFor(t, 2)
	if n := len(gone.requests()); n != 1 {
		t.Errorf("the disabled endpoint got %d requests, want 1", n)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	e := start(t, t.TempDir(), delivery.Config{Schedule: fast(5)})
	rcv := newReceiver(t, http.StatusTooManyRequests, http.StatusOK)
	rcv.header.Set("Retry-After", "1")
	e.createEndpoint(rcv.URL)
	e.publish("message-posted", `{}`)

	got := rcv.waitFor(t, 2)
	if d := got[1].at.Sub(got[0].at); d < time.Second {
		t.Errorf("retried after %s, want at least the 1s Retry-After asked for", d)
	}
}

func TestSlowEndpointDoesNotHoldBackOthers(t *testing.T) {
	e := start(t, t.TempDir(), delivery.Config{Schedule: fast(3), Timeout: time.Minute})
	release := make(chan struct{})
	hung := make(chan struct{}, 100)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung <- struct{}{}
		<-release
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs before slow.Close
	healthy := newReceiver(t)
	e.createEndpoint(slow.URL)
	e.createEndpoint(healthy.URL)

	// More events than the slow endpoint has slots for.
	const n = 2 * delivery.DefaultConcurrency
	for i := range n {
		e.publish("message-posted", `{"i":`+string(rune('0'+i))+`}`)
	}
	healthy.waitFor(t, n)
	select {
	case <-hung:
	default:
		t.Fatal("the slow endpoint got no request")
	}
	select {
	case <-release:
		t.Fatal("the slow endpoint was released before the healthy one was served")
	default:
	}
}

func TestDeadLetterAndReplay(t *testing.T) {
	e := start(t, t.TempDir(), delivery.Config{Schedule: fast(3)})
	rcv := newReceiver(t, 500)
	ep := e.createEndpoint(rcv.URL)
	env, data := e.publish("message-posted", `{"n":1}`)
	e.publish("message-posted", `{"n":2}`)

	var dls []store.DeadLetter
	eventually(t, "two dead letters", func() bool {
		e.call("GET", "/v1/integrations/slack/endpoints/"+ep.ID+"/dead-letters", nil, &dls)
		return len(dls) == 2
	})
	if n := len(rcv.requests()); n != 6 {
		t.Errorf("receiver got %d requests, want 3 attempts of each event", n)
	}
	var first store.DeadLetter
	for _, d := range dls {
		if d.EventID == env.ID {
			first = d
		}
	}
	if first.ID == "" || len(first.Attempts) != 3 || !bytes.Equal(first.Envelope, data) ||
		first.MessageID != delivery.MessageID(env.ID, ep.ID) || !strings.Contains(first.Reason, "exhausted") {
		t.Fatalf("dead letter = %+v", first)
	}

	rcv.setStatuses(200)
	var replayed struct{ Replayed int }
	path := "/v1/integrations/slack/endpoints/" + ep.ID
	if status := e.call("POST", path+"/dead-letters/"+first.ID+"/replay", nil, &replayed); status != http.StatusAccepted || replayed.Replayed != 1 {
		t.Fatalf("replay: status %d, %+v", status, replayed)
	}
	got := rcv.waitFor(t, 7)
	last := got[6]
	if !bytes.Equal(last.body, data) || last.header.Get("webhook-id") != first.MessageID {
		t.Errorf("replayed request: webhook-id %q body %s", last.header.Get("webhook-id"), last.body)
	}
	verify(t, ep.Secret, last)
	if status := e.call("POST", path+"/dead-letters/"+first.ID+"/replay", nil, nil); status != http.StatusNotFound {
		t.Errorf("replaying a replayed dead letter: status %d, want 404", status)
	}

	// The rest, by time range.
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if status := e.call("POST", path+"/replay", map[string]string{"since": since, "until": until}, &replayed); status != http.StatusAccepted || replayed.Replayed != 1 {
		t.Fatalf("range replay: status %d, %+v", status, replayed)
	}
	rcv.waitFor(t, 8)
	e.call("GET", path+"/dead-letters", nil, &dls)
	if len(dls) != 0 {
		t.Errorf("%d dead letters left after replaying all", len(dls))
	}
}

func TestRestartResumesARetrySchedule(t *testing.T) {
	dir := t.TempDir()
	// The second attempt waits long enough for a restart to fall inside the wait.
	cfg := delivery.Config{Schedule: []time.Duration{0, 2 * time.Second, 2 * time.Second}, Jitter: -1}
	e := start(t, dir, cfg)
	rcv := newReceiver(t, 500, 200)
	ep := e.createEndpoint(rcv.URL)
	e.publish("message-posted", `{"n":1}`)
	first := rcv.waitFor(t, 1)[0]
	// The failure is recorded, so its retry is scheduled: stop inside the wait.
	eventually(t, "the failed attempt to be recorded", func() bool {
		var attempts []store.Attempt
		e.call("GET", "/v1/integrations/slack/endpoints/"+ep.ID+"/attempts", nil, &attempts)
		return len(attempts) == 1 && attempts[0].Status == 500
	})
	e.stop()

	start(t, dir, cfg)
	got := rcv.waitFor(t, 2)
	if got[1].header.Get("webhook-id") != first.header.Get("webhook-id") {
		t.Errorf("after the restart, webhook-id %q, want %q", got[1].header.Get("webhook-id"), first.header.Get("webhook-id"))
	}
	verify(t, ep.Secret, got[1])
}

func TestEventKeys(t *testing.T) {
	e := start(t, t.TempDir(), delivery.Config{Schedule: fast(3)})
	all := newReceiver(t)
	other := newReceiver(t)
	e.createEndpoint(all.URL)
	e.createEndpoint(other.URL, "other-event")

	e.publish("message-posted", `{"n":1}`)
	e.publish("other-event", `{"n":2}`)
	all.waitFor(t, 2)
	got := other.waitFor(t, 1)
	if !strings.Contains(string(got[0].body), `"eventKey":"other-event"`) {
		t.Errorf("the filtered endpoint got %s", got[0].body)
	}
	// A third event for both: the filtered one still has only its own.
	e.publish("other-event", `{"n":3}`)
	all.waitFor(t, 3)
	other.waitFor(t, 2)
	for _, r := range other.requests() {
		if strings.Contains(string(r.body), "message-posted") {
			t.Errorf("the filtered endpoint got a message-posted event")
		}
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	e := start(t, t.TempDir(), delivery.Config{Schedule: fast(2)})
	target := newReceiver(t)
	redirect := newReceiver(t, http.StatusFound)
	redirect.header.Set("Location", target.URL)
	ep := e.createEndpoint(redirect.URL)
	e.publish("message-posted", `{}`)

	var dls []store.DeadLetter
	eventually(t, "a dead letter", func() bool {
		e.call("GET", "/v1/integrations/slack/endpoints/"+ep.ID+"/dead-letters", nil, &dls)
		return len(dls) == 1
	})
	if n := len(target.requests()); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
	if a := dls[0].Attempts[0]; a.Status != http.StatusFound || !strings.Contains(a.Error, "redirect") {
		t.Errorf("attempt = %+v", a)
	}
}

func TestSecretRotation(t *testing.T) {
	e := start(t, t.TempDir(), delivery.Config{Schedule: fast(2)})
	rcv := newReceiver(t)
	ep := e.createEndpoint(rcv.URL)
	var rotated endpointReply
	path := "/v1/integrations/slack/endpoints/" + ep.ID
	if status := e.call("PATCH", path, map[string]any{"rotateSecret": true}, &rotated); status != http.StatusOK {
		t.Fatalf("rotating: status %d", status)
	}
	if rotated.Secret == "" || rotated.Secret == ep.Secret {
		t.Fatalf("rotation returned secret %q", rotated.Secret)
	}
	e.publish("message-posted", `{}`)
	req := rcv.waitFor(t, 1)[0]
	if n := len(strings.Fields(req.header.Get("webhook-signature"))); n != 2 {
		t.Errorf("%d signatures during the grace period, want 2", n)
	}
	verify(t, ep.Secret, req)
	verify(t, rotated.Secret, req)
}

func TestTestRoute(t *testing.T) {
	e := start(t, t.TempDir(), delivery.Config{Schedule: fast(2)})
	rcv := newReceiver(t, http.StatusAccepted)
	ep := e.createEndpoint(rcv.URL)
	var reply struct {
		Status     int    `json:"status"`
		DurationMs *int64 `json:"durationMs"`
		Body       string `json:"body"`
	}
	if status := e.call("POST", "/v1/integrations/slack/endpoints/"+ep.ID+"/test", nil, &reply); status != http.StatusOK {
		t.Fatalf("test: status %d", status)
	}
	if reply.Status != http.StatusAccepted || reply.DurationMs == nil || reply.Body != "answered 202" {
		t.Errorf("test reply = %+v", reply)
	}
	req := rcv.requests()[0]
	verify(t, ep.Secret, req)
	var env struct {
		EventName string          `json:"eventName"`
		Payload   json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(req.body, &env); err != nil || env.EventName != "test" || string(env.Payload) != `{"test":true}` {
		t.Errorf("test event = %s (%v)", req.body, err)
	}

	// An endpoint that does not answer: status 0 and the reason.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	var deadEP endpointReply
	e.call("POST", "/v1/integrations/slack/endpoints", map[string]any{"url": dead.URL}, &deadEP)
	var failed struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	}
	e.call("POST", "/v1/integrations/slack/endpoints/"+deadEP.ID+"/test", nil, &failed)
	if failed.Status != 0 || failed.Error == "" {
		t.Errorf("test of a closed port = %+v", failed)
	}
}

// Other 4xx answers are retried like 5xx (as Svix does): a receiver that rejects during a
// deploy or a secret rotation still gets the message once it is fixed.
func TestClientErrorsAreRetried(t *testing.T) {
	e := start(t, t.TempDir(), delivery.Config{Schedule: fast(3)})
	rcv := newReceiver(t, http.StatusUnauthorized, http.StatusBadRequest, http.StatusOK)
	e.createEndpoint(rcv.URL)
	e.publish("message-posted", `{}`)
	got := rcv.waitFor(t, 3)
	if got[0].header.Get("webhook-id") != got[2].header.Get("webhook-id") {
		t.Error("the retries of a 401 carried another webhook-id")
	}
}

// Deleting an endpoint removes its consumer and the tasks still waiting for a retry.
func TestDeletedEndpointLeavesNothingQueued(t *testing.T) {
	e := start(t, t.TempDir(), delivery.Config{Schedule: []time.Duration{0, time.Hour}})
	rcv := newReceiver(t, 500)
	ep := e.createEndpoint(rcv.URL)
	e.publish("message-posted", `{}`)
	rcv.waitFor(t, 1)

	js := e.bus.JetStream()
	stream, err := js.Stream(t.Context(), delivery.DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	consumers := func() int {
		n := 0
		for range stream.ListConsumers(t.Context()).Info() {
			n++
		}
		return n
	}
	if n := consumers(); n != 1 {
		t.Fatalf("%d endpoint consumers, want 1", n)
	}
	if status := e.call("DELETE", "/v1/integrations/slack/endpoints/"+ep.ID, nil, nil); status != http.StatusNoContent {
		t.Fatalf("delete: status %d", status)
	}
	eventually(t, "the consumer and its task to go", func() bool {
		info, err := stream.Info(t.Context())
		return err == nil && info.State.Msgs == 0 && consumers() == 0
	})
}

// Two services on one NATS and one store (two processes, as far as JetStream can tell):
// they share the work, and every event reaches the endpoint once.
func TestTwoInstancesDeliverOnce(t *testing.T) {
	e := start(t, t.TempDir(), delivery.Config{Schedule: fast(3)})
	other, err := e.nats.Connect(t.Context(), bus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := delivery.New(t.Context(), delivery.Config{
		Bus: other, Store: e.store, AllowPrivateNetworks: true, Schedule: fast(3), ScanInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		other.Close(context.Background())
	})

	rcv := newReceiver(t)
	e.createEndpoint(rcv.URL)
	const n = 40
	for i := range n {
		e.publish("message-posted", fmt.Sprintf(`{"i":%d}`, i))
	}
	rcv.waitFor(t, n)
	// A last event: once it is in, any duplicate of the earlier ones would be too.
	e.publish("message-posted", `{"last":true}`)
	got := rcv.waitFor(t, n+1)
	seen := map[string]bool{}
	for _, r := range rcv.requests() {
		id := r.header.Get("webhook-id")
		if seen[id] {
			t.Errorf("webhook-id %s delivered twice", id)
		}
		seen[id] = true
	}
	if len(got) != n+1 || len(rcv.requests()) != n+1 {
		t.Errorf("%d requests, want %d", len(rcv.requests()), n+1)
	}
}
