package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// Matcher finds the subscriptions a request's events are for. store.Store satisfies it.
type Matcher interface {
	// MatchRoutes returns, for each selector that has any, the routes of the subscriptions
	// of integrationKey whose globalWebhookKey is webhookKey and whose selector equals it.
	MatchRoutes(ctx context.Context, integrationKey, webhookKey string, selectors []string) (map[string][]store.Route, error)
}

// Publisher stores messages on the bus. *bus.Bus satisfies it.
type Publisher interface {
	// PublishAll returns nil only when every message is durably stored.
	PublishAll(ctx context.Context, msgs []Message) error
}

// Message is one message for the Publisher. Like bus.Message it is an alias of an unnamed
// struct type, so the two are the same type and *bus.Bus is a Publisher without router
// importing the NATS client. Keep the fields identical to bus.Message's.
type Message = struct {
	Subject string // a concrete subject, no wildcards
	Data    []byte // the body; the caller must not change it afterwards (a failed publish may still be resent)
	ID      string // sent as Nats-Msg-Id for de-duplication; empty: none
}

// Config configures a Router. Matcher and Publisher are required.
type Config struct {
	Matcher   Matcher
	Publisher Publisher
	Logger    *slog.Logger     // nil discards
	Now       func() time.Time // the clock of envelope timestamps and ids; nil: time.Now

	// Seen remembers published events for SeenTTL (default DefaultSeenTTL), so that a
	// sender's retry after the bus's duplicate window publishes nothing. Nil: the Matcher
	// when it implements Seen (both stores do), else no such memory.
	Seen    Seen
	SeenTTL time.Duration
	// StoreTimeout bounds each call to the Matcher and to Seen; default
	// DefaultStoreTimeout. An unreachable store then fails a request quickly.
	StoreTimeout time.Duration
}

// Router routes handle results to subscriptions and publishes them. See the package doc.
type Router struct {
	matcher Matcher
	pub     Publisher
	log     *slog.Logger
	now     func() time.Time

	seen         Seen // nil: none
	seenTTL      time.Duration
	storeTimeout time.Duration
}

