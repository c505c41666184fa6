package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-run/switchboard/runtime/egress"
	"github.com/switchboard-run/switchboard/runtime/store"
)

// Defaults for the zero values of Config.
const (
	DefaultStreamName    = "SWITCHBOARD_DELIVERIES"
	DefaultConsumerName  = "switchboard-delivery"
	DefaultTimeout       = 15 * time.Second
	DefaultMaxRetryAfter = 24 * time.Hour
	DefaultConcurrency   = 4
	DefaultJitter        = 0.1
	DefaultScanInterval  = 5 * time.Second
	DefaultRotationGrace = 24 * time.Hour
)

// DefaultSchedule is SPEC 5's retry schedule: entry i is the wait before attempt i+1, so
// the first attempt is immediate and the tenth comes 24h after the ninth.
func DefaultSchedule() []time.Duration {
	return []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
		5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour}
}

// Subjects and headers of the deliveries stream.
const (
	eventsFilter    = "events.*.apps.app.event_received.>"
	taskSubjectBase = "deliveries."
	hdrMessageID    = "Switchboard-Message-Id"
	hdrEventID      = "Switchboard-Event-Id"
	hdrSubject      = "Switchboard-Subject"
)

// Limits of what is read from a response.
const (
	storedResponseLimit = 1 << 10 // kept with an attempt
	testResponseLimit   = 4 << 10 // returned by Test
)

// Waits that are not part of the schedule.
const (
	storeRetryDelay  = 5 * time.Second  // a store or bus failure while handling a message
	fetchWait        = 5 * time.Second  // one long poll for a task
	shutdownNakDelay = time.Second      // an attempt abandoned at shutdown
	setupRetryDelay  = time.Second      // New waiting for JetStream; a runner after a failed fetch
	ackWaitMargin    = 30 * time.Second // AckWait beyond the attempt timeout
	maxAckPending    = 10000            // tasks of one endpoint in flight or waiting for a retry
	fanoutAckWait    = 30 * time.Second // for the fan-out of one event
	infoTimeout      = 5 * time.Second  // listing consumers
	duplicateWindow  = 2 * time.Minute  // task de-duplication by Nats-Msg-Id
	consumerPrefix   = "endpoint-"      // names of the endpoint consumers
	userAgent        = "switchboard"    // sent with every request
)

// Bus is what the service needs of the event bus: JetStream and the events stream's name.
type Bus interface {
	JetStream() jetstream.JetStream
	StreamName() string
}

// Store is what the service needs of the store.
type Store interface {
	GetEndpoint(ctx context.Context, integrationKey, id string) (store.Endpoint, error)
	ListEndpoints(ctx context.Context, integrationKey string) ([]store.Endpoint, error)
	UpdateEndpoint(ctx context.Context, ep store.Endpoint) error
	AddAttempt(ctx context.Context, integrationKey string, a store.Attempt) error
	ListAttempts(ctx context.Context, integrationKey, endpointID string) ([]store.Attempt, error)
	PutDeadLetter(ctx context.Context, d store.DeadLetter) error
	DeleteDeadLetter(ctx context.Context, integrationKey, endpointID, id string) error
}

