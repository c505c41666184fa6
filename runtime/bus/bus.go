package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrUnavailable: NATS or JetStream cannot take the publish now; try again later.
	ErrUnavailable = errors.New("event bus unavailable")
)

// Defaults for the zero values of Config.
const (
	DefaultStreamName = "SWITCHBOARD_EVENTS"
	// DefaultPublishTimeout: JetStream acknowledges in milliseconds; a bus silent for two
	// seconds is down, and ingest answers 503 rather than keep the sender waiting.
	DefaultPublishTimeout  = 2 * time.Second
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultMaxAge          = 7 * 24 * time.Hour
)

// DefaultSubjects are the subjects the events stream captures unless Config says otherwise.
func DefaultSubjects() []string { return []string{"events.>"} }

// Config configures a Bus.
type Config struct {
	// URL of the NATS server(s), comma separated. Ignored by Embedded.Connect.
	URL string
	// StreamName names the stream to create when none captures Subjects; default
	// DefaultStreamName.
	StreamName string
	// Subjects the stream captures; default DefaultSubjects().
	Subjects []string
	// PublishTimeout bounds every Publish, PublishAll and Ping; default
	// DefaultPublishTimeout.
	PublishTimeout time.Duration
	// DuplicateWindow is how long JetStream remembers message IDs to drop repeated
	// publishes; default DefaultDuplicateWindow. Used only when creating the stream.
	DuplicateWindow time.Duration
	// MaxAge is how long the stream keeps messages; default DefaultMaxAge. Used only when
	// creating the stream.
	MaxAge time.Duration
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.StreamName == "" {
		c.StreamName = DefaultStreamName
	}
	if len(c.Subjects) == 0 {
		c.Subjects = DefaultSubjects()
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Message is one event to publish. It is an alias of an unnamed struct type, not a defined
// type, so that packages which must not import the NATS client (router) can declare the
// identical type and accept a *Bus through their own small interface.
type Message = struct {
	Subject string // a concrete subject, no wildcards
	Data    []byte // the body; the caller must not change it afterwards (a failed publish may still be resent)
	ID      string // sent as Nats-Msg-Id for de-duplication; empty: none
}

// Bus publishes to JetStream over one NATS connection.
type Bus struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	cfg    Config
	log    *slog.Logger
	closed chan struct{} // closed by the connection's ClosedHandler
	// started is set once connect has finished setting up js; the reconnect handler does
	// nothing before.
	started atomic.Bool

	mu     sync.Mutex
	stream string // the stream events land in: cfg.StreamName or the one found covering the subjects
}

// Connect connects to the NATS server at cfg.URL and makes sure the events stream exists.
// It keeps trying until ctx ends, so a NATS that comes up a little later is waited for; the
// error then wraps ErrUnavailable.
func Connect(ctx context.Context, cfg Config) (*Bus, error) {
	if cfg.URL == "" {
		return nil, errors.New("connecting to nats: no URL")
	}
	return connect(ctx, cfg)
}

func connect(ctx context.Context, cfg Config, extra ...nats.Option) (*Bus, error) {
	cfg = cfg.withDefaults()
	b := &Bus{cfg: cfg, log: cfg.Logger, stream: cfg.StreamName, closed: make(chan struct{})}
	var closeOnce sync.Once

	opts := []nats.Option{
		nats.Name("switchboard"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			// A server that lost its state (a fresh, non-persistent one) no longer has the
			// stream; recreate it off the client's callback goroutine.
			if !b.started.Load() {
				return
			}
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := b.ensureStream(ctx); err != nil {
					b.log.Error("ensuring the events stream after reconnect", "err", err)
				}
			}()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			b.log.Error("nats async error", "err", err)
		}),
		nats.ClosedHandler(func(*nats.Conn) { closeOnce.Do(func() { close(b.closed) }) }),
	}
	opts = append(opts, extra...)

	url := cfg.URL
	if url == "" {
		url = nats.DefaultURL // in-process connections ignore it
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to nats: %w", err)
	}
	b.nc = nc
	fail := func(err error) (*Bus, error) {
		nc.Close()
		return nil, err
	}

	if err := waitConnected(ctx, nc); err != nil {
		return fail(fmt.Errorf("connecting to nats: %w: %w", ErrUnavailable, err))
	}
	b.js, err = jetstream.New(nc,
		// Drops the futures PublishAll stopped waiting for; a little longer than
		// PublishTimeout so that PublishAll's own deadline is what callers see.
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout+time.Second),
		jetstream.WithDefaultTimeout(cfg.PublishTimeout),
	)
	if err != nil {
		return fail(fmt.Errorf("opening jetstream: %w", err))
	}
	for {
		err := b.ensureStream(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnavailable) {
			return fail(err)
		}
		b.log.Warn("waiting for jetstream", "err", err)
		select {
		case <-ctx.Done():
			return fail(fmt.Errorf("%w: %w", err, ctx.Err()))
		case <-time.After(time.Second):
		}
	}
	b.started.Store(true)
	return b, nil
}

