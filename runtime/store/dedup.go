package store

import (
	"context"
	"time"
)

// DefaultSeenTTL is how long an event stays seen unless the caller says otherwise: longer
// than any sender keeps retrying (Stripe and Shopify give up after three days, GitHub and
// Slack much sooner).
const DefaultSeenTTL = 7 * 24 * time.Hour

// SeenStore remembers, per integration, the events already published, so that a sender's
// retry arriving days later (long after the bus forgot its message ids) publishes nothing.
// Both stores implement it beside Store; storetest.RunSeen is its conformance suite.
//
// A key is an opaque, non-empty string without NUL, chosen by the caller (the router hashes
// the webhook key and the event's id or the request's delivery key into one); the
// integration key scopes it and must pass ValidKey. A mark lasts ttl from its first write:
// marking a key that is already seen keeps its first expiry. Expired marks read as not seen;
// the stores drop them by themselves (Redis expiry; the embedded store prunes lazily).
// Every method is safe for concurrent use.
type SeenStore interface {
	// Seen reports, for each of keys in order, whether it is marked and not expired. An
	// integration key that fails ValidKey has nothing seen.
	Seen(ctx context.Context, integrationKey string, keys []string) ([]bool, error)
	// MarkSeen marks keys as seen for ttl, in one round trip. ErrInvalid for an integration
	// key that fails ValidKey, an empty key or a ttl under a millisecond.
	MarkSeen(ctx context.Context, integrationKey string, keys []string, ttl time.Duration) error
}
