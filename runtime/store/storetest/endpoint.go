package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// EndpointStore is what RunEndpoints needs: a Store (to create integrations) that keeps
// endpoints too.
type EndpointStore interface {
	store.Store
	store.EndpointStore
}

// RunEndpoints runs the conformance suite of store.EndpointStore against the stores that
// open returns, under the same rules as Run.
func RunEndpoints(t *testing.T, open func(t *testing.T) EndpointStore) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s EndpointStore)
	}{
		{"Endpoints", testEndpoints},
		{"EndpointErrors", testEndpointErrors},
		{"EndpointLimit", testEndpointLimit},
		{"ConcurrentEndpointLimit", testConcurrentEndpointLimit},
		{"Attempts", testAttempts},
		{"DeadLetters", testDeadLetters},
		{"DeleteEndpointCascades", testDeleteEndpoint},
		{"DeleteIntegrationRemovesEndpoints", testDeleteIntegrationEndpoints},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, open(t)) })
	}
}

func endpoint(id, integrationKey string, createdAt time.Time) store.Endpoint {
	return store.Endpoint{
		ID:             id,
		IntegrationKey: integrationKey,
		URL:            "https://example.com/hooks/" + id,
		EventKeys:      []string{"message-posted"},
		Description:    "endpoint " + id,
		Enabled:        true,
		Secret:         store.Secret("whsec_c2VjcmV0LW9mLQ" + id),
		CreatedAt:      createdAt,
		UpdatedAt:      createdAt,
	}
}

func mustCreateEndpoint(t testing.TB, s EndpointStore, ep store.Endpoint) {
	t.Helper()
	if err := s.CreateEndpoint(t.Context(), ep, 5); err != nil {
		t.Fatalf("CreateEndpoint(%s): %v", ep.ID, err)
	}
}

func testEndpoints(t *testing.T, s EndpointStore) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	mustCreateIntegration(t, s, integration("other"))
	b := endpoint("ep_b", "slack", created)
	a := endpoint("ep_a", "slack", created.Add(time.Second))
	a.EventKeys = nil
	mustCreateEndpoint(t, s, b)
	mustCreateEndpoint(t, s, a)
	mustCreateEndpoint(t, s, endpoint("ep_c", "other", created))

	got, err := s.GetEndpoint(ctx, "slack", "ep_b")
	if err != nil {
		t.Fatalf("GetEndpoint: %v", err)
	}
	assertSame(t, "GetEndpoint", got, b)
	if string(got.Secret) != string(b.Secret) {
		t.Errorf("GetEndpoint secret differs")
	}

	list, err := s.ListEndpoints(ctx, "slack")
	if err != nil {
		t.Fatalf("ListEndpoints: %v", err)
	}
	assertSame(t, "ListEndpoints (oldest first)", list, []store.Endpoint{b, a})

	empty, err := s.ListEndpoints(ctx, "nobody")
	if err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("ListEndpoints(unknown) = %v, %v; want an empty list", empty, err)
	}

	b.Enabled = false
	b.DisabledReason = "410 Gone"
	b.PreviousSecret, b.Secret = b.Secret, "whsec_bmV3"
	b.PreviousSecretExpiresAt = updated
	b.UpdatedAt = updated
	if err := s.UpdateEndpoint(ctx, b); err != nil {
		t.Fatalf("UpdateEndpoint: %v", err)
	}
	got, err = s.GetEndpoint(ctx, "slack", "ep_b")
	if err != nil {
		t.Fatalf("GetEndpoint after update: %v", err)
	}
	assertSame(t, "GetEndpoint after update", got, b)

	// The same id in another integration is another endpoint.
	if _, err := s.GetEndpoint(ctx, "other", "ep_b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetEndpoint(other, ep_b) err = %v, want ErrNotFound", err)
	}
}