// Config configures a Service. Bus and Store are required.
type Config struct {
	Bus   Bus
	Store Store
	// AllowPrivateNetworks lets endpoints be loopback or private addresses (local development,
	// tests); off, they are refused when created and where they are dialled.
	AllowPrivateNetworks bool
	// Schedule is the wait before each attempt (see DefaultSchedule); its length is the
	// number of attempts before a message is dead-lettered. Tests shrink it.
	Schedule []time.Duration
	// Jitter spreads each scheduled wait by up to this fraction either way; default 0.1.
	// Negative: none.
	Jitter float64
	// Timeout bounds one attempt, from dialling to the response headers; default 15s.
	Timeout time.Duration
	// MaxRetryAfter caps the wait a Retry-After header may ask for; default 24h.
	MaxRetryAfter time.Duration
	// Concurrency is how many attempts at one endpoint one process makes at once; default 4.
	Concurrency int
	// ScanInterval is how often endpoint consumers made elsewhere are looked for and the
	// queue depth is measured; default 5s.
	ScanInterval time.Duration
	// StreamName and ConsumerName name the deliveries stream and the fan-out consumer.
	StreamName   string
	ConsumerName string
	// Registerer receives the metrics; nil: they are not exported.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if len(c.Schedule) == 0 {
		c.Schedule = DefaultSchedule()
	}
	if c.Jitter == 0 {
		c.Jitter = DefaultJitter
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.ScanInterval <= 0 {
		c.ScanInterval = DefaultScanInterval
	}
	if c.StreamName == "" {
		c.StreamName = DefaultStreamName
	}
	if c.ConsumerName == "" {
		c.ConsumerName = DefaultConsumerName
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Service delivers events to endpoints. Make one with New, run it with Run.
type Service struct {
	cfg     Config
	js      jetstream.JetStream
	store   Store
	client  *http.Client
	log     *slog.Logger
	metrics *metrics
	fanout  jetstream.Consumer // made by New, consumed by Run

	// rescan wakes the reconciling loop when a process makes an endpoint consumer, so that
	// its runner starts at once rather than at the next scan.
	rescan chan struct{}
	// known holds the names of the endpoint consumers made or seen, so that the fan-out
	// does not ask JetStream for them on every event.
	known sync.Map
}

// New returns a Service after making sure, waiting for JetStream until ctx ends, that the
// deliveries stream and the fan-out consumer exist: events published from then on reach
// the endpoints (the first start of all does not go back over the stream's history).
// Nothing is consumed until Run.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Bus == nil || cfg.Store == nil {
		return nil, errors.New("creating the delivery service: a bus and a store are required")
	}
	cfg = cfg.withDefaults()
	client := egress.Client(cfg.AllowPrivateNetworks)
	// Attempts are bounded by a context, and a redirect is a failed attempt, not followed:
	// the endpoint's owner gave this URL, and following would leak the signed body elsewhere.
	client.Timeout = 0
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:     cfg,
		js:      cfg.Bus.JetStream(),
		store:   cfg.Store,
		client:  client,
		log:     cfg.Logger,
		metrics: m,
		rescan:  make(chan struct{}, 1),
	}
	for {
		s.fanout, err = s.setup(ctx)
		if err == nil {
			return s, nil
		}
		s.log.Warn("waiting for jetstream to set up delivery", "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("creating the delivery service: %w: %w", err, ctx.Err())
		case <-time.After(setupRetryDelay):
		}
	}
}

// Run consumes events and delivers them until ctx ends, then waits for its goroutines (see
// the package doc).
func (s *Service) Run(ctx context.Context) error {
	cc, err := s.fanout.Consume(func(msg jetstream.Msg) { s.fanOut(ctx, msg) },
		jetstream.PullMaxMessages(64),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if ctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoHeartbeat) {
				s.log.Debug("consuming events", "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("consuming events: %w", err)
	}
	s.log.Info("delivering events to endpoints", "stream", s.cfg.StreamName, "consumer", s.cfg.ConsumerName)
	s.reconcile(ctx)
	// Stop takes the fan-out callback off the subscription; one in progress finishes on its
	// own, with ctx cancelled.
	cc.Stop()
	<-cc.Closed()
	return nil
}

// setup makes sure the deliveries stream and the fan-out consumer exist.
func (s *Service) setup(ctx context.Context) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	_, err := s.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        s.cfg.StreamName,
		Description: "switchboard deliveries: one task per event and endpoint",
		Subjects:    []string{taskSubjectBase + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  duplicateWindow,
		// No MaxAge: a task waiting for its last retry must not expire.
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, fmt.Errorf("creating stream %s: %w", s.cfg.StreamName, err)
	}
	events := s.cfg.Bus.StreamName()
	c, err := s.js.CreateOrUpdateConsumer(ctx, events, jetstream.ConsumerConfig{
		Durable:       s.cfg.ConsumerName,
		Description:   "switchboard: fans routed events out to delivery endpoints",
		FilterSubject: eventsFilter,
		// A first start delivers what comes next, not the stream's history.
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       fanoutAckWait,
		MaxDeliver:    -1,
		MaxAckPending: 1000,
	})
	if err != nil {
		return nil, fmt.Errorf("creating consumer %s on stream %s: %w", s.cfg.ConsumerName, events, err)
	}
	return c, nil
}

