package channel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/runtime/router"
	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/sandbox"
)

// Store is what channels need of the store.
type Store interface {
	store.ChannelStore
	GetConnection(ctx context.Context, id string) (store.Connection, error)
	GetIntegration(ctx context.Context, key string) (store.Integration, error)
}

// Bus stores messages; *bus.Bus satisfies it.
type Bus interface {
	// PublishAll returns nil only when every message is durably stored.
	PublishAll(ctx context.Context, msgs []router.Message) error
}

// Catalog finds loaded connectors; the API's catalog satisfies it.
type Catalog interface {
	Connector(key string) (*connector.Connector, bool)
}

// Config configures a Manager. Store, Bus and Connectors are required; zero durations take
// the defaults shown.
type Config struct {
	Store      Store
	Bus        Bus
	Connectors Catalog
	// HTTPClient reaches the connectors' APIs; the caller decides which addresses it may
	// dial (the server's egress guard). SSE streams use a copy without its overall Timeout.
	// Default: http.DefaultClient.
	HTTPClient *http.Client
	Logger     *slog.Logger // nil discards
	Metrics    *Metrics     // nil: unregistered metrics
	Now        func() time.Time

	// Resync is how often Run compares its workers with the store (30s), catching changes
	// no Changed call reported.
	Resync time.Duration
	// MinBackoff and MaxBackoff bound the exponential, jittered (±50%) wait before
	// reconnecting a failed SSE stream or retrying a failed poll (1s and 5m; a failing
	// poll's backoff starts from its interval).
	MinBackoff, MaxBackoff time.Duration
	// HealthyAfter is how long an SSE stream must have lasted for its backoff to start
	// again from MinBackoff (30s).
	HealthyAfter time.Duration
	// ReadTimeout is how long an SSE stream may stay silent, comments and heartbeats
	// included, before it is dropped and reconnected (90s).
	ReadTimeout time.Duration
	// MaxLine and MaxEvent bound one SSE line and one SSE event's data (1 MiB and 4 MiB);
	// a stream that exceeds either is dropped and reconnected.
	MaxLine, MaxEvent int
	// MaxResponse bounds a polling response body (16 MiB).
	MaxResponse int64

	// Leases, when set, share the workers among the instances that use the same leases: a
	// worker runs only on the instance holding its channel's lease, and Run tries every
	// TTL/2 to take the leases of the channels it runs no worker for. Nil: every worker
	// runs here (a single instance).
	Leases *Leases
}

func (c Config) withDefaults() Config {
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Resync, 30*time.Second)
	def(&c.MinBackoff, time.Second)
	def(&c.MaxBackoff, 5*time.Minute)
	def(&c.HealthyAfter, 30*time.Second)
	def(&c.ReadTimeout, 90*time.Second)
	if c.MaxLine <= 0 {
		c.MaxLine = 1 << 20
	}
	if c.MaxEvent <= 0 {
		c.MaxEvent = 4 << 20
	}
	if c.MaxResponse <= 0 {
		c.MaxResponse = 16 << 20
	}
	return c
}

// Manager runs the channels: it receives what is pushed to webhook and cloudevents
// channels and supervises the workers of sse and polling channels. See the package doc.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics

	mu      sync.Mutex
	pending map[store.ChannelRef]bool // channels to look at again; ChannelKey "" means all of a connection's
	wake    chan struct{}             // capacity 1: Run has pending work
}

// New returns a Manager over cfg. Nothing runs until Run.
func New(cfg Config) *Manager {
	cfg = cfg.withDefaults()
	return &Manager{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: cfg.Metrics,
		pending: map[store.ChannelRef]bool{},
		wake:    make(chan struct{}, 1),
	}
}

// ChannelID returns the id in the URL of a connection's webhook or cloudevents channel.
func (m *Manager) ChannelID(ctx context.Context, connectionID, channelKey string) (string, error) {
	return m.cfg.Store.ChannelID(ctx, connectionID, channelKey)
}