func testEndpointErrors(t *testing.T, s EndpointStore) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	ep := endpoint("ep_1", "slack", created)
	mustCreateEndpoint(t, s, ep)

	for _, tt := range []struct {
		name string
		err  error
		want error
	}{
		{"create taken id", s.CreateEndpoint(ctx, ep, 5), store.ErrExists},
		{"create in missing integration", s.CreateEndpoint(ctx, endpoint("ep_2", "nobody", created), 5), store.ErrNotFound},
		{"create invalid id", s.CreateEndpoint(ctx, endpoint("ep.2", "slack", created), 5), store.ErrInvalid},
		{"update missing", s.UpdateEndpoint(ctx, endpoint("ep_2", "slack", created)), store.ErrNotFound},
		{"delete missing", s.DeleteEndpoint(ctx, "slack", "ep_2"), store.ErrNotFound},
		{"delete invalid", s.DeleteEndpoint(ctx, "slack", "ep 2"), store.ErrNotFound},
		{"attempt at missing endpoint", s.AddAttempt(ctx, "slack", store.Attempt{EndpointID: "ep_2", At: created}), store.ErrNotFound},
		{"dead letter of missing endpoint", s.PutDeadLetter(ctx, deadLetter("dl_1", "slack", "ep_2", created)), store.ErrNotFound},
		{"dead letter not JSON", s.PutDeadLetter(ctx, store.DeadLetter{ID: "dl_1", IntegrationKey: "slack", EndpointID: "ep_1", Envelope: json.RawMessage("{")}), store.ErrInvalid},
		{"delete missing dead letter", s.DeleteDeadLetter(ctx, "slack", "ep_1", "dl_9"), store.ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) {
				t.Errorf("err = %v, want %v", tt.err, tt.want)
			}
		})
	}
	for name, read := range map[string]func() error{
		"GetEndpoint":     func() error { _, err := s.GetEndpoint(ctx, "slack", "ep_2"); return err },
		"ListAttempts":    func() error { _, err := s.ListAttempts(ctx, "slack", "ep_2"); return err },
		"ListDeadLetters": func() error { _, err := s.ListDeadLetters(ctx, "slack", "ep_2"); return err },
		"GetDeadLetter":   func() error { _, err := s.GetDeadLetter(ctx, "slack", "ep_1", "dl_9"); return err },
		"GetEndpoint invalid key": func() error {
			_, err := s.GetEndpoint(ctx, "sl.ack", "ep_1")
			return err
		},
	} {
		if err := read(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s err = %v, want ErrNotFound", name, err)
		}
	}
}

func testEndpointLimit(t *testing.T, s EndpointStore) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	mustCreateIntegration(t, s, integration("other"))
	for i := range 5 {
		mustCreateEndpoint(t, s, endpoint(fmt.Sprintf("ep_%d", i), "slack", created))
	}
	if err := s.CreateEndpoint(ctx, endpoint("ep_5", "slack", created), 5); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("6th CreateEndpoint err = %v, want ErrLimit", err)
	}
	// The limit is per integration.
	mustCreateEndpoint(t, s, endpoint("ep_5", "other", created))
	if err := s.DeleteEndpoint(ctx, "slack", "ep_0"); err != nil {
		t.Fatalf("DeleteEndpoint: %v", err)
	}
	mustCreateEndpoint(t, s, endpoint("ep_5", "slack", created))
}

func testConcurrentEndpointLimit(t *testing.T, s EndpointStore) {
	mustCreateIntegration(t, s, integration("slack"))
	var wg sync.WaitGroup
	errs := make([]error, 12)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.CreateEndpoint(t.Context(), endpoint(fmt.Sprintf("ep_%02d", i), "slack", created), 5)
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrLimit):
			t.Errorf("CreateEndpoint: %v", err)
		}
	}
	list, err := s.ListEndpoints(t.Context(), "slack")
	if err != nil {
		t.Fatalf("ListEndpoints: %v", err)
	}
	if ok != 5 || len(list) != 5 {
		t.Errorf("%d creates succeeded and %d endpoints listed, want 5 and 5", ok, len(list))
	}
}

