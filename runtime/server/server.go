// Package server assembles a running switchboard from its configuration: the connector tree,
// the store (Redis, or the embedded one under the data directory), the event bus (an
// external NATS, or an in-process one under the data directory), the router, the HTTP API
// and the HTTP server.
//
// Ownership and lifecycle: New opens everything and binds the listener, so a Server that New
// returned is ready to serve and Addr tells where; nothing is served until Run. Run serves
// until its ctx ends and then shuts down in order: stop accepting HTTP requests and wait
// (bounded by ShutdownTimeout) for those in flight, stop the channel workers (started by
// Run, see package channel) and the delivery workers (package delivery; an attempt in
// flight is abandoned and retried later), drain the bus (publishes in flight get
// their acknowledgements), close the store, stop the in-process NATS. A Server that is
// never run is released with Close. The configuration comes from cmd; this package reads no
// flags, environment or files other than the connector tree and the data directory.
//
// Hot reload: while Run serves, the connectors directory is polled every ReloadInterval and
// each connector whose files changed is loaded again (package catalog): a clean edit takes
// over, a broken one leaves the last good version serving and shows in the log and in
// GET /v1/connectors. Requests in flight finish on the version they started with.
//
// Abuse of the public routes: ReadHeaderTimeout bounds how long a client may take over its
// headers and ReadTimeout over its whole request, body included, so a client trickling
// bytes (slowloris) cannot hold a connection; bodies are bounded by MaxBody (413) and each
// global webhook URL by IngestRate and IngestBurst (429 with Retry-After). Both timeouts
// are read deadlines on the connection, armed per request: net/http clears them when a
// handler hijacks the connection (the WebSocket of /v1/stream), so long-lived sockets are
// not cut. A handler that streams a long response without hijacking must clear its read
// deadline itself (http.NewResponseController(w).SetReadDeadline(time.Time{})): when the
// deadline passes, net/http cancels the request's context.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/switchboard-run/switchboard/runtime/api"
	"github.com/switchboard-run/switchboard/runtime/bus"
	"github.com/switchboard-run/switchboard/runtime/catalog"
	"github.com/switchboard-run/switchboard/runtime/channel"
	"github.com/switchboard-run/switchboard/runtime/delivery"
	"github.com/switchboard-run/switchboard/runtime/egress"
	"github.com/switchboard-run/switchboard/runtime/router"
	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/embedded"
	"github.com/switchboard-run/switchboard/runtime/store/redisstore"
	"github.com/switchboard-run/switchboard/sandbox"
)