// eventHead is what the fan-out reads of an envelope.
type eventHead struct {
	ID       string `json:"id"`
	Metadata *struct {
		EventKey  string  `json:"eventKey"`
		EventType *string `json:"eventType"`
	} `json:"metadata"`
}

// eventKey is what an endpoint's eventKeys are matched against: the subscription's event
// key, or a channel event's type.
func (h eventHead) eventKey() string {
	if h.Metadata == nil {
		return ""
	}
	if h.Metadata.EventKey != "" {
		return h.Metadata.EventKey
	}
	if h.Metadata.EventType != nil {
		return *h.Metadata.EventType
	}
	return ""
}

// fanOut turns one routed event into one task per endpoint that wants it.
func (s *Service) fanOut(ctx context.Context, msg jetstream.Msg) {
	subject := msg.Subject()
	tokens := strings.Split(subject, ".")
	var head eventHead
	if len(tokens) < 8 || json.Unmarshal(msg.Data(), &head) != nil || head.ID == "" {
		s.log.Warn("dropping an event that is not a routed envelope", "subject", subject)
		_ = msg.Term()
		return
	}
	integrationKey, eventKey := tokens[5], head.eventKey()
	log := s.log.With("integration", integrationKey, "event", head.ID)

	eps, err := s.store.ListEndpoints(ctx, integrationKey)
	if err != nil {
		log.Warn("listing endpoints, will retry", "err", err)
		_ = msg.NakWithDelay(storeRetryDelay)
		return
	}
	for _, ep := range eps {
		if !ep.Enabled || !ep.Wants(eventKey) {
			continue
		}
		t := task{
			integrationKey: integrationKey,
			endpointID:     ep.ID,
			messageID:      MessageID(head.ID, ep.ID),
			eventID:        head.ID,
			subject:        subject,
			body:           msg.Data(),
		}
		if err := s.enqueue(ctx, t, t.messageID); err != nil {
			// Tasks already published are dropped as duplicates when this event comes back.
			log.Warn("enqueueing a delivery, will retry", "endpoint", ep.ID, "err", err)
			_ = msg.NakWithDelay(storeRetryDelay)
			return
		}
	}
	if err := msg.DoubleAck(ctx); err != nil && ctx.Err() == nil {
		log.Warn("acknowledging a fanned-out event", "err", err)
	}
}

// task is one event for one endpoint, as it travels on the deliveries stream.
type task struct {
	integrationKey, endpointID string
	messageID, eventID         string
	subject                    string // of the event
	body                       []byte // the envelope, as published
}

func taskSubject(integrationKey, endpointID string) string {
	return taskSubjectBase + integrationKey + "." + endpointID
}

// enqueue publishes t, after making sure its endpoint has a consumer. dedupID is its
// Nats-Msg-Id: JetStream drops a second task with the same one within the duplicate window.
func (s *Service) enqueue(ctx context.Context, t task, dedupID string) error {
	if err := s.ensureConsumer(ctx, t.integrationKey, t.endpointID); err != nil {
		return err
	}
	m := &nats.Msg{
		Subject: taskSubject(t.integrationKey, t.endpointID),
		Data:    t.body,
		Header: nats.Header{
			jetstream.MsgIDHeader: []string{dedupID},
			hdrMessageID:          []string{t.messageID},
			hdrEventID:            []string{t.eventID},
			hdrSubject:            []string{t.subject},
		},
	}
	pctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	if _, err := s.js.PublishMsg(pctx, m); err != nil {
		return fmt.Errorf("publishing a delivery task: %w", err)
	}
	return nil
}

// consumerName names the consumer of an endpoint's tasks.
func consumerName(integrationKey, endpointID string) string {
	return consumerPrefix + integrationKey + "-" + endpointID
}