// Changed asks Run to look at a connection's channel again, after its subscriptions changed:
// start its worker if it has subscriptions now, stop it if it has none. An empty channelKey
// means every channel of the connection (it was deleted). It never blocks; a call before
// Run starts is handled when it does.
func (m *Manager) Changed(connectionID, channelKey string) {
	m.mu.Lock()
	m.pending[store.ChannelRef{ConnectionID: connectionID, ChannelKey: channelKey}] = true
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// worker is a running sse or polling worker, as Run sees it.
type worker struct {
	ref    store.ChannelRef // with its integration
	kind   string
	cancel context.CancelFunc
	done   chan struct{} // closed when the worker's goroutine returned (its lease released)
}

// supervision is Run's state; only Run's goroutine touches it.
type supervision struct {
	workers map[store.ChannelRef]*worker // by keyOf
	// standby holds, by keyOf, the channels that want a worker that another instance runs
	// (or whose lease could not be taken): Run tries to take their leases every lease tick.
	standby map[store.ChannelRef]store.ChannelRef
}

// Run supervises the workers until ctx ends, then stops them all and returns once they
// have returned. It is the only goroutine that starts or stops workers. It returns nil.
func (m *Manager) Run(ctx context.Context) error {
	s := &supervision{workers: map[store.ChannelRef]*worker{}, standby: map[store.ChannelRef]store.ChannelRef{}}
	workers := s.workers
	defer func() {
		for ref, w := range workers {
			w.cancel()
			<-w.done
			delete(workers, ref)
			m.metrics.workers.WithLabelValues(w.kind).Dec()
		}
	}()

	resync := time.NewTicker(m.cfg.Resync)
	defer resync.Stop()
	var leaseTick <-chan time.Time
	if m.cfg.Leases != nil {
		t := time.NewTicker(m.cfg.Leases.TTL() / 2)
		defer t.Stop()
		leaseTick = t.C
		// A released lease (another instance stopped its worker) is looked at at once.
		wctx, stop := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			m.cfg.Leases.watchReleases(wctx, func(ref store.ChannelRef) { m.Changed(ref.ConnectionID, ref.ChannelKey) }, m.log)
		}()
		defer func() {
			stop()
			<-watched
		}()
	}
	// Until the first full sync succeeds (the store may not answer yet), retry sooner than
	// the resync period.
	retry := backoff.ExponentialBackOff{InitialInterval: m.cfg.MinBackoff, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: m.cfg.Resync}
	var retryC <-chan time.Time
	if err := m.syncAll(ctx, s); err != nil {
		retryC = time.After(retry.NextBackOff())
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
			for _, ref := range m.takePending() {
				m.syncOne(ctx, s, ref)
			}
		case <-retryC:
			retryC = nil
			if err := m.syncAll(ctx, s); err != nil {
				retryC = time.After(retry.NextBackOff())
			}
		case <-resync.C:
			if err := m.syncAll(ctx, s); err != nil && retryC == nil {
				retryC = time.After(retry.NextBackOff())
			}
		case <-leaseTick:
			m.retryStandby(ctx, s)
		}
	}
}

func (m *Manager) takePending() []store.ChannelRef {
	m.mu.Lock()
	defer m.mu.Unlock()
	refs := make([]store.ChannelRef, 0, len(m.pending))
	for ref := range m.pending {
		refs = append(refs, ref)
	}
	clear(m.pending)
	return refs
}

// retryStandby tries to take over the channels another instance ran so far, and restarts
// the workers that stopped by themselves (their lease lost, their connection gone): the
// lease decides whether they run here again.
func (m *Manager) retryStandby(ctx context.Context, s *supervision) {
	for key, w := range s.workers {
		select {
		case <-w.done:
			delete(s.workers, key)
			m.metrics.workers.WithLabelValues(w.kind).Dec()
			s.standby[key] = w.ref
		default:
		}
	}
	for _, ref := range s.standby {
		m.apply(ctx, s, ref, true)
	}
}

// syncAll compares the workers with every channel that has subscriptions.
func (m *Manager) syncAll(ctx context.Context, s *supervision) error {
	workers := s.workers
	active, err := m.cfg.Store.ListActiveChannels(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("listing channels with subscriptions", "error", err)
		}
		return err
	}
	want := make(map[store.ChannelRef]bool, len(active))
	for _, ref := range active {
		want[keyOf(ref)] = true
		m.apply(ctx, s, ref, true)
	}
	for ref, w := range workers {
		select {
		case <-w.done: // it gave up by itself (its connection went away)
			delete(workers, ref)
			m.metrics.workers.WithLabelValues(w.kind).Dec()
			continue
		default:
		}
		if !want[ref] {
			m.syncOne(ctx, s, ref)
		}
	}
	for key, ref := range s.standby {
		if !want[key] {
			m.syncOne(ctx, s, ref)
		}
	}
	return nil
}