// Config is a server's configuration; the zero value of a field takes the default shown.
type Config struct {
	Listen               string        // ":8080"; "127.0.0.1:0" picks a free port (see Addr)
	PublicURL            string        // "http://localhost:8080"; base of the webhook URIs handed out
	ConnectorsDir        string        // "./connectors"
	DataDir              string        // "./data"; embedded store and embedded NATS files
	RedisURL             string        // empty: the embedded store at DataDir/switchboard.db
	RedisPrefix          string        // "switchboard"; prefix of every Redis key
	NATSURL              string        // empty: an in-process NATS with JetStream under DataDir
	EmbeddedNATSListen   string        // also expose the in-process NATS there (e.g. 127.0.0.1:4222)
	APIToken             string        // bearer token of the /v1 routes; empty: none (a warning is logged)
	AllowPrivateNetworks bool          // let apiClient reach loopback and private addresses
	MaxBody              int64         // 1 MiB; largest ingest request body
	ScriptTimeout        time.Duration // 5s; deadline of one JavaScript call
	ShutdownTimeout      time.Duration // 10s; how long requests in flight get at shutdown
	StartTimeout         time.Duration // 30s; how long to wait for Redis and NATS at start-up
	ChannelReadTimeout   time.Duration // 90s; how long an SSE channel stream may stay silent before reconnecting
	ChannelBackoff       time.Duration // 1s; first wait before reconnecting an SSE channel or retrying a failed poll
	ChannelResync        time.Duration // 30s; how often channel workers are checked against the store
	ChannelLeaseTTL      time.Duration // 15s; how long a dead instance's sse and polling channels wait before another instance takes them (package channel, Leases)
	ReloadInterval       time.Duration // 2s; how often the connectors directory is polled for edits; negative: never
	IngestRate           float64       // 1000; requests per second each global webhook URL accepts; negative: no limit
	IngestBurst          int           // 2000; requests a global webhook URL may send at once above its rate
	DedupTTL             time.Duration // 7 days; how long a published event's id is remembered, to drop senders' retries
	ReadHeaderTimeout    time.Duration // 10s; how long a client may take to send a request's headers
	ReadTimeout          time.Duration // 60s; how long a client may take to send a whole request, body included
	IdleTimeout          time.Duration // 120s; how long an idle keep-alive connection stays open
	Logger               *slog.Logger  // nil discards

	// Delivery to endpoints (package delivery).
	DeliverySchedule []time.Duration // SPEC 5's retries (delivery.DefaultSchedule): the wait before each attempt
	DeliveryTimeout  time.Duration   // 15s; how long an endpoint has to answer one delivery
}

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://localhost:8080"
	}
	if c.ConnectorsDir == "" {
		c.ConnectorsDir = "./connectors"
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.RedisPrefix == "" {
		c.RedisPrefix = "switchboard"
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.ScriptTimeout <= 0 {
		c.ScriptTimeout = 5 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = 2 * time.Second
	}
	if c.IngestRate == 0 {
		c.IngestRate = 1000
	}
	if c.IngestBurst <= 0 {
		c.IngestBurst = 2000
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 60 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// backingStore is what the server needs of a store: the whole contract, since it hands the
// store to the API, the router, the channels and the readiness checks, and closes it.
type backingStore interface {
	store.Store
	store.ChannelStore
	store.EndpointStore
}

// Server is a switchboard ready to serve. Make one with New.
type Server struct {
	cfg   Config
	log   *slog.Logger
	ln    net.Listener
	http  *http.Server
	api   *api.API
	store backingStore
	bus   *bus.Bus
	nats  *bus.Embedded // nil with an external NATS

	catalog *catalog.Catalog // the live connector set, reloaded by Run

	channels     *channel.Manager
	stopChannels context.CancelFunc // set while the channel workers run
	channelsDone chan struct{}

	delivery     *delivery.Service
	stopDelivery context.CancelFunc // set while the delivery workers run
	deliveryDone chan struct{}
}

// New loads the connectors (refusing a tree that does not load, with every problem in the
// error), opens the store and the bus, and binds the listener. On failure whatever was
// opened is closed again.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
			defer cancel()
			if cerr := s.Close(closeCtx); cerr != nil {
				s.log.Warn("closing after a failed start", "error", cerr)
			}
		}
	}()

	s.catalog, err = catalog.New(cfg.ConnectorsDir, s.log.With("component", "catalog"))
	if err != nil {
		return nil, fmt.Errorf("loading connectors from %s: %w", cfg.ConnectorsDir, err)
	}
	if len(s.catalog.Connectors()) == 0 {
		s.log.Warn("no connectors loaded", "dir", cfg.ConnectorsDir)
	}

	startCtx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if err := s.openStore(startCtx); err != nil {
		return nil, err
	}
	if err := s.openBus(startCtx); err != nil {
		return nil, err
	}
	if err := s.enableCache(); err != nil {
		return nil, err
	}

	rt := router.New(router.Config{Matcher: s.store, Publisher: s.bus, Logger: s.log.With("component", "router"), SeenTTL: cfg.DedupTTL})
	metrics := api.NewMetrics()
	if err := s.catalog.RegisterMetrics(metrics.Registry); err != nil {
		return nil, fmt.Errorf("registering the connector catalog's metrics: %w", err)
	}
	outbound := egress.Client(cfg.AllowPrivateNetworks)
	leases, err := channel.NewLeases(startCtx, s.bus.JetStream(), channel.LeasesConfig{TTL: cfg.ChannelLeaseTTL, Logger: s.log.With("component", "channel")})
	if err != nil {
		return nil, err
	}
	s.channels = channel.New(channel.Config{
		Store:       s.store,
		Bus:         s.bus,
		Connectors:  s.catalog,
		HTTPClient:  outbound,
		Logger:      s.log.With("component", "channel"),
		Metrics:     channel.NewMetrics(metrics.Registry),
		Resync:      cfg.ChannelResync,
		MinBackoff:  cfg.ChannelBackoff,
		ReadTimeout: cfg.ChannelReadTimeout,
		Leases:      leases,
	})
	s.api = api.New(api.Config{
		Store:       s.store,
		Router:      rt,
		Connectors:  s.catalog,
		PublicURL:   cfg.PublicURL,
		APIToken:    cfg.APIToken,
		MaxBody:     cfg.MaxBody,
		IngestRate:  cfg.IngestRate,
		IngestBurst: cfg.IngestBurst,
		Script:      sandbox.Limits{Timeout: cfg.ScriptTimeout},
		HTTPClient:  outbound,
		Channels:    s.channels,
		Checks: []api.Check{
			{Name: "store", Ping: s.store.Ping},
			{Name: "bus", Ping: s.bus.Ping},
		},
		Logger:  s.log.With("component", "api"),
		Metrics: metrics,
	})
	s.delivery, err = delivery.New(startCtx, delivery.Config{
		Bus:                  s.bus,
		Store:                s.store,
		AllowPrivateNetworks: cfg.AllowPrivateNetworks,
		Schedule:             cfg.DeliverySchedule,
		Timeout:              cfg.DeliveryTimeout,
		Registerer:           metrics.Registry,
		Logger:               s.log.With("component", "delivery"),
	})
	if err != nil {
		return nil, err
	}
	s.api.AddEndpointRoutes(api.EndpointsConfig{Store: s.store, Deliverer: s.delivery})
	s.api.AddStreamRoute(api.StreamConfig{Subscriber: natsSubscriber{s.bus.Conn()}})

	s.ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	s.http = &http.Server{
		Handler:           s.api,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		// ReadTimeout bounds reading a whole request, body included (ingest bodies are at
		// most MaxBody). There is no WriteTimeout: handlers bound their own work (script
		// deadline, publish timeout), and long-lived responses (the event stream) need none.
		// See the package doc for long-lived handlers and these read deadlines.
		ReadTimeout:    cfg.ReadTimeout,
		IdleTimeout:    cfg.IdleTimeout,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}

	if cfg.APIToken == "" {
		s.log.Warn("no API token configured: the /v1 routes are open to anyone who can reach " + s.ln.Addr().String() + "; set --api-token")
	}
	if cfg.AllowPrivateNetworks {
		s.log.Warn("private networks allowed: connector API calls may reach loopback and internal addresses")
	}
	s.log.Info("switchboard ready",
		"addr", s.ln.Addr().String(),
		"public_url", cfg.PublicURL,
		"connectors", len(s.catalog.Connectors()),
		"store", s.storeKind(),
		"bus", s.busKind(),
	)
	return s, nil
}

