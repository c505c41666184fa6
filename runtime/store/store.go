// Package store holds switchboard's domain records (integrations, connections,
// subscriptions) and the Store contract every implementation meets. The implementations
// live beside it: redisstore (Redis, for any number of switchboard processes) and embedded
// (a single file under the data directory, for one process). storetest is the conformance
// suite both pass.
//
// Records are plain values: a Store never hands out memory it keeps, and callers may change
// what they get back. Records are stored as given (timestamps included: the caller sets
// them), except that a subscription takes its IntegrationKey and CustomerID from its
// connection. Secrets (integration parameters, connection credentials, webhook tokens) are
// stored as given; keeping them out of responses and logs is the caller's job.
//
// Every write is atomic: a reader sees a record together with its index entries (the
// selector index that MatchRoutes reads, the lists) or neither; redisstore documents the one
// exception, its global id pointers, which may dangle and then read as not found. Deleting an integration
// removes its connections, subscriptions and webhook tokens; deleting a connection removes
// its subscriptions; a removed subscription stops matching at once.
//
// Keys and ids (integration keys, connection and subscription ids, webhook and channel keys)
// must pass ValidKey; writes refuse others with ErrInvalid and reads report them as
// ErrNotFound. Selectors are arbitrary strings. Lists are sorted by key or id, and so are the
// routes of one selector.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotFound: no record with that key or id.
	ErrNotFound = errors.New("not found")
	// ErrExists: a record with that key or id already exists.
	ErrExists = errors.New("already exists")
	// ErrInvalid: a record the store refuses: a key or id that fails ValidKey, or fields
	// that contradict each other or the stored record.
	ErrInvalid = errors.New("invalid")
	// ErrLimit: the write would take a parent past a limit on its records, such as the
	// most delivery endpoints an integration may have.
	ErrLimit = errors.New("limit reached")
)

