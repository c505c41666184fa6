package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Limits of the delivery records a store keeps per endpoint. Older records go first.
const (
	// MaxAttempts is how many delivery attempts a store keeps per endpoint.
	MaxAttempts = 100
	// MaxDeadLetters is how many dead letters a store keeps per endpoint.
	MaxDeadLetters = 1000
)

// Secret is a signing secret. It prints and logs as [redacted]; its JSON form is the secret
// itself, so that stores keep it: keeping it out of API responses is the API's job.
type Secret string

// LogValue keeps the secret out of logs.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String keeps the secret out of fmt's output; convert with string(s) to use it.
func (Secret) String() string { return "[redacted]" }

// GoString keeps the secret out of %#v.
func (Secret) GoString() string { return "[redacted]" }

// Endpoint is an integration's delivery endpoint: where its routed events are POSTed
// (SPEC section 5). Its ID is unique within the integration.
type Endpoint struct {
	ID             string `json:"id"`
	IntegrationKey string `json:"integrationKey"`
	URL            string `json:"url"`
	// EventKeys are the event keys delivered here; empty: all.
	EventKeys   []string `json:"eventKeys"`
	Description string   `json:"description"`
	Enabled     bool     `json:"enabled"`
	// DisabledReason says why delivery disabled the endpoint (a 410 Gone), when it did.
	DisabledReason string `json:"disabledReason,omitempty"`
	Secret         Secret `json:"secret"`
	// PreviousSecret, after a rotation, still signs until PreviousSecretExpiresAt, so that a
	// receiver can move to the new secret without rejecting a delivery.
	PreviousSecret          Secret    `json:"previousSecret,omitempty"`
	PreviousSecretExpiresAt time.Time `json:"previousSecretExpiresAt,omitzero"`
	CreatedAt               time.Time `json:"createdAt"`
	UpdatedAt               time.Time `json:"updatedAt"`
}

// Wants reports whether events of eventKey go to e (whether or not e is enabled).
func (e Endpoint) Wants(eventKey string) bool {
	return len(e.EventKeys) == 0 || slices.Contains(e.EventKeys, eventKey)
}

// SigningSecrets returns the secrets that sign a request sent at now: the current one, and
// the previous one while its grace period lasts.
func (e Endpoint) SigningSecrets(now time.Time) []Secret {
	out := []Secret{e.Secret}
	if e.PreviousSecret != "" && now.Before(e.PreviousSecretExpiresAt) {
		out = append(out, e.PreviousSecret)
	}
	return out
}

// Check reports, wrapping ErrInvalid, an ID or IntegrationKey that fails ValidKey. Stores
// call it on every write.
func (e Endpoint) Check() error {
	switch {
	case !ValidKey(e.IntegrationKey):
		return fmt.Errorf("endpoint %q: integration key %q: %w", e.ID, e.IntegrationKey, ErrInvalid)
	case !ValidKey(e.ID):
		return fmt.Errorf("endpoint id %q: %w", e.ID, ErrInvalid)
	}
	return nil
}

// Attempt is one try at delivering a message to an endpoint.
type Attempt struct {
	EndpointID string `json:"endpointId"`
	// MessageID is the webhook-id header: the same for every attempt of one event at one
	// endpoint.
	MessageID string `json:"messageId"`
	EventID   string `json:"eventId"`
	// Attempt counts the tries of this message, from 1.
	Attempt int `json:"attempt"`
	// Status is the response's HTTP status; 0 when there was none (refused, timed out).
	Status     int    `json:"status"`
	DurationMs int64  `json:"durationMs"`
	Error      string `json:"error,omitempty"`
	// Response is the start of the response body.
	Response string `json:"response,omitempty"`
	// Test marks an attempt of the endpoint's test route.
	Test bool      `json:"test,omitempty"`
	At   time.Time `json:"at"`
}