func (s *Server) openStore(ctx context.Context) error {
	if s.cfg.RedisURL != "" {
		st, err := redisstore.Open(ctx, s.cfg.RedisURL, s.cfg.RedisPrefix)
		if err != nil {
			return fmt.Errorf("opening the redis store: %w", err)
		}
		s.store = st
		return nil
	}
	if err := os.MkdirAll(s.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	st, err := embedded.Open(filepath.Join(s.cfg.DataDir, "switchboard.db"))
	if err != nil {
		return fmt.Errorf("opening the embedded store: %w", err)
	}
	s.store = st
	return nil
}

func (s *Server) openBus(ctx context.Context) error {
	busCfg := bus.Config{URL: s.cfg.NATSURL, Logger: s.log.With("component", "bus")}
	if s.cfg.NATSURL != "" {
		if s.cfg.EmbeddedNATSListen != "" {
			s.log.Warn("--embedded-nats-listen is ignored: --nats-url is set, so no NATS runs in-process")
		}
		b, err := bus.Connect(ctx, busCfg)
		if err != nil {
			return fmt.Errorf("connecting to nats: %w", err)
		}
		s.bus = b
		return nil
	}
	n, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{
		DataDir: s.cfg.DataDir,
		Listen:  s.cfg.EmbeddedNATSListen,
		Logger:  slog.New(minLevel{s.log.Handler(), slog.LevelWarn}),
	})
	if err != nil {
		return fmt.Errorf("starting the embedded nats: %w", err)
	}
	s.nats = n
	b, err := n.Connect(ctx, busCfg)
	if err != nil {
		return fmt.Errorf("connecting to the embedded nats: %w", err)
	}
	s.bus = b
	return nil
}