// ValidKey reports whether s can be a key or an id in a Store: 1 to 128 characters of
// [A-Za-z0-9_-], the SPEC's rule for integration keys and connection ids (they become NATS
// subject tokens). Implementations rely on it to build storage keys without escaping.
func ValidKey(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Integration is a connector installed in this switchboard.
type Integration struct {
	Key          string         `json:"key"`
	ConnectorKey string         `json:"connectorKey"`
	Parameters   map[string]any `json:"parameters"` // secret: never returned by the API
	CreatedAt    time.Time      `json:"createdAt"`
	UpdatedAt    time.Time      `json:"updatedAt"`
}

// Connection is one customer's account at the external app, for one integration.
type Connection struct {
	ID             string         `json:"id"`
	IntegrationKey string         `json:"integrationKey"`
	CustomerID     string         `json:"customerId"`
	Credentials    map[string]any `json:"credentials"` // secret: never returned by the API
	Parameters     map[string]any `json:"parameters"`
	CreatedAt      time.Time      `json:"createdAt"`
}

// Subscription is a connection's standing request for one event. A global-webhook event
// subscription carries GlobalWebhookKey and Selector; a channel subscription carries
// ChannelKey and EventType instead.
type Subscription struct {
	ID               string         `json:"id"`
	ConnectionID     string         `json:"connectionId"`
	IntegrationKey   string         `json:"integrationKey"`
	CustomerID       string         `json:"customerId"`
	EventKey         string         `json:"eventKey"`
	Parameters       map[string]any `json:"parameters"`
	Status           string         `json:"status"`
	GlobalWebhookKey string         `json:"globalWebhookKey,omitempty"`
	Selector         string         `json:"globalWebhookEventSelector,omitempty"`
	ChannelKey       string         `json:"channelKey,omitempty"`
	EventType        string         `json:"eventType,omitempty"`
	CreatedAt        time.Time      `json:"createdAt"`
	UpdatedAt        time.Time      `json:"updatedAt"`
}

// Check reports, wrapping ErrInvalid, what makes s unfit for a Store whatever its
// connection: an ID, ConnectionID, GlobalWebhookKey or ChannelKey (when set) that fails
// ValidKey, or both a GlobalWebhookKey and a ChannelKey. Stores call it on every write.
func (s Subscription) Check() error {
	switch {
	case !ValidKey(s.ID):
		return fmt.Errorf("subscription id %q: %w", s.ID, ErrInvalid)
	case !ValidKey(s.ConnectionID):
		return fmt.Errorf("subscription %q: connection id %q: %w", s.ID, s.ConnectionID, ErrInvalid)
	case s.GlobalWebhookKey != "" && !ValidKey(s.GlobalWebhookKey):
		return fmt.Errorf("subscription %q: global webhook key %q: %w", s.ID, s.GlobalWebhookKey, ErrInvalid)
	case s.ChannelKey != "" && !ValidKey(s.ChannelKey):
		return fmt.Errorf("subscription %q: channel key %q: %w", s.ID, s.ChannelKey, ErrInvalid)
	case s.GlobalWebhookKey != "" && s.ChannelKey != "":
		return fmt.Errorf("subscription %q has both a global webhook key and a channel key: %w", s.ID, ErrInvalid)
	}
	return nil
}

// Bind gives s its connection's IntegrationKey and CustomerID, refusing (ErrInvalid) values
// that differ from them. Stores call it with the stored connection on every write.
func (s *Subscription) Bind(c Connection) error {
	if s.IntegrationKey != "" && s.IntegrationKey != c.IntegrationKey {
		return fmt.Errorf("subscription %q: integration %q is not its connection's %q: %w", s.ID, s.IntegrationKey, c.IntegrationKey, ErrInvalid)
	}
	if s.CustomerID != "" && s.CustomerID != c.CustomerID {
		return fmt.Errorf("subscription %q: customer %q is not its connection's %q: %w", s.ID, s.CustomerID, c.CustomerID, ErrInvalid)
	}
	s.IntegrationKey, s.CustomerID = c.IntegrationKey, c.CustomerID
	return nil
}

// WebhookRef is what a global webhook's token stands for: that webhook of that
// integration. The stores keep it as JSON beside the token.
type WebhookRef struct {
	IntegrationKey string `json:"integrationKey"`
	WebhookKey     string `json:"webhookKey"`
}

// Route is what routing needs of a matched subscription, kept in the selector index so that
// one lookup answers a request without reading the full records.
type Route struct {
	SubscriptionID string `json:"s"`
	ConnectionID   string `json:"c"`
	CustomerID     string `json:"o"`
	EventKey       string `json:"e"`
}

// Store is the contract of a switchboard store. Every method is safe for concurrent use.
type Store interface {
	CreateIntegration(ctx context.Context, in Integration) error // ErrExists
	UpdateIntegration(ctx context.Context, in Integration) error // replaces the record; ErrNotFound
	GetIntegration(ctx context.Context, key string) (Integration, error)
	ListIntegrations(ctx context.Context) ([]Integration, error)
	// DeleteIntegration removes the integration with its connections, subscriptions and
	// webhook tokens; ErrNotFound when there is none.
	DeleteIntegration(ctx context.Context, key string) error

	// WebhookToken returns the token of the integration's global webhook, creating one of
	// 128+ random bits on first use; the same token on every later call and after restarts,
	// also when several processes ask at once. ErrNotFound when the integration is missing.
	WebhookToken(ctx context.Context, integrationKey, webhookKey string) (string, error)
	// ResolveWebhookToken finds what a token belongs to; ErrNotFound for unknown tokens.
	ResolveWebhookToken(ctx context.Context, token string) (integrationKey, webhookKey string, err error)

	CreateConnection(ctx context.Context, c Connection) error // ErrExists; ErrNotFound when the integration is missing
	GetConnection(ctx context.Context, id string) (Connection, error)
	ListConnections(ctx context.Context, integrationKey string) ([]Connection, error) // ErrNotFound when the integration is missing
	DeleteConnection(ctx context.Context, id string) error                            // removes its subscriptions too; ErrNotFound

	// CreateSubscription stores s and, when it has a GlobalWebhookKey, indexes it under
	// (integration, globalWebhookKey, selector) atomically. ErrExists for a taken id;
	// ErrNotFound when the connection is missing; ErrInvalid when s has both a
	// GlobalWebhookKey and a ChannelKey, or an IntegrationKey or CustomerID other than its
	// connection's.
	CreateSubscription(ctx context.Context, s Subscription) error
	// UpdateSubscription replaces s (same ID, same connection) and moves its index entry
	// atomically; ErrNotFound when there is none.
	UpdateSubscription(ctx context.Context, s Subscription) error
	GetSubscription(ctx context.Context, id string) (Subscription, error)
	ListSubscriptions(ctx context.Context, connectionID string) ([]Subscription, error) // ErrNotFound when the connection is missing
	DeleteSubscription(ctx context.Context, id string) error                            // ErrNotFound

	// MatchRoutes returns, for each selector that has any, the routes of the subscriptions of
	// integrationKey whose globalWebhookKey is webhookKey and whose selector equals it, in
	// one round trip to the backing store. Selectors without routes are absent from the map;
	// the map is never nil.
	MatchRoutes(ctx context.Context, integrationKey, webhookKey string, selectors []string) (map[string][]Route, error)

	Ping(ctx context.Context) error
	Close(ctx context.Context) error
}

// RouteOf is the selector index entry of s.
func RouteOf(s Subscription) Route {
	return Route{SubscriptionID: s.ID, ConnectionID: s.ConnectionID, CustomerID: s.CustomerID, EventKey: s.EventKey}
}
