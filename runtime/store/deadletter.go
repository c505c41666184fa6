package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// MaxIngestDeadLetters is how many ingest dead letters a store keeps per integration; a new
// one beyond it pushes out the oldest (by CreatedAt).
const MaxIngestDeadLetters = 100

// IngestDeadLetter is a request to a global webhook whose handle failed (threw, timed out or
// returned an invalid result), kept so that it can be replayed once the connector is fixed.
// It holds the request as received, signature headers included, since handle needs them
// again; it never holds the webhook's path, whose token is a secret.
//
// The API derives the ID from the request, so that a sender's retries of one failing
// request update one dead letter (Attempts counts them) rather than fill the store.
type IngestDeadLetter struct {
	ID             string `json:"id"`
	IntegrationKey string `json:"integrationKey"`
	WebhookKey     string `json:"webhookKey"`
	Method         string `json:"method"`
	// Query is the request's raw query string.
	Query  string              `json:"query"`
	Header map[string][]string `json:"header"`
	Host   string              `json:"host,omitempty"`
	Body   []byte              `json:"body"`
	// Error is why handle failed, last time it ran on this request.
	Error string `json:"error"`
	// ConnectorVersion identifies the handle that failed (a hash of its files).
	ConnectorVersion string `json:"connectorVersion"`
	// Attempts counts the runs of handle that failed on this request: the request's and its
	// retries', then each failed replay.
	Attempts  int       `json:"attempts"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Check reports, wrapping ErrInvalid, an ID, IntegrationKey or WebhookKey that fails
// ValidKey. Stores call it on every write.
func (d IngestDeadLetter) Check() error {
	if !ValidKey(d.ID) || !ValidKey(d.IntegrationKey) || !ValidKey(d.WebhookKey) {
		return fmt.Errorf("ingest dead letter %q of webhook %q of integration %q: %w", d.ID, d.WebhookKey, d.IntegrationKey, ErrInvalid)
	}
	return nil
}

// IngestDeadLetterStore keeps the ingest dead letters of each integration. Both stores
// implement it beside Store; storetest.RunIngestDeadLetters is its conformance suite. Every
// method is safe for concurrent use. Dead letters go with their integration when it is
// deleted.
type IngestDeadLetterStore interface {
	// PutIngestDeadLetter stores d, replacing one with its ID, and keeps the newest
	// MaxIngestDeadLetters of its integration (by CreatedAt, then ID). ErrNotFound when
	// the integration is missing.
	PutIngestDeadLetter(ctx context.Context, d IngestDeadLetter) error
	// ListIngestDeadLetters returns the integration's dead letters, newest first (by
	// CreatedAt, then ID); none for an integration without any, or without a record.
	ListIngestDeadLetters(ctx context.Context, integrationKey string) ([]IngestDeadLetter, error)
	GetIngestDeadLetter(ctx context.Context, integrationKey, id string) (IngestDeadLetter, error) // ErrNotFound
	DeleteIngestDeadLetter(ctx context.Context, integrationKey, id string) error                  // ErrNotFound
}

// SortIngestDeadLetters sorts dead letters newest first (by CreatedAt, then ID), as
// ListIngestDeadLetters returns them.
func SortIngestDeadLetters(list []IngestDeadLetter) {
	slices.SortFunc(list, func(a, b IngestDeadLetter) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
}