func testAttempts(t *testing.T, s EndpointStore) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	mustCreateEndpoint(t, s, endpoint("ep_1", "slack", created))
	mustCreateEndpoint(t, s, endpoint("ep_2", "slack", created))

	n := store.MaxAttempts + 5
	for i := range n {
		a := store.Attempt{
			EndpointID: "ep_1", MessageID: "msg_1", EventID: "evt_1", Attempt: i + 1,
			Status: 500, DurationMs: int64(i), Error: "status 500", Response: "oops", At: created.Add(time.Duration(i) * time.Second),
		}
		if err := s.AddAttempt(ctx, "slack", a); err != nil {
			t.Fatalf("AddAttempt %d: %v", i, err)
		}
	}
	list, err := s.ListAttempts(ctx, "slack", "ep_1")
	if err != nil {
		t.Fatalf("ListAttempts: %v", err)
	}
	if len(list) != store.MaxAttempts {
		t.Fatalf("ListAttempts returned %d attempts, want %d", len(list), store.MaxAttempts)
	}
	if list[0].Attempt != n || list[len(list)-1].Attempt != n-store.MaxAttempts+1 {
		t.Errorf("ListAttempts runs from attempt %d to %d, want newest first, %d to %d",
			list[0].Attempt, list[len(list)-1].Attempt, n, n-store.MaxAttempts+1)
	}
	other, err := s.ListAttempts(ctx, "slack", "ep_2")
	if err != nil || other == nil || len(other) != 0 {
		t.Errorf("ListAttempts(ep_2) = %v, %v; want an empty list", other, err)
	}
}

func deadLetter(id, integrationKey, endpointID string, at time.Time) store.DeadLetter {
	return store.DeadLetter{
		ID: id, IntegrationKey: integrationKey, EndpointID: endpointID,
		MessageID: "msg_" + id, EventID: "evt_" + id,
		Subject:   "events.cust_1.apps.app.event_received." + integrationKey + ".events.message-posted",
		Envelope:  json.RawMessage(`{"id":"evt_` + id + `","payload":{"n":1}}`),
		Reason:    "retries exhausted",
		Attempts:  []store.Attempt{{EndpointID: endpointID, MessageID: "msg_" + id, Attempt: 1, Status: 500, At: at}},
		CreatedAt: at,
	}
}

func testDeadLetters(t *testing.T, s EndpointStore) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	mustCreateEndpoint(t, s, endpoint("ep_1", "slack", created))
	d1 := deadLetter("dl_1", "slack", "ep_1", created)
	d2 := deadLetter("dl_2", "slack", "ep_1", created.Add(time.Minute))
	for _, d := range []store.DeadLetter{d1, d2} {
		if err := s.PutDeadLetter(ctx, d); err != nil {
			t.Fatalf("PutDeadLetter: %v", err)
		}
	}
	got, err := s.GetDeadLetter(ctx, "slack", "ep_1", "dl_1")
	if err != nil {
		t.Fatalf("GetDeadLetter: %v", err)
	}
	assertSame(t, "GetDeadLetter", got, d1)
	list, err := s.ListDeadLetters(ctx, "slack", "ep_1")
	if err != nil {
		t.Fatalf("ListDeadLetters: %v", err)
	}
	assertSame(t, "ListDeadLetters (newest first)", list, []store.DeadLetter{d2, d1})

	if err := s.DeleteDeadLetter(ctx, "slack", "ep_1", "dl_2"); err != nil {
		t.Fatalf("DeleteDeadLetter: %v", err)
	}
	list, err = s.ListDeadLetters(ctx, "slack", "ep_1")
	if err != nil {
		t.Fatalf("ListDeadLetters after delete: %v", err)
	}
	assertSame(t, "ListDeadLetters after delete", list, []store.DeadLetter{d1})

	// The oldest go beyond the limit.
	for i := range store.MaxDeadLetters + 2 {
		d := deadLetter(fmt.Sprintf("dl_x%04d", i), "slack", "ep_1", created.Add(time.Hour+time.Duration(i)*time.Second))
		if err := s.PutDeadLetter(ctx, d); err != nil {
			t.Fatalf("PutDeadLetter %d: %v", i, err)
		}
	}
	list, err = s.ListDeadLetters(ctx, "slack", "ep_1")
	if err != nil {
		t.Fatalf("ListDeadLetters: %v", err)
	}
	if len(list) != store.MaxDeadLetters {
		t.Fatalf("ListDeadLetters returned %d, want %d", len(list), store.MaxDeadLetters)
	}
	if _, err := s.GetDeadLetter(ctx, "slack", "ep_1", "dl_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the oldest dead letter is still there (err = %v)", err)
	}
	if list[0].ID != fmt.Sprintf("dl_x%04d", store.MaxDeadLetters+1) {
		t.Errorf("newest dead letter = %s", list[0].ID)
	}
}

