// Package api is switchboard's HTTP surface: the /v1 management routes, the ingest route
// /webhooks/{token} that external apps call, and /healthz, /readyz and /metrics. It is the
// one place that maps errors to HTTP statuses (see errors.go).
//
// Contract (SPEC section 3): JSON in and out; errors are {"error":{"code","message"}};
// /v1 routes need "Authorization: Bearer <token>" when a token is configured; integration
// keys, connection ids and customer ids match [A-Za-z0-9_-]{1,128}; secrets (integration
// parameters, connection credentials and parameters, webhook tokens in paths) are never
// returned in a response nor written to the log.
//
// Ingest replies 2xx only after the router reports every routed event durably accepted by
// the bus; a store or bus failure is a 503 with Retry-After, a failing handle a 500.
//
// Ownership: the API owns the JavaScript pools of the global webhooks, one per integration
// and webhook (never shared across integrations, since a runtime may keep state between
// calls), created on first use and dropped when the integration is deleted or its connector
// script changes. Everything else (store, router, connectors, HTTP client for apiClient) is
// handed in by the caller, who also closes it. Publishing a state change
// (integration/connection/subscription created or deleted) is best effort: a failure is
// logged and counted, and the request that caused it still succeeds, since the change itself
// is already stored.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/router"
	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/sandbox"
)

// Store is what the API needs of a store: records, webhook tokens and a health check.
type Store interface {
	CreateIntegration(ctx context.Context, in store.Integration) error
	UpdateIntegration(ctx context.Context, in store.Integration) error
	GetIntegration(ctx context.Context, key string) (store.Integration, error)
	ListIntegrations(ctx context.Context) ([]store.Integration, error)
	DeleteIntegration(ctx context.Context, key string) error

	WebhookToken(ctx context.Context, integrationKey, webhookKey string) (string, error)
	ResolveWebhookToken(ctx context.Context, token string) (integrationKey, webhookKey string, err error)

	CreateConnection(ctx context.Context, c store.Connection) error
	GetConnection(ctx context.Context, id string) (store.Connection, error)
	ListConnections(ctx context.Context, integrationKey string) ([]store.Connection, error)
	DeleteConnection(ctx context.Context, id string) error

	CreateSubscription(ctx context.Context, s store.Subscription) error
	UpdateSubscription(ctx context.Context, s store.Subscription) error
	GetSubscription(ctx context.Context, id string) (store.Subscription, error)
	ListSubscriptions(ctx context.Context, connectionID string) ([]store.Subscription, error)
	DeleteSubscription(ctx context.Context, id string) error
}

// Router is what the API needs of the router: route the events of one ingest request, and
// publish state changes.
type Router interface {
	Route(ctx context.Context, in router.Input) (router.Result, error)
	PublishStateChange(ctx context.Context, sc router.StateChange) error
}

// Check is one readiness check of /readyz, e.g. {"store", store.Ping}.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// Config is everything the API is handed. Store, Router and Connectors are required.
type Config struct {
	Store      Store
	Router     Router
	Connectors Catalog
	// PublicURL is the base of the webhook URIs handed out, e.g. https://hooks.example.com.
	PublicURL string
	// APIToken, when not empty, is required as a bearer token on every /v1 route.
	APIToken string
	// MaxBody is the largest ingest request body accepted; default 1 MiB.
	MaxBody int64
	// IngestRate and IngestBurst bound the requests of each global webhook URL: a token
	// bucket of IngestBurst tokens refilled at IngestRate per second; over it, 429 with
	// Retry-After. Zero IngestRate: no limit. Zero IngestBurst: IngestRate, rounded up.
	IngestRate  float64
	IngestBurst int
	// Script bounds every JavaScript call (handle and getEventSelector).
	Script sandbox.Limits
	// HTTPClient is what apiClient uses in getEventSelector; the caller decides which
	// addresses it may dial. Default: http.DefaultClient.
	HTTPClient *http.Client
	// DeadLetters keeps the requests whose handle failed; nil: the Store, when it keeps
	// them (both stores do), else none are kept.
	DeadLetters IngestDeadLetters
	// Checks are run by /readyz.
	Checks []Check
	// Channels is the channel runtime behind /hooks/{channelId}, channel subscriptions and
	// GET /v1/connections/{id}/channels; nil: those routes are absent.
	Channels Channels
	Logger   *slog.Logger
	// Metrics receives the API's metrics; nil: a registry of the API's own.
	Metrics *Metrics
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// API serves switchboard's HTTP routes. Make one with New; it is an http.Handler.
type API struct {
	cfg     Config
	echo    *echo.Echo
	v1      *echo.Group
	log     *slog.Logger
	metrics *Metrics
	pools   *pools
	limits  *ingestLimits // nil: no rate limit
}

const defaultMaxBody = 1 << 20

// New builds the API's routes.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = defaultMaxBody
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	a := &API{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: cfg.Metrics,
		pools:   newPools(sandbox.Config{Limits: cfg.Script, Logger: cfg.Logger}),
		limits:  newIngestLimits(cfg.IngestRate, cfg.IngestBurst),
	}
	a.routes()
	return a
}

// ServeHTTP serves one request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.echo.ServeHTTP(w, r) }

// Echo is the router, for packages that add their own routes (channels, endpoints, the
// stream). Routes added under V1 are behind the API token.
func (a *API) Echo() *echo.Echo { return a.echo }

// V1 is the /v1 route group, behind the API token when one is configured.
func (a *API) V1() *echo.Group { return a.v1 }

func (a *API) routes() {
	e := echo.New()
	a.echo = e
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = a.handleError
	e.Use(a.logRequests, a.recoverPanics)

	e.GET("/healthz", a.healthz)
	e.GET("/readyz", a.readyz)
	e.GET("/metrics", echo.WrapHandler(a.metrics.Handler()))
	e.Any("/webhooks/:token", a.ingest)

	v1 := e.Group("/v1", a.requireToken)
	a.v1 = v1
	v1.GET("/connectors", a.listConnectors)

	v1.POST("/integrations", a.createIntegration)
	v1.GET("/integrations", a.listIntegrations)
	v1.GET("/integrations/:key", a.getIntegration)
	v1.PATCH("/integrations/:key", a.updateIntegration)
	v1.DELETE("/integrations/:key", a.deleteIntegration)
	v1.GET("/integrations/:key/webhooks", a.listWebhooks)

	v1.POST("/connections", a.createConnection)
	v1.GET("/connections", a.listConnections)
	v1.GET("/connections/:id", a.getConnection)
	v1.DELETE("/connections/:id", a.deleteConnection)

	v1.POST("/connections/:id/event-subscriptions", a.createSubscription)
	v1.GET("/connections/:id/event-subscriptions", a.listSubscriptions)
	v1.GET("/event-subscriptions/:id", a.getSubscription)
	v1.DELETE("/event-subscriptions/:id", a.deleteSubscription)
	v1.POST("/event-subscriptions/:id/resubscribe", a.resubscribe)

	a.deadLetterRoutes(v1)

	a.channelRoutes()
}