// DeadLetter is a message whose retries ran out (or whose endpoint was disabled while it
// waited), kept with its attempts so that it can be replayed.
type DeadLetter struct {
	ID             string          `json:"id"`
	IntegrationKey string          `json:"integrationKey"`
	EndpointID     string          `json:"endpointId"`
	MessageID      string          `json:"messageId"`
	EventID        string          `json:"eventId"`
	Subject        string          `json:"subject"`
	Envelope       json.RawMessage `json:"envelope"`
	Reason         string          `json:"reason"`
	Attempts       []Attempt       `json:"attempts"`
	CreatedAt      time.Time       `json:"createdAt"`
}

// Check reports, wrapping ErrInvalid, an ID, IntegrationKey or EndpointID that fails
// ValidKey, or an envelope that is not JSON.
func (d DeadLetter) Check() error {
	switch {
	case !ValidKey(d.ID) || !ValidKey(d.IntegrationKey) || !ValidKey(d.EndpointID):
		return fmt.Errorf("dead letter %q of endpoint %q of integration %q: %w", d.ID, d.EndpointID, d.IntegrationKey, ErrInvalid)
	case !json.Valid(d.Envelope):
		return fmt.Errorf("dead letter %q: envelope is not JSON: %w", d.ID, ErrInvalid)
	}
	return nil
}

// EndpointStore keeps delivery endpoints with their recent attempts and dead letters. Both
// stores implement it beside Store; storetest.RunEndpoints is its conformance suite. Every
// method is safe for concurrent use, and an endpoint is addressed by its integration key
// and id. Reads of a missing endpoint, and writes of attempts or dead letters for one, are
// ErrNotFound; attempts and dead letters go with their endpoint when it is deleted, and
// endpoints with their integration (Store.DeleteIntegration).
type EndpointStore interface {
	// CreateEndpoint stores ep unless its integration already has limit endpoints (ErrLimit);
	// the check and the write are atomic. ErrNotFound when the integration is missing,
	// ErrExists for a taken id.
	CreateEndpoint(ctx context.Context, ep Endpoint, limit int) error
	UpdateEndpoint(ctx context.Context, ep Endpoint) error // replaces the record; ErrNotFound
	GetEndpoint(ctx context.Context, integrationKey, id string) (Endpoint, error)
	// ListEndpoints returns the integration's endpoints, oldest first (by CreatedAt, then
	// ID); none (not ErrNotFound) for an integration without any.
	ListEndpoints(ctx context.Context, integrationKey string) ([]Endpoint, error)
	DeleteEndpoint(ctx context.Context, integrationKey, id string) error // ErrNotFound

	// AddAttempt records a, keeping the newest MaxAttempts of its endpoint.
	AddAttempt(ctx context.Context, integrationKey string, a Attempt) error
	// ListAttempts returns the endpoint's attempts, newest first.
	ListAttempts(ctx context.Context, integrationKey, endpointID string) ([]Attempt, error)

	// PutDeadLetter stores d (replacing one with its ID), keeping the newest MaxDeadLetters
	// of its endpoint.
	PutDeadLetter(ctx context.Context, d DeadLetter) error
	// ListDeadLetters returns the endpoint's dead letters, newest first (by CreatedAt, then
	// ID).
	ListDeadLetters(ctx context.Context, integrationKey, endpointID string) ([]DeadLetter, error)
	GetDeadLetter(ctx context.Context, integrationKey, endpointID, id string) (DeadLetter, error)
	DeleteDeadLetter(ctx context.Context, integrationKey, endpointID, id string) error // ErrNotFound
}

// SortEndpoints sorts endpoints oldest first, as ListEndpoints returns them.
func SortEndpoints(list []Endpoint) {
	slices.SortFunc(list, func(a, b Endpoint) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// SortDeadLetters sorts dead letters newest first, as ListDeadLetters returns them.
func SortDeadLetters(list []DeadLetter) {
	slices.SortFunc(list, func(a, b DeadLetter) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
}
