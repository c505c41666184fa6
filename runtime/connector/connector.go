// Package connector loads connector directories (SPEC 2) into compiled, validated values:
// global webhooks with their handle scripts, events with their getEventSelector script or
// mapping, declarative channels, the connector's JSON Schemas and its API configuration.
//
// Everything that can be checked is checked when a connector loads, and every problem is
// collected, not only the first: Load and LoadConnector return a *LoadError listing each
// one as "path:line: message", with paths built from the directory as it was passed and
// lines taken from the YAML (or, for scripts, from sandbox.Compile). Nothing is compiled
// at request time: scripts, JSON Schemas, JSONPath expressions and mappings are ready to run.
//
// YAML fields this package does not know are ignored, so that specs may carry notes or
// fields of newer versions.
//
// The values returned are immutable after loading and safe for concurrent use; running a
// script (Event.Selector, a pool over Webhook.Handle) is the caller's, under its context.
package connector

import (
	"strings"
	"time"

	"github.com/ohler55/ojg/jp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchboard-run/switchboard/sandbox"
)

// Problem is one thing wrong with a connector tree, printed as "path:line: message".
type Problem = sandbox.Problem

// LoadError lists every problem found while loading connectors.
type LoadError struct {
	Problems []Problem
}

// Error returns one problem per line.
func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Auth types of api.auth.type.
const (
	AuthBearer = "bearer"
	AuthBasic  = "basic"
	AuthHeader = "header"
	AuthQuery  = "query"
	AuthNone   = "none"
)

// Channel kinds of a channel's kind.
const (
	ChannelWebhook     = "webhook"
	ChannelSSE         = "sse"
	ChannelPolling     = "polling"
	ChannelCloudEvents = "cloudevents"
)

// Implementation types of get-event-selector.
const (
	ImplementationJavaScript = "javascript"
	ImplementationMapping    = "mapping"
)

// Set is a loaded connectors directory.
type Set struct {
	Connectors map[string]*Connector // by key
}

// Connector is one loaded connector directory.
type Connector struct {
	Key  string
	Name string
	Dir  string // as passed to Load or LoadConnector, joined with the connector's folder

	// ParametersSchema is the JSON Schema of an integration's connector parameters; nil
	// accepts anything.
	ParametersSchema *jsonschema.Schema

	API APIConfig

	Webhooks map[string]*Webhook // by key
	Events   map[string]*Event   // by key
	Channels map[string]*Channel // by key
}

// APIConfig is connector.yml's api section. An empty BaseURI means the connector declares
// no API: apiClient rejects every call and polling and SSE channels cannot be used.
type APIConfig struct {
	BaseURI string // may hold {credentials.x}, {parameters.x}, {connectorParameters.x}
	Auth    Auth
}

// Auth says how a connection's credentials are attached to API calls. Token, Username,
// Password and Value name fields of the credentials, never the secrets themselves.
type Auth struct {
	Type     string // AuthBearer, AuthBasic, AuthHeader, AuthQuery or AuthNone
	Token    string // bearer: credentials field holding the token
	Username string // basic: credentials field holding the user name
	Password string // basic: credentials field holding the password
	Name     string // header: header name; query: query parameter name
	Value    string // header, query: credentials field holding the value
}

// Webhook is a global webhook: one URL per integration whose handle script tells which
// connections each request is for.
type Webhook struct {
	Key    string
	Name   string
	Dir    string
	Handle *sandbox.Script
}

// Event is an event a connection can subscribe to; its selector (a script or a mapping)
// computes the subscription's routing key.
type Event struct {
	Key  string
	Name string
	Dir  string

	// ParametersSchema is the JSON Schema of a subscription's parameters; nil accepts anything.
	ParametersSchema *jsonschema.Schema
	// Schema is the JSON Schema of the event payload; nil accepts anything.
	Schema *jsonschema.Schema

	// Exactly one of SelectorScript (implementationType javascript) and Mapping is set.
	SelectorScript *sandbox.Script
	Mapping        *Mapping

	connector *Connector
}

// Channel is a declarative event source (SPEC 2.4).
type Channel struct {
	Key    string
	Name   string
	Dir    string
	Kind   string // ChannelWebhook, ChannelSSE, ChannelPolling or ChannelCloudEvents
	Events []ChannelEvent

	SSE     *SSE     // set when Kind is ChannelSSE
	Polling *Polling // set when Kind is ChannelPolling
}

// ChannelEvent tells how to recognise one event type in what a channel receives and how
// to extract it. A nil path is one the spec left out: a nil TypePath matches every message,
// a nil IDPath gives no id (no de-duplication), a nil PayloadPath takes the whole message.
type ChannelEvent struct {
	Type        string
	TypePath    jp.Expr
	IDPath      jp.Expr
	PayloadPath jp.Expr
	Schema      *jsonschema.Schema // nil accepts anything
}

// SSE configures an sse channel.
type SSE struct {
	Path string // relative to the connector's api.baseUri
}

// Polling configures a polling channel.
type Polling struct {
	Path          string // relative to the connector's api.baseUri
	Interval      time.Duration
	ItemsPath     jp.Expr
	Discriminator Discriminator
}

// Discriminator tells a new polled item from one already seen.
type Discriminator struct {
	Path jp.Expr
	Kind string // DiscriminatorTimestamp or DiscriminatorID
}

// Discriminator kinds.
const (
	DiscriminatorTimestamp = "timestamp"
	DiscriminatorID        = "id"
)

// ValidateParameters checks an integration's connector parameters against the connector's
// parametersSchema. A mismatch is a *ValidationError naming each failing field and keyword.
func (c *Connector) ValidateParameters(params map[string]any) error {
	return validate(c.ParametersSchema, "parameters", asJSON(params))
}

// ValidateParameters checks a subscription's parameters against the event's
// parametersSchema. A mismatch is a *ValidationError.
func (e *Event) ValidateParameters(params map[string]any) error {
	return validate(e.ParametersSchema, "parameters", asJSON(params))
}

// ValidatePayload checks an event payload against the event's schema.
func (e *Event) ValidatePayload(payload any) error {
	return validate(e.Schema, "payload", payload)
}

// ValidatePayload checks an extracted payload against the channel event's schema.
func (e *ChannelEvent) ValidatePayload(payload any) error {
	return validate(e.Schema, "payload", payload)
}

// asJSON keeps a nil map an object: absent parameters are {} for a schema.
func asJSON(m map[string]any) any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
