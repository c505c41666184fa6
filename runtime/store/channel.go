package store

import "context"

// ChannelRef names one channel of one connection: the unit that has an ingest URL
// (webhook and cloudevents channels), a worker (sse and polling channels) and a cursor.
type ChannelRef struct {
	IntegrationKey string `json:"integrationKey"`
	ConnectionID   string `json:"connectionId"`
	ChannelKey     string `json:"channelKey"`
}

// ChannelStore is what declarative channels need of a store, on top of Store. Both stores
// implement it; storetest.RunChannels is its conformance suite.
//
// Channel subscriptions are ordinary Subscription records with ChannelKey and EventType set
// (and no GlobalWebhookKey, so they are never in the selector index). Channel ids and
// cursors belong to their connection: deleting the connection (or its integration) removes
// them, and re-creating a connection of the same id starts with neither.
type ChannelStore interface {
	ChannelIDs
	ChannelSubscriptions
	ChannelCursors
}

// ChannelIDs are the ids in the URLs of webhook and cloudevents channels.
type ChannelIDs interface {
	// ChannelID returns the id of the connection's channel, creating one of 128+ random bits
	// on first use; the same id on every later call and after restarts, also when several
	// processes ask at once. ErrNotFound when the connection is missing; ErrInvalid when
	// channelKey fails ValidKey.
	ChannelID(ctx context.Context, connectionID, channelKey string) (string, error)
	// ResolveChannelID finds what a channel id belongs to; ErrNotFound for unknown ids and
	// for ids of deleted connections.
	ResolveChannelID(ctx context.Context, id string) (ChannelRef, error)
}

// ChannelSubscriptions finds channel subscriptions.
type ChannelSubscriptions interface {
	// ListChannelSubscriptions returns the channel subscriptions of the connection's channel
	// whose EventType is eventType (every event type when eventType is empty), sorted by id.
	// ErrNotFound when the connection is missing.
	ListChannelSubscriptions(ctx context.Context, connectionID, channelKey, eventType string) ([]Subscription, error)
	// ListActiveChannels returns every channel of every connection that has at least one
	// channel subscription, sorted by connection id and channel key.
	ListActiveChannels(ctx context.Context) ([]ChannelRef, error)
}

// ChannelCursors keep, per channel of a connection, where its worker got to: an opaque
// string (a polling discriminator's high-water mark, an SSE stream's Last-Event-ID).
type ChannelCursors interface {
	// ChannelCursor returns the cursor, "" when none was set. ErrNotFound when the
	// connection is missing.
	ChannelCursor(ctx context.Context, connectionID, channelKey string) (string, error)
	// SetChannelCursor stores the cursor; "" removes it. ErrNotFound when the connection is
	// missing.
	SetChannelCursor(ctx context.Context, connectionID, channelKey, cursor string) error
}