// New returns a Router over cfg.
func New(cfg Config) *Router {
	r := &Router{matcher: cfg.Matcher, pub: cfg.Publisher, log: cfg.Logger, now: cfg.Now,
		seen: cfg.Seen, seenTTL: cfg.SeenTTL, storeTimeout: cfg.StoreTimeout}
	if r.seen == nil {
		r.seen, _ = cfg.Matcher.(Seen)
	}
	if r.seenTTL <= 0 {
		r.seenTTL = DefaultSeenTTL
	}
	if r.storeTimeout <= 0 {
		r.storeTimeout = DefaultStoreTimeout
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Input is what one request to a global webhook produced.
type Input struct {
	IntegrationKey string
	WebhookKey     string
	Events         []Event
	// DeliveryKey identifies the request across the sender's retries (for example a hash
	// of the webhook and the body, or the sender's delivery id header). With it, or with
	// event ids, a retried request publishes the same message IDs and the bus drops the
	// copies; with neither, every call publishes anew.
	DeliveryKey string
	// DeliveryID is the sender's own id of the request (a delivery header such as
	// X-GitHub-Delivery), the same on each of its retries and different for every new
	// request. With it, events without ids are remembered for Config.SeenTTL, like events
	// with ids; without it they are recognised only within the bus's duplicate window, since
	// two different events may well have the same body.
	DeliveryID string
}

// Event is one event handle returned.
type Event struct {
	Selector   string
	Payload    any    // encoded with encoding/json; a json.RawMessage is used as is, unchecked: it must be valid JSON
	RawPayload []byte // when set, the payload's JSON bytes, published byte for byte
	ID         string // the event's id at the external app; optional
}

// Result counts what Route did.
type Result struct {
	Published  int // messages stored, one per (event, matched subscription)
	Unmatched  int // events whose selector matched no subscription
	Duplicates int // events dropped because they were published before (see Seen)
}

// Route publishes one envelope per (event, matched subscription) and returns once the
// Publisher has stored them all. Nothing is published when an event cannot be encoded or a
// subject part is not a valid token. Errors wrap the Matcher's and the Publisher's, so
// callers can tell an unreachable store or bus (errors.Is with their sentinels).
func (r *Router) Route(ctx context.Context, in Input) (Result, error) {
	if err := checkTokens("integration key", in.IntegrationKey, "webhook key", in.WebhookKey); err != nil {
		return Result{}, fmt.Errorf("routing: %w", err)
	}
	if len(in.Events) == 0 {
		return Result{}, nil
	}

	// Events published before (a sender's retry of a request that got its 2xx) are
	// dropped; the others keep their positions, which their message IDs depend on.
	seenKeys, dup, err := r.unseen(ctx, in)
	if err != nil {
		return Result{}, fmt.Errorf("reading seen events: %w", err)
	}
	var res Result
	selectors := make([]string, 0, len(in.Events))
	seen := make(map[string]struct{}, len(in.Events))
	for i, ev := range in.Events {
		if dup != nil && dup[i] {
			res.Duplicates++
			continue
		}
		if _, ok := seen[ev.Selector]; !ok {
			seen[ev.Selector] = struct{}{}
			selectors = append(selectors, ev.Selector)
		}
	}
	if len(selectors) == 0 {
		return res, nil // every event was a duplicate
	}
	mctx, cancel := context.WithTimeout(ctx, r.storeTimeout)
	routes, err := r.matcher.MatchRoutes(mctx, in.IntegrationKey, in.WebhookKey, selectors)
	cancel()
	if err != nil {
		return Result{}, fmt.Errorf("matching routes: %w", err)
	}

	// Encode each matched event's payload once, however many subscriptions it goes to, and
	// size one buffer for all the envelopes.
	payloads := make([]json.RawMessage, len(in.Events))
	count, size := 0, 0
	var publishedKeys []string // seen keys of the events that go out, marked once stored
	for i, ev := range in.Events {
		if dup != nil && dup[i] {
			continue
		}
		rs := routes[ev.Selector]
		if len(rs) == 0 {
			res.Unmatched++
			continue
		}
		if payloads[i], err = encodePayload(ev.Payload, ev.RawPayload); err != nil {
			return Result{}, fmt.Errorf("routing event %d: %w", i, err)
		}
		count += len(rs)
		size += len(rs) * (len(payloads[i]) + envelopeOverhead + len(ev.Selector) + len(ev.ID))
		if seenKeys != nil && seenKeys[i] != "" {
			publishedKeys = append(publishedKeys, seenKeys[i])
		}
	}
	if count == 0 {
		r.log.DebugContext(ctx, "no subscription matched", "integration", in.IntegrationKey,
			"webhook", in.WebhookKey, "events", len(in.Events))
		return res, nil
	}

	now := r.now()
	msgs := make([]Message, 0, count)
	ends := make([]int, 0, count)
	buf := make([]byte, 0, size)
	var ids map[string]struct{} // message IDs already in msgs, once an event repeats an id
	md := new(Metadata)         // reused: AppendJSON copies what it needs
	for i, ev := range in.Events {
		if dup != nil && dup[i] {
			continue
		}
		for _, rt := range routes[ev.Selector] {
			subject, err := EventSubject(rt.CustomerID, in.IntegrationKey, in.WebhookKey, rt.EventKey)
			if err != nil {
				return Result{}, fmt.Errorf("routing event %d to subscription %q: %w", i, rt.SubscriptionID, err)
			}
			id := messageID(in.DeliveryKey, i, ev.ID, rt.SubscriptionID)
			if ev.ID != "" {
				// handle may return one event twice; the bus would drop the copy, but
				// counting it as published would be wrong.
				if ids == nil {
					ids = make(map[string]struct{})
				}
				if _, dup := ids[id]; dup {
					continue
				}
				ids[id] = struct{}{}
			}
			env := Envelope{
				ID:             newEventID(now),
				OrganizationID: rt.CustomerID,
				Source:         SourceApps,
				Resource:       ResourceApp,
				ResourceID:     in.IntegrationKey,
				EventName:      EventNameReceived,
				Timestamp:      now,
				Payload:        payloads[i],
				Metadata:       md,
			}
			*md = Metadata{
				ConnectionID:     rt.ConnectionID,
				SubscriptionID:   rt.SubscriptionID,
				EventKey:         rt.EventKey,
				GlobalWebhookKey: in.WebhookKey,
				Selector:         ev.Selector,
				EventID:          ev.ID,
			}
			buf = env.AppendJSON(buf)
			msgs = append(msgs, Message{Subject: subject, ID: id})
			ends = append(ends, len(buf))
		}
	}
	// Slice the envelopes out only now: appending may have moved buf.
	start := 0
	for i, end := range ends {
		msgs[i].Data = buf[start:end:end]
		start = end
	}

	if err := r.pub.PublishAll(ctx, msgs); err != nil {
		return Result{Unmatched: res.Unmatched, Duplicates: res.Duplicates}, fmt.Errorf("publishing %d events: %w", len(msgs), err)
	}
	res.Published = len(msgs)
	r.markSeen(ctx, in.IntegrationKey, publishedKeys)
	if r.log.Enabled(ctx, slog.LevelDebug) {
		r.log.DebugContext(ctx, "routed", "integration", in.IntegrationKey, "webhook", in.WebhookKey,
			"events", len(in.Events), "published", res.Published, "unmatched", res.Unmatched, "duplicates", res.Duplicates)
	}
	return res, nil
}

// envelopeOverhead estimates an envelope's size without its payload and selector.
const envelopeOverhead = 400

// messageID derives a message's de-duplication ID from what stays the same when a sender
// retries a request: the event's id, or the delivery key and the event's position, and the
// subscription. Empty when the request gives neither an event id nor a delivery key.
func messageID(deliveryKey string, index int, eventID, subscriptionID string) string {
	var kb [256]byte // keys are short; longer ones spill to the heap
	k := kb[:0]
	switch {
	case eventID != "":
		k = append(k, "event\x00"...)
		k = append(k, eventID...)
	case deliveryKey != "":
		k = append(k, "delivery\x00"...)
		k = append(k, deliveryKey...)
		k = append(k, 0)
		k = strconv.AppendInt(k, int64(index), 10)
	default:
		return ""
	}
	k = append(k, 0)
	k = append(k, subscriptionID...)
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:])
}

