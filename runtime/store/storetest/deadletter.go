package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// IngestDeadLetterStore is what RunIngestDeadLetters needs: a Store (to create and delete
// integrations) that keeps ingest dead letters too.
type IngestDeadLetterStore interface {
	store.Store
	store.IngestDeadLetterStore
}

// RunIngestDeadLetters runs the conformance suite of store.IngestDeadLetterStore against
// the stores that open returns, under the same rules as Run.
func RunIngestDeadLetters(t *testing.T, open func(t *testing.T) IngestDeadLetterStore) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s IngestDeadLetterStore)
	}{
		{"PutGetListDelete", testIngestDeadLetters},
		{"Errors", testIngestDeadLetterErrors},
		{"KeepsTheNewest", testIngestDeadLetterTrim},
		{"ConcurrentPuts", testIngestDeadLetterConcurrent},
		{"DeleteIntegrationCascades", testIngestDeadLetterCascade},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, open(t)) })
	}
}

func ingestDeadLetter(id, integrationKey string) store.IngestDeadLetter {
	return store.IngestDeadLetter{
		ID:               id,
		IntegrationKey:   integrationKey,
		WebhookKey:       "events",
		Method:           "POST",
		Query:            "mode=throw&a=1&a=2",
		Header:           map[string][]string{"Content-Type": {"application/json"}, "X-Signature": {"v1=abc", "v1=def"}},
		Host:             "hooks.example.com",
		Body:             []byte("{\"n\":1}\x00\xff binary too"),
		Error:            "handle failed: boom at handle.js:3",
		ConnectorVersion: "sha256:0123456789ab",
		Attempts:         1,
		CreatedAt:        created,
		UpdatedAt:        created,
	}
}

func mustPutIngestDeadLetter(t testing.TB, s IngestDeadLetterStore, d store.IngestDeadLetter) {
	t.Helper()
	if err := s.PutIngestDeadLetter(t.Context(), d); err != nil {
		t.Fatalf("PutIngestDeadLetter(%s): %v", d.ID, err)
	}
}

func deadLetterIDs(list []store.IngestDeadLetter) []string {
	out := make([]string, len(list))
	for i, d := range list {
		out[i] = d.ID
	}
	return out
}

func testIngestDeadLetters(t *testing.T, s IngestDeadLetterStore) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	mustCreateIntegration(t, s, integration("other"))
	if list, err := s.ListIngestDeadLetters(ctx, "slack"); err != nil || len(list) != 0 {
		t.Fatalf("before any: %v %v", list, err)
	}
	a := ingestDeadLetter("dl_01A", "slack")
	b := ingestDeadLetter("dl_01B", "slack")
	b.CreatedAt = created.Add(-time.Hour) // order is by time, then id
	mustPutIngestDeadLetter(t, s, a)
	mustPutIngestDeadLetter(t, s, b)
	mustPutIngestDeadLetter(t, s, ingestDeadLetter("dl_01C", "other"))

	got, err := s.GetIngestDeadLetter(ctx, "slack", "dl_01A")
	if err != nil {
		t.Fatalf("GetIngestDeadLetter: %v", err)
	}
	assertSame(t, "GetIngestDeadLetter", got, a)
	if string(got.Body) != string(a.Body) {
		t.Errorf("body %q, want %q", got.Body, a.Body)
	}
	list, err := s.ListIngestDeadLetters(ctx, "slack")
	if err != nil {
		t.Fatal(err)
	}
	if g := fmt.Sprint(deadLetterIDs(list)); g != "[dl_01A dl_01B]" {
		t.Errorf("list = %s, want [dl_01A dl_01B]", g)
	}
	c := ingestDeadLetter("dl_01C", "slack") // as old as a: the higher id is newer
	mustPutIngestDeadLetter(t, s, c)
	list, _ = s.ListIngestDeadLetters(ctx, "slack")
	if g := fmt.Sprint(deadLetterIDs(list)); g != "[dl_01C dl_01A dl_01B]" {
		t.Errorf("list = %s, want [dl_01C dl_01A dl_01B]", g)
	}
	if err := s.DeleteIngestDeadLetter(ctx, "slack", "dl_01C"); err != nil {
		t.Fatal(err)
	}

	// A put replaces.
	a.Attempts, a.Error, a.UpdatedAt = 2, "still broken", updated
	mustPutIngestDeadLetter(t, s, a)
	if got, _ := s.GetIngestDeadLetter(ctx, "slack", "dl_01A"); got.Attempts != 2 || got.Error != "still broken" {
		t.Errorf("after replacing: %+v", got)
	}

	if err := s.DeleteIngestDeadLetter(ctx, "slack", "dl_01A"); err != nil {
		t.Fatalf("DeleteIngestDeadLetter: %v", err)
	}
	if _, err := s.GetIngestDeadLetter(ctx, "slack", "dl_01A"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v, want ErrNotFound", err)
	}
	if err := s.DeleteIngestDeadLetter(ctx, "slack", "dl_01A"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting again: %v, want ErrNotFound", err)
	}
	if _, err := s.GetIngestDeadLetter(ctx, "other", "dl_01B"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another integration's: %v, want ErrNotFound", err)
	}
}