func (s *Server) storeKind() string {
	if s.cfg.RedisURL != "" {
		return "redis"
	}
	return "embedded " + filepath.Join(s.cfg.DataDir, "switchboard.db")
}

func (s *Server) busKind() string {
	switch {
	case s.cfg.NATSURL != "":
		return "nats"
	case s.nats != nil && s.nats.ClientURL() != "":
		return "embedded nats, clients at " + s.nats.ClientURL()
	}
	return "embedded nats"
}

// Addr is the address the server listens on, e.g. "127.0.0.1:41233".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is http://Addr, with a loopback host when the server listens on every interface.
func (s *Server) URL() string {
	host, port, _ := net.SplitHostPort(s.Addr())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// NATSURL is where NATS clients reach the bus: the external URL, or the in-process server's
// listener (empty when it has none).
func (s *Server) NATSURL() string {
	if s.nats != nil {
		return s.nats.ClientURL()
	}
	return s.cfg.NATSURL
}

// API is the HTTP API, for packages that add routes (channels, endpoints, the stream).
func (s *Server) API() *api.API { return s.api }

// Run serves HTTP until ctx ends, then shuts down in order (see the package doc). It
// returns the serving error, if any, joined with the shutdown's.
func (s *Server) Run(ctx context.Context) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.http.Serve(s.ln) }()
	// Hot reload runs while HTTP serves and stops before the shutdown starts, so that no
	// reload races the shutdown's logging.
	reloadCtx, stopReload := context.WithCancel(ctx)
	reloadDone := make(chan struct{})
	go func() {
		defer close(reloadDone)
		s.catalog.Run(reloadCtx, s.cfg.ReloadInterval)
	}()
	chCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopChannels, s.channelsDone = stop, make(chan struct{})
	go func() {
		defer close(s.channelsDone)
		s.channels.Run(chCtx)
	}()
	dCtx, stopDelivery := context.WithCancel(context.WithoutCancel(ctx))
	s.stopDelivery, s.deliveryDone = stopDelivery, make(chan struct{})
	go func() {
		defer close(s.deliveryDone)
		if err := s.delivery.Run(dCtx); err != nil {
			s.log.Error("delivery stopped", "err", err)
		}
	}()

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	stopReload()
	<-reloadDone
	s.log.Info("shutting down")
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	return errors.Join(err, s.Close(closeCtx))
}

// Close stops accepting requests, waits until ctx ends for those in flight, stops the
// channel workers, drains the bus,
// closes the store and stops the in-process NATS, in that order.
func (s *Server) Close(ctx context.Context) error {
	var errs []error
	if s.http != nil {
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutting down http: %w", err))
			s.http.Close()
		}
	}
	if s.ln != nil {
		s.ln.Close() // Shutdown closes only listeners that Serve was given
	}
	if s.stopChannels != nil {
		s.stopChannels()
		select {
		case <-s.channelsDone:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("stopping the channel workers: %w", ctx.Err()))
		}
		s.stopChannels = nil
	}
	if s.stopDelivery != nil {
		s.stopDelivery()
		select {
		case <-s.deliveryDone:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("stopping the delivery workers: %w", ctx.Err()))
		}
		s.stopDelivery = nil
	}
	if s.bus != nil {
		if err := s.bus.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("draining the bus: %w", err))
		}
	}
	if s.store != nil {
		if err := s.store.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("closing the store: %w", err))
		}
	}
	if s.nats != nil {
		if err := s.nats.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping the embedded nats: %w", err))
		}
	}
	s.http, s.ln, s.bus, s.store, s.nats = nil, nil, nil, nil, nil
	return errors.Join(errs...)
}

// minLevel drops records below level: the in-process NATS server tells its start-up banner
// at info level, and the "switchboard ready" line already says where its clients connect.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}