// StateChange is a change to a record, published for platform services.
type StateChange struct {
	OrganizationID string // the customer id the record belongs to
	Resource       string // "subscription", "connection", ...
	EventName      string // "created", "deleted", ...
	ResourceID     string // the record's id
	Payload        any    // the record, without secrets: the caller strips them
}

// PublishStateChange publishes c as an envelope on
// events.{organizationId}.apps.{resource}.{eventName}.{id} and waits for the bus to store it.
func (r *Router) PublishStateChange(ctx context.Context, c StateChange) error {
	subject, err := StateSubject(c.OrganizationID, c.Resource, c.EventName, c.ResourceID)
	if err != nil {
		return fmt.Errorf("publishing state change: %w", err)
	}
	payload, err := encodePayload(c.Payload, nil)
	if err != nil {
		return fmt.Errorf("publishing state change %s: %w", subject, err)
	}
	now := r.now()
	env := Envelope{
		ID:             newEventID(now),
		OrganizationID: c.OrganizationID,
		Source:         SourceApps,
		Resource:       c.Resource,
		ResourceID:     c.ResourceID,
		EventName:      c.EventName,
		Timestamp:      now,
		Payload:        payload,
	}
	data := env.AppendJSON(make([]byte, 0, len(payload)+envelopeOverhead))
	if err := r.pub.PublishAll(ctx, []Message{{Subject: subject, Data: data, ID: env.ID}}); err != nil {
		return fmt.Errorf("publishing state change %s: %w", subject, err)
	}
	return nil
}