// ensureConsumer makes the endpoint's consumer unless this process has made or seen it.
func (s *Service) ensureConsumer(ctx context.Context, integrationKey, endpointID string) error {
	name := consumerName(integrationKey, endpointID)
	if _, ok := s.known.Load(name); ok {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	_, err := s.js.CreateOrUpdateConsumer(cctx, s.cfg.StreamName, s.endpointConsumerConfig(integrationKey, endpointID))
	if err != nil {
		return fmt.Errorf("creating consumer %s: %w", name, err)
	}
	s.known.Store(name, struct{}{})
	select {
	case s.rescan <- struct{}{}:
	default:
	}
	return nil
}

func (s *Service) endpointConsumerConfig(integrationKey, endpointID string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       consumerName(integrationKey, endpointID),
		Description:   "switchboard: deliveries to one endpoint",
		FilterSubject: taskSubject(integrationKey, endpointID),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		// An attempt takes at most Timeout; a task not acknowledged by then belongs to a
		// process that died, and goes to another.
		AckWait:    s.cfg.Timeout + ackWaitMargin,
		MaxDeliver: -1, // the schedule decides
		// Tasks waiting for a retry count as pending: this many may wait before the
		// endpoint's new tasks queue behind them.
		MaxAckPending: maxAckPending,
	}
}

// runner is the goroutine serving one endpoint consumer.
type runner struct {
	stop context.CancelFunc
	done chan struct{}
}

// reconcile runs until ctx ends: it keeps one runner per endpoint consumer of the stream,
// removes the consumers (and tasks) of deleted endpoints, and measures the queues. It owns
// the runners and waits for them before returning.
func (s *Service) reconcile(ctx context.Context) {
	runners := map[string]*runner{}
	defer func() {
		for _, r := range runners {
			r.stop()
		}
		for _, r := range runners {
			<-r.done
		}
	}()
	tick := time.NewTicker(s.cfg.ScanInterval)
	defer tick.Stop()
	for {
		s.scan(ctx, runners)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.rescan:
		}
	}
}

// scan is one pass of reconcile.
func (s *Service) scan(ctx context.Context, runners map[string]*runner) {
	for name, r := range runners {
		select {
		case <-r.done:
			delete(runners, name)
		default:
		}
	}
	lctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	stream, err := s.js.Stream(lctx, s.cfg.StreamName)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("reading the deliveries stream", "err", err)
		}
		return
	}
	if info, err := s.js.Consumer(lctx, s.cfg.Bus.StreamName(), s.cfg.ConsumerName); err == nil {
		if ci := info.CachedInfo(); ci != nil {
			s.metrics.fanoutPending.Set(float64(ci.NumPending + uint64(ci.NumAckPending)))
		}
	}
	lister := stream.ListConsumers(lctx)
	seen := map[string]bool{}
	s.metrics.queueDepth.Reset()
	for info := range lister.Info() {
		integrationKey, endpointID, ok := parseTaskSubject(info.Config.FilterSubject)
		if !ok || !strings.HasPrefix(info.Name, consumerPrefix) {
			continue
		}
		seen[info.Name] = true
		s.known.Store(info.Name, struct{}{})
		if _, err := s.store.GetEndpoint(lctx, integrationKey, endpointID); errors.Is(err, store.ErrNotFound) {
			// Deleted: its runner stops (collected at the next scan), its tasks go.
			if r, running := runners[info.Name]; running {
				r.stop()
			}
			s.removeConsumer(lctx, stream, info.Name, integrationKey, endpointID)
			continue
		}
		s.metrics.queueDepth.WithLabelValues(integrationKey, endpointID).Set(float64(info.NumPending + uint64(info.NumAckPending)))
		if _, running := runners[info.Name]; running {
			continue
		}
		cons, err := stream.Consumer(lctx, info.Name)
		if err != nil {
			s.log.Warn("opening an endpoint consumer", "consumer", info.Name, "err", err)
			continue
		}
		rctx, stop := context.WithCancel(ctx)
		r := &runner{stop: stop, done: make(chan struct{})}
		runners[info.Name] = r
		go func() {
			defer close(r.done)
			s.runEndpoint(rctx, cons, integrationKey, endpointID)
		}()
	}
	if err := lister.Err(); err != nil && ctx.Err() == nil {
		s.log.Warn("listing endpoint consumers", "err", err)
	}
	for name, r := range runners {
		if !seen[name] && lister.Err() == nil {
			r.stop() // its consumer is gone; done is collected at the next scan
		}
	}
}