// syncOne looks at one channel (or, with an empty ChannelKey, every running worker of the
// connection) and starts or stops its worker.
func (m *Manager) syncOne(ctx context.Context, s *supervision, ref store.ChannelRef) {
	refs := []store.ChannelRef{ref}
	if ref.ChannelKey == "" {
		refs = refs[:0]
		for r := range s.workers {
			if r.ConnectionID == ref.ConnectionID {
				refs = append(refs, r)
			}
		}
		for r := range s.standby {
			if r.ConnectionID == ref.ConnectionID && s.workers[r] == nil {
				refs = append(refs, r)
			}
		}
	}
	for _, ref := range refs {
		subs, err := m.cfg.Store.ListChannelSubscriptions(ctx, ref.ConnectionID, ref.ChannelKey, "")
		switch {
		case errors.Is(err, store.ErrNotFound): // the connection is gone, its cursors with it
			m.apply(ctx, s, ref, false)
		case err != nil:
			if ctx.Err() == nil {
				m.log.Warn("listing channel subscriptions", "connection", ref.ConnectionID, "channel", ref.ChannelKey, "error", err)
			}
		case len(subs) > 0:
			ref.IntegrationKey = subs[0].IntegrationKey
			m.apply(ctx, s, ref, true)
		default:
			m.apply(ctx, s, ref, false)
			// No subscriptions left: the next subscription starts from now, not from where
			// this one stopped.
			if err := m.cfg.Store.SetChannelCursor(ctx, ref.ConnectionID, ref.ChannelKey, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
				m.log.Warn("clearing a channel cursor", "connection", ref.ConnectionID, "channel", ref.ChannelKey, "error", err)
			}
		}
	}
}

// apply is the one place that decides to start or stop a worker. With Leases, a worker
// starts only once this instance took its channel's lease; otherwise the channel waits in
// standby, and the worker stops by itself when it loses the lease.
func (m *Manager) apply(ctx context.Context, s *supervision, ref store.ChannelRef, run bool) {
	workers := s.workers
	key := keyOf(ref)
	w, running := workers[key]
	if running {
		select {
		case <-w.done:
			delete(workers, key)
			m.metrics.workers.WithLabelValues(w.kind).Dec()
			running = false
		default:
		}
	}
	switch {
	case run && !running:
		t, err := m.resolve(ctx, ref)
		if err != nil {
			// Gone, or no longer loaded: the next resync looks again. A channel in standby
			// that failed otherwise (the store not answering) stays, so that taking it over
			// does not wait for the resync.
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrConnectorMissing) {
				delete(s.standby, key)
			}
			if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
				m.log.Warn("starting a channel worker", "connection", ref.ConnectionID, "channel", ref.ChannelKey, "error", err)
			}
			return
		}
		if t.channel.Kind != connector.ChannelSSE && t.channel.Kind != connector.ChannelPolling {
			return // pushed to, not pulled: nothing to run
		}
		var le *lease
		if m.cfg.Leases != nil {
			le, err = m.cfg.Leases.acquire(ctx, key)
			if err != nil {
				s.standby[key] = t.ref
				switch {
				case errors.Is(err, ErrLeaseHeld) || ctx.Err() != nil:
				case errors.Is(err, errNATSDown): // the bus logs that; this would repeat it per channel
					m.log.Debug("taking a channel lease", "connection", ref.ConnectionID, "channel", ref.ChannelKey, "error", err)
				default:
					m.log.Warn("taking a channel lease", "connection", ref.ConnectionID, "channel", ref.ChannelKey, "error", err)
				}
				return
			}
		}
		delete(s.standby, key)
		wctx, cancel := context.WithCancel(ctx)
		w := &worker{ref: t.ref, kind: t.channel.Kind, cancel: cancel, done: make(chan struct{})}
		workers[key] = w
		m.metrics.workers.WithLabelValues(w.kind).Inc()
		log := m.workerLog(t.ref, w.kind)
		go func() {
			defer close(w.done)
			if le != nil {
				// The lease is released only after the worker returned, its cursor stored:
				// the next holder starts from there.
				held := make(chan bool, 1)
				go func() { held <- le.keep(wctx, cancel, log) }()
				defer func() {
					cancel()
					if !<-held {
						m.metrics.leasesLost.WithLabelValues(w.kind).Inc()
						return
					}
					rctx, stop := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.Leases.TTL()/3)
					defer stop()
					if err := le.release(rctx); err != nil {
						log.Warn("releasing the channel lease", "error", err)
					}
				}()
			}
			m.runWorker(wctx, log, t.ref, w.kind)
		}()
	case !run:
		delete(s.standby, key)
		if running {
			w.cancel()
			<-w.done
			delete(workers, key)
			m.metrics.workers.WithLabelValues(w.kind).Dec()
		}
	}
}

// keyOf is ref without its integration, which Changed does not know: workers are keyed by
// connection and channel.
func keyOf(ref store.ChannelRef) store.ChannelRef {
	return store.ChannelRef{ConnectionID: ref.ConnectionID, ChannelKey: ref.ChannelKey}
}