func testDeleteEndpoint(t *testing.T, s EndpointStore) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	mustCreateEndpoint(t, s, endpoint("ep_1", "slack", created))
	if err := s.AddAttempt(ctx, "slack", store.Attempt{EndpointID: "ep_1", Attempt: 1, At: created}); err != nil {
		t.Fatalf("AddAttempt: %v", err)
	}
	if err := s.PutDeadLetter(ctx, deadLetter("dl_1", "slack", "ep_1", created)); err != nil {
		t.Fatalf("PutDeadLetter: %v", err)
	}
	if err := s.DeleteEndpoint(ctx, "slack", "ep_1"); err != nil {
		t.Fatalf("DeleteEndpoint: %v", err)
	}
	// A new endpoint of the same id starts empty.
	mustCreateEndpoint(t, s, endpoint("ep_1", "slack", created))
	attempts, err := s.ListAttempts(ctx, "slack", "ep_1")
	if err != nil || len(attempts) != 0 {
		t.Errorf("ListAttempts after delete and re-create = %v, %v; want none", attempts, err)
	}
	dls, err := s.ListDeadLetters(ctx, "slack", "ep_1")
	if err != nil || len(dls) != 0 {
		t.Errorf("ListDeadLetters after delete and re-create = %v, %v; want none", dls, err)
	}
}

func testDeleteIntegrationEndpoints(t *testing.T, s EndpointStore) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	mustCreateIntegration(t, s, integration("other"))
	mustCreateEndpoint(t, s, endpoint("ep_1", "slack", created))
	mustCreateEndpoint(t, s, endpoint("ep_2", "other", created))
	if err := s.AddAttempt(ctx, "slack", store.Attempt{EndpointID: "ep_1", Attempt: 1, At: created}); err != nil {
		t.Fatalf("AddAttempt: %v", err)
	}
	if err := s.PutDeadLetter(ctx, deadLetter("dl_1", "slack", "ep_1", created)); err != nil {
		t.Fatalf("PutDeadLetter: %v", err)
	}
	if err := s.DeleteIntegration(ctx, "slack"); err != nil {
		t.Fatalf("DeleteIntegration: %v", err)
	}
	// An integration installed again under the key starts without endpoints.
	mustCreateIntegration(t, s, integration("slack"))
	if list, err := s.ListEndpoints(ctx, "slack"); err != nil || len(list) != 0 {
		t.Errorf("ListEndpoints after re-creating the integration = %v, %v; want none", list, err)
	}
	mustCreateEndpoint(t, s, endpoint("ep_1", "slack", created))
	if list, err := s.ListAttempts(ctx, "slack", "ep_1"); err != nil || len(list) != 0 {
		t.Errorf("ListAttempts of a new endpoint with an old id = %v, %v; want none", list, err)
	}
	if list, err := s.ListDeadLetters(ctx, "slack", "ep_1"); err != nil || len(list) != 0 {
		t.Errorf("ListDeadLetters of a new endpoint with an old id = %v, %v; want none", list, err)
	}
	if list, err := s.ListEndpoints(ctx, "other"); err != nil || len(list) != 1 {
		t.Errorf("ListEndpoints(other) = %v, %v; want its one endpoint", list, err)
	}
}