// waitConnected waits until nc is connected or ctx ends.
func waitConnected(ctx context.Context, nc *nats.Conn) error {
	ch := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer nc.RemoveStatusListener(ch)
	for {
		switch nc.Status() {
		case nats.CONNECTED:
			return nil
		case nats.CLOSED:
			if err := nc.LastError(); err != nil {
				return err
			}
			return nats.ErrConnectionClosed
		}
		select {
		case <-ctx.Done():
			if err := nc.LastError(); err != nil {
				return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-ch:
		}
	}
}

// ensureStream finds or creates the stream capturing cfg.Subjects and remembers its name.
func (b *Bus) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()

	name := b.cfg.StreamName
	_, err := b.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = b.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        name,
			Description: "switchboard events",
			Subjects:    b.cfg.Subjects,
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      b.cfg.MaxAge,
			Duplicates:  b.cfg.DuplicateWindow,
		})
		switch {
		case err == nil:
			b.log.Info("created the events stream", "stream", name, "subjects", b.cfg.Subjects)
		case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
			err = nil // another process created it first
		default:
			if other, ok := b.streamCovering(ctx); ok {
				b.log.Info("using the existing stream that captures the events subjects",
					"stream", other, "subjects", b.cfg.Subjects)
				name, err = other, nil
			}
		}
	}
	if err != nil {
		return fmt.Errorf("ensuring stream %q: %w", name, failure(ctx, err))
	}
	b.mu.Lock()
	b.stream = name
	b.mu.Unlock()
	return nil
}

// streamCovering returns the name of a stream capturing every one of cfg.Subjects.
func (b *Bus) streamCovering(ctx context.Context) (string, bool) {
	var found string
	for _, subj := range b.cfg.Subjects {
		name, err := b.js.StreamNameBySubject(ctx, subj)
		if err != nil || (found != "" && name != found) {
			return "", false
		}
		found = name
	}
	return found, found != ""
}

// StreamName returns the name of the stream events are stored in.
func (b *Bus) StreamName() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stream
}

// Conn returns the bus's NATS connection. The Bus owns it: do not close or drain it.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream returns the bus's JetStream context, for consumers.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Publish publishes one message and waits for JetStream's acknowledgement.
func (b *Bus) Publish(ctx context.Context, m Message) error {
	return b.PublishAll(ctx, []Message{m})
}

// PublishAll publishes msgs concurrently and waits for every acknowledgement. It returns nil
// only when all of them are stored; otherwise the first failure. Messages sent before a
// failure may still be stored: publish them again with the same IDs to be sure, and
// JetStream drops the ones it already has.
//
// Publishing is asynchronous even for one message: the client fails pending asynchronous
// acknowledgements as soon as it notices a disconnect, where a request would wait out its
// timeout.
func (b *Bus) PublishAll(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := b.ready(); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()

	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := b.js.PublishMsgAsync(newMsg(m))
		if err != nil {
			return fmt.Errorf("publishing to %s: %w", m.Subject, failure(ctx, err))
		}
		futures[i] = f
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publishing to %s: %w", msgs[i].Subject, failure(ctx, err))
		case <-pctx.Done():
			return fmt.Errorf("awaiting acknowledgements: %w", failure(ctx, pctx.Err()))
		}
	}
	return nil
}

func newMsg(m Message) *nats.Msg {
	nm := &nats.Msg{Subject: m.Subject, Data: m.Data}
	if m.ID != "" {
		nm.Header = nats.Header{jetstream.MsgIDHeader: []string{m.ID}}
	}
	return nm
}

// ready fails fast while the connection is down, rather than letting the client buffer
// publishes that a caller is waiting on.
func (b *Bus) ready() error {
	if s := b.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("publishing: %w: nats connection %s", ErrUnavailable, s)
	}
	return nil
}

// failure classifies an error of a call made with the caller's ctx.
func failure(ctx context.Context, err error) error {
	if ctx.Err() == context.Canceled {
		// The caller gave up; nothing need be wrong with the bus.
		if errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("%w: %w", context.Canceled, err)
	}
	return classify(err)
}

// classify wraps err with ErrUnavailable unless it is a failure that retrying later cannot
// fix (a bad subject or message, a request JetStream refused for a reason of its own).
func classify(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, ErrUnavailable):
		return err
	case errors.As(err, &apiErr) && apiErr.Code != 503 && apiErr.ErrorCode != jetstream.JSErrCodeJetStreamNotEnabled:
		return err
	case errors.Is(err, nats.ErrBadSubject), errors.Is(err, nats.ErrMaxPayload),
		errors.Is(err, nats.ErrInvalidMsg), errors.Is(err, nats.ErrHeadersNotSupported),
		errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrPermissionViolation):
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Ping reports whether NATS is connected and JetStream answers for the events stream.
func (b *Bus) Ping(ctx context.Context) error {
	if err := b.ready(); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	// A request in flight when the connection drops would wait out its timeout; end it
	// as soon as the client notices.
	down := b.nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	defer b.nc.RemoveStatusListener(down)
	go func() {
		select {
		case <-down:
			cancel()
		case <-pctx.Done():
		}
	}()

	name := b.StreamName()
	_, err := b.js.Stream(pctx, name)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("pinging stream %q: %w: %w", name, ErrUnavailable, err)
	case ctx.Err() == nil && b.nc.Status() != nats.CONNECTED:
		return fmt.Errorf("pinging stream %q: %w: nats connection %s", name, ErrUnavailable, b.nc.Status())
	}
	return fmt.Errorf("pinging stream %q: %w", name, failure(ctx, err))
}

// Close drains the connection: publishes in flight are completed, then it closes. When ctx
// ends first the connection is closed at once.
func (b *Bus) Close(ctx context.Context) error {
	if b.nc.IsClosed() {
		return nil
	}
	if err := b.nc.Drain(); err != nil {
		// Nothing can be drained while reconnecting or after closing.
		b.nc.Close()
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) {
			return nil
		}
		return fmt.Errorf("draining nats connection: %w", err)
	}
	select {
	case <-b.closed:
		return nil
	case <-ctx.Done():
		b.nc.Close()
		return fmt.Errorf("draining nats connection: %w", ctx.Err())
	}
}