// removeConsumer deletes the consumer and the waiting tasks of a deleted endpoint.
func (s *Service) removeConsumer(ctx context.Context, stream jetstream.Stream, name, integrationKey, endpointID string) {
	if err := stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.log.Warn("deleting the consumer of a deleted endpoint", "consumer", name, "err", err)
		return
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(taskSubject(integrationKey, endpointID))); err != nil {
		s.log.Warn("purging the tasks of a deleted endpoint", "consumer", name, "err", err)
	}
	s.known.Delete(name)
	s.log.Info("removed the deliveries of a deleted endpoint", "integration", integrationKey, "endpoint", endpointID)
}

func parseTaskSubject(subject string) (integrationKey, endpointID string, ok bool) {
	rest, ok := strings.CutPrefix(subject, taskSubjectBase)
	if !ok {
		return "", "", false
	}
	integrationKey, endpointID, ok = strings.Cut(rest, ".")
	return integrationKey, endpointID, ok && store.ValidKey(integrationKey) && store.ValidKey(endpointID)
}

// runEndpoint pulls the endpoint's tasks one at a time, whenever one of its Concurrency
// slots is free, and attempts each on its own goroutine; it returns when ctx ends (after
// those attempts) or the consumer is gone.
func (s *Service) runEndpoint(ctx context.Context, cons jetstream.Consumer, integrationKey, endpointID string) {
	log := s.log.With("integration", integrationKey, "endpoint", endpointID)
	slots := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		fctx, cancel := context.WithTimeout(ctx, fetchWait)
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			<-slots
			switch {
			case ctx.Err() != nil:
				return
			case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
				continue
			}
			ictx, cancel := context.WithTimeout(ctx, infoTimeout)
			_, ierr := cons.Info(ictx)
			cancel()
			if errors.Is(ierr, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				log.Info("endpoint consumer gone")
				return
			}
			log.Debug("fetching a delivery task", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(setupRetryDelay):
			}
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			s.deliver(ctx, msg, integrationKey, endpointID)
		})
	}
}

// deliver makes one attempt at one task and settles it: acknowledged when delivered,
// scheduled again while retries remain, dead-lettered after the last one.
func (s *Service) deliver(ctx context.Context, msg jetstream.Msg, integrationKey, endpointID string) {
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	attempt := int(md.NumDelivered)
	h := msg.Headers()
	t := task{
		integrationKey: integrationKey,
		endpointID:     endpointID,
		messageID:      h.Get(hdrMessageID),
		eventID:        h.Get(hdrEventID),
		subject:        h.Get(hdrSubject),
		body:           msg.Data(),
	}
	log := s.log.With("integration", integrationKey, "endpoint", endpointID, "message", t.messageID, "attempt", attempt)

	ep, err := s.store.GetEndpoint(ctx, integrationKey, endpointID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.metrics.deliveries.WithLabelValues(integrationKey, outcomeDropped).Inc()
		_ = msg.Term()
		return
	case err != nil:
		log.Warn("reading the endpoint, will retry", "err", err)
		_ = msg.NakWithDelay(storeRetryDelay)
		return
	case !ep.Enabled:
		s.deadLetter(ctx, msg, t, "endpoint disabled before the message was delivered", log)
		return
	case attempt > len(s.cfg.Schedule):
		// Delivered more often than the schedule allows: a crash or a store failure used up
		// attempts, or the schedule was shortened.
		s.deadLetter(ctx, msg, t, fmt.Sprintf("retries exhausted after %d attempts", len(s.cfg.Schedule)), log)
		return
	}

	res := s.send(ctx, ep, t.messageID, t.body, storedResponseLimit)
	if ctx.Err() != nil {
		// Shutting down: the attempt was cut short. A plain Nak could hand the task straight
		// back to a pull request this process left behind, where it would sit out AckWait;
		// after a short delay it goes to a live process.
		_ = msg.NakWithDelay(shutdownNakDelay)
		return
	}
	s.metrics.attemptDuration.WithLabelValues(integrationKey).Observe(res.duration.Seconds())
	a := res.attempt(endpointID, t, attempt, s.cfg.Now())
	if err := s.store.AddAttempt(ctx, integrationKey, a); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Warn("recording an attempt", "err", err)
	}

	switch {
	case res.ok():
		s.metrics.deliveries.WithLabelValues(integrationKey, outcomeDelivered).Inc()
		if err := msg.DoubleAck(ctx); err != nil {
			log.Warn("acknowledging a delivered message", "err", err)
		}
	case res.status == http.StatusGone:
		log.Warn("endpoint answered 410 Gone: disabling it")
		s.disable(ctx, ep, log)
		s.metrics.deliveries.WithLabelValues(integrationKey, outcomeDisabled).Inc()
		s.deadLetter(ctx, msg, t, "endpoint answered 410 Gone and was disabled", log)
	case attempt < len(s.cfg.Schedule):
		delay := s.retryDelay(attempt, res.retryAfter)
		log.Info("delivery failed, will retry", "status", res.status, "err", res.err, "in", delay)
		s.metrics.deliveries.WithLabelValues(integrationKey, outcomeRetried).Inc()
		if delay > 0 {
			_ = msg.NakWithDelay(delay)
		} else {
			_ = msg.Nak()
		}
	default:
		s.deadLetter(ctx, msg, t, fmt.Sprintf("retries exhausted after %d attempts", attempt), log)
	}
}