// target is a connection's channel, resolved: its connector's definition and the API it
// talks to with the connection's credentials.
type target struct {
	ref     store.ChannelRef
	conn    store.Connection
	channel *connector.Channel
	api     *sandbox.API // nil for channels that need none
}

// resolve reads ref's connection and integration and finds its channel in the connectors.
// store.ErrNotFound (wrapped) when the connection or integration is gone;
// ErrConnectorMissing when the connector or its channel is not loaded.
func (m *Manager) resolve(ctx context.Context, ref store.ChannelRef) (target, error) {
	conn, err := m.cfg.Store.GetConnection(ctx, ref.ConnectionID)
	if err != nil {
		return target{}, fmt.Errorf("resolving channel %q: %w", ref.ChannelKey, err)
	}
	in, err := m.cfg.Store.GetIntegration(ctx, conn.IntegrationKey)
	if err != nil {
		return target{}, fmt.Errorf("resolving channel %q: %w", ref.ChannelKey, err)
	}
	ref.IntegrationKey = conn.IntegrationKey
	cn, ok := m.cfg.Connectors.Connector(in.ConnectorKey)
	if !ok {
		return target{}, fmt.Errorf("resolving channel %q: connector %q: %w", ref.ChannelKey, in.ConnectorKey, ErrConnectorMissing)
	}
	ch, ok := cn.Channels[ref.ChannelKey]
	if !ok {
		return target{}, fmt.Errorf("resolving channel %q of connector %q: %w", ref.ChannelKey, cn.Key, ErrConnectorMissing)
	}
	t := target{ref: ref, conn: conn, channel: ch}
	if ch.Kind == connector.ChannelSSE || ch.Kind == connector.ChannelPolling {
		t.api, err = cn.ResolveAPI(conn.Credentials, conn.Parameters, in.Parameters, m.cfg.HTTPClient)
		if err != nil {
			return target{}, fmt.Errorf("resolving channel %q: %w", ref.ChannelKey, err)
		}
		if t.api == nil {
			return target{}, fmt.Errorf("resolving channel %q: connector %q has no api.baseUri", ref.ChannelKey, cn.Key)
		}
	}
	return t, nil
}

func (m *Manager) workerLog(ref store.ChannelRef, kind string) *slog.Logger {
	return m.log.With("integration", ref.IntegrationKey, "connection", ref.ConnectionID, "channel", ref.ChannelKey, "kind", kind)
}

// runWorker runs an sse or polling worker until ctx ends or its connection goes away.
func (m *Manager) runWorker(ctx context.Context, log *slog.Logger, ref store.ChannelRef, kind string) {
	log.Info("channel worker started")
	defer log.Info("channel worker stopped")
	switch kind {
	case connector.ChannelSSE:
		m.runSSE(ctx, ref, log)
	case connector.ChannelPolling:
		m.runPolling(ctx, ref, log)
	}
}

// newBackoff is the exponential, jittered backoff of a worker, starting at least at floor.
func (m *Manager) newBackoff(floor time.Duration) *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     max(m.cfg.MinBackoff, floor),
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         max(m.cfg.MaxBackoff, floor),
	}
	b.Reset()
	return b
}

// sleep waits for d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// saveCursor stores a worker's cursor after the bus acknowledged what it covers, even when
// ctx just ended: the events are on the bus, and a lost cursor would replay them.
func (m *Manager) saveCursor(ctx context.Context, ref store.ChannelRef, cursor string) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return m.cfg.Store.SetChannelCursor(sctx, ref.ConnectionID, ref.ChannelKey, cursor)
}

// logRejected logs a payload that failed its schema: the event's type and id and where and
// by which keyword it failed, never the payload (a schema message such as a pattern
// mismatch quotes the value, so messages are cut after the keyword) nor the connection's
// secrets.
func (m *Manager) logRejected(log *slog.Logger, kind string, ref store.ChannelRef, re *RejectedError) {
	m.metrics.rejected.WithLabelValues(ref.IntegrationKey, ref.ChannelKey, kind).Inc()
	where := make([]string, len(re.Issues))
	for i, issue := range re.Issues {
		// An issue reads "/location: keyword: message".
		parts := strings.SplitN(issue, ": ", 3)
		where[i] = strings.Join(parts[:min(2, len(parts))], ": ")
	}
	log.Warn("channel event rejected by its schema", "event_type", re.Type, "event_id", re.ID, "failed", where)
}

// withoutURL drops the request URL from an HTTP client error: it may carry credentials
// (api.auth type query, placeholders in api.baseUri), and errors are logged.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s request: %w", ue.Op, ue.Err)
	}
	return err
}