func testIngestDeadLetterErrors(t *testing.T, s IngestDeadLetterStore) {
	ctx := t.Context()
	if err := s.PutIngestDeadLetter(ctx, ingestDeadLetter("dl_1", "missing")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("put for a missing integration: %v, want ErrNotFound", err)
	}
	mustCreateIntegration(t, s, integration("slack"))
	for name, d := range map[string]store.IngestDeadLetter{
		"bad id":          ingestDeadLetter("dl 1", "slack"),
		"bad integration": ingestDeadLetter("dl_1", "sl.ack"),
		"bad webhook": func() store.IngestDeadLetter {
			d := ingestDeadLetter("dl_1", "slack")
			d.WebhookKey = ""
			return d
		}(),
	} {
		if err := s.PutIngestDeadLetter(ctx, d); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := s.GetIngestDeadLetter(ctx, "slack", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get unknown: %v", err)
	}
	if _, err := s.GetIngestDeadLetter(ctx, "sl ack", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get with an invalid integration key: %v", err)
	}
	if list, err := s.ListIngestDeadLetters(ctx, "sl ack"); err != nil || len(list) != 0 {
		t.Errorf("list with an invalid integration key: %v %v", list, err)
	}
	if list, err := s.ListIngestDeadLetters(ctx, "missing"); err != nil || len(list) != 0 {
		t.Errorf("list of a missing integration: %v %v", list, err)
	}
}

func testIngestDeadLetterTrim(t *testing.T, s IngestDeadLetterStore) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	mustCreateIntegration(t, s, integration("other"))
	mustPutIngestDeadLetter(t, s, ingestDeadLetter("dl_0000", "other"))
	// Ids run against time, so that trimming by id would keep the wrong ones. The newest is
	// put several times over (a sender retrying), which must not count more than once.
	n := store.MaxIngestDeadLetters + 5
	for i := range n {
		d := ingestDeadLetter(fmt.Sprintf("dl_%04d", n-1-i), "slack")
		d.Body = nil
		d.CreatedAt = created.Add(time.Duration(i) * time.Second)
		mustPutIngestDeadLetter(t, s, d)
		if i == n-1 {
			for range 3 {
				d.Attempts++
				mustPutIngestDeadLetter(t, s, d)
			}
		}
	}
	list, err := s.ListIngestDeadLetters(ctx, "slack")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != store.MaxIngestDeadLetters {
		t.Fatalf("%d kept, want %d", len(list), store.MaxIngestDeadLetters)
	}
	if want := fmt.Sprintf("dl_%04d", n-1-5); list[0].ID != "dl_0000" || list[0].Attempts != 4 || list[len(list)-1].ID != want {
		t.Errorf("kept %s (attempts %d)..%s, want dl_0000 (4)..%s", list[0].ID, list[0].Attempts, list[len(list)-1].ID, want)
	}
	// Replacing one with a newer time moves it: the oldest goes next.
	oldest := list[len(list)-1]
	oldest.CreatedAt = created.Add(time.Hour)
	mustPutIngestDeadLetter(t, s, oldest)
	d := ingestDeadLetter("dl_new", "slack")
	d.CreatedAt = created.Add(2 * time.Hour)
	mustPutIngestDeadLetter(t, s, d)
	list, _ = s.ListIngestDeadLetters(ctx, "slack")
	if len(list) != store.MaxIngestDeadLetters || list[0].ID != "dl_new" || list[1].ID != oldest.ID {
		t.Errorf("after moving %s: %d kept, newest %v", oldest.ID, len(list), deadLetterIDs(list[:2]))
	}
	if _, err := s.GetIngestDeadLetter(ctx, "other", "dl_0000"); err != nil {
		t.Errorf("another integration's dead letter was trimmed: %v", err)
	}
}

func testIngestDeadLetterConcurrent(t *testing.T, s IngestDeadLetterStore) {
	mustCreateIntegration(t, s, integration("slack"))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 40 {
				d := ingestDeadLetter(fmt.Sprintf("dl_%d_%03d", w, i), "slack")
				if err := s.PutIngestDeadLetter(t.Context(), d); err != nil {
					t.Errorf("put: %v", err)
				}
			}
		})
	}
	wg.Wait()
	list, err := s.ListIngestDeadLetters(t.Context(), "slack")
	if err != nil || len(list) != store.MaxIngestDeadLetters {
		t.Errorf("after 160 concurrent puts: %d kept (%v), want %d", len(list), err, store.MaxIngestDeadLetters)
	}
}

func testIngestDeadLetterCascade(t *testing.T, s IngestDeadLetterStore) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	mustPutIngestDeadLetter(t, s, ingestDeadLetter("dl_1", "slack"))
	if err := s.DeleteIntegration(ctx, "slack"); err != nil {
		t.Fatal(err)
	}
	mustCreateIntegration(t, s, integration("slack"))
	if list, err := s.ListIngestDeadLetters(ctx, "slack"); err != nil || len(list) != 0 {
		t.Errorf("after deleting and installing again: %v %v, want none", deadLetterIDs(list), err)
	}
}