// retryDelay is the wait after attempt (counted from 1) failed: the schedule's, jittered,
// or what Retry-After asked for when that is longer (capped by MaxRetryAfter).
func (s *Service) retryDelay(attempt int, retryAfter time.Duration) time.Duration {
	d := s.cfg.Schedule[attempt]
	if s.cfg.Jitter > 0 && d > 0 {
		d = time.Duration(float64(d) * (1 + s.cfg.Jitter*(2*rand.Float64()-1)))
	}
	return max(d, min(retryAfter, s.cfg.MaxRetryAfter))
}

// disable marks ep disabled after a 410, re-reading it so that a change made meanwhile
// through the API is kept.
func (s *Service) disable(ctx context.Context, ep store.Endpoint, log *slog.Logger) {
	if cur, err := s.store.GetEndpoint(ctx, ep.IntegrationKey, ep.ID); err == nil {
		ep = cur
	}
	now := s.cfg.Now().UTC()
	ep.Enabled = false
	ep.DisabledReason = "answered 410 Gone at " + now.Format(time.RFC3339)
	ep.UpdatedAt = now
	if err := s.store.UpdateEndpoint(ctx, ep); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Error("disabling the endpoint", "err", err)
	}
}

// deadLetter keeps t with its attempts in the store and settles the message.
func (s *Service) deadLetter(ctx context.Context, msg jetstream.Msg, t task, reason string, log *slog.Logger) {
	recent, err := s.store.ListAttempts(ctx, t.integrationKey, t.endpointID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Warn("reading the attempts of a dead letter", "err", err)
	}
	attempts := []store.Attempt{}
	for i := len(recent) - 1; i >= 0; i-- { // oldest first
		if recent[i].MessageID == t.messageID && !recent[i].Test {
			attempts = append(attempts, recent[i])
		}
	}
	d := store.DeadLetter{
		ID:             newID("dl_"),
		IntegrationKey: t.integrationKey,
		EndpointID:     t.endpointID,
		MessageID:      t.messageID,
		EventID:        t.eventID,
		Subject:        t.subject,
		Envelope:       json.RawMessage(t.body),
		Reason:         reason,
		Attempts:       attempts,
		CreatedAt:      s.cfg.Now().UTC(),
	}
	switch err := s.store.PutDeadLetter(ctx, d); {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		log.Warn("dropping a message that cannot be dead-lettered", "reason", reason, "err", err)
		_ = msg.Term()
		return
	case err != nil:
		log.Warn("storing a dead letter, will retry", "err", err)
		_ = msg.NakWithDelay(storeRetryDelay)
		return
	}
	log.Warn("message dead-lettered", "reason", reason, "dead_letter", d.ID)
	s.metrics.deliveries.WithLabelValues(t.integrationKey, outcomeDeadLettered).Inc()
	s.metrics.deadLetters.WithLabelValues(t.integrationKey).Inc()
	if err := msg.DoubleAck(ctx); err != nil {
		log.Warn("acknowledging a dead-lettered message", "err", err)
	}
}
