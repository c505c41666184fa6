// Package store holds switchboard's domain records (integrations, connections,
// subscriptions) and the Store contract every implementation meets. The implementations
// live beside it: redisstore (Redis, for any number of switchboard processes) and embedded
// (a single file under the data directory, for one process). storetest is the conformance
// suite both pass.
//
// Records are plain values: a Store never hands out memory it keeps, and callers may change
// what they get back. Secrets (integration parameters, connection credentials, webhook
// tokens) are stored as given; keeping them out of responses and logs is the caller's job.
package store

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotFound: no record with that key or id.
	ErrNotFound = errors.New("not found")
	// ErrExists: a record with that key or id already exists.
	ErrExists = errors.New("already exists")
)

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
	UpdateIntegration(ctx context.Context, in Integration) error // ErrNotFound
	GetIntegration(ctx context.Context, key string) (Integration, error)
	ListIntegrations(ctx context.Context) ([]Integration, error)
	// DeleteIntegration removes the integration with its connections, subscriptions and
	// webhook tokens.
	DeleteIntegration(ctx context.Context, key string) error

	// WebhookToken returns the token of the integration's global webhook, creating one of
	// 128+ random bits on first use; the same token on every later call and after restarts.
	WebhookToken(ctx context.Context, integrationKey, webhookKey string) (string, error)
	// ResolveWebhookToken finds what a token belongs to; ErrNotFound for unknown tokens.
	ResolveWebhookToken(ctx context.Context, token string) (integrationKey, webhookKey string, err error)

	CreateConnection(ctx context.Context, c Connection) error // ErrExists; ErrNotFound when the integration is missing
	GetConnection(ctx context.Context, id string) (Connection, error)
	ListConnections(ctx context.Context, integrationKey string) ([]Connection, error)
	DeleteConnection(ctx context.Context, id string) error // removes its subscriptions too

	// CreateSubscription stores s and indexes it under (integration, globalWebhookKey,
	// selector) atomically; ErrNotFound when the connection is missing.
	CreateSubscription(ctx context.Context, s Subscription) error
	// UpdateSubscription replaces s (same ID) and moves its index entry atomically.
	UpdateSubscription(ctx context.Context, s Subscription) error
	GetSubscription(ctx context.Context, id string) (Subscription, error)
	ListSubscriptions(ctx context.Context, connectionID string) ([]Subscription, error)
	DeleteSubscription(ctx context.Context, id string) error

	// MatchRoutes returns, for each selector that has any, the routes of the subscriptions of
	// integrationKey whose globalWebhookKey is webhookKey and whose selector equals it, in
	// one round trip to the backing store.
	MatchRoutes(ctx context.Context, integrationKey, webhookKey string, selectors []string) (map[string][]Route, error)

	Ping(ctx context.Context) error
	Close(ctx context.Context) error
}
