package channel

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/runtime/store"
)

// Receipt is what one request to a webhook or cloudevents channel came to.
type Receipt struct {
	IntegrationKey string
	ChannelKey     string
	Kind           string
	Events         []Event          // recognised, valid events, published to their subscriptions (if any)
	Unmatched      int              // messages no event definition recognised
	Rejected       []*RejectedError // recognised events whose payload failed its schema
	Published      int              // messages the bus acknowledged
}

// Receive handles one request to /hooks/{channelId}: it resolves the id, extracts the
// request's events with the channel's definitions and publishes them, returning once the bus
// acknowledged every message. Errors: ErrUnknownChannel (no webhook or cloudevents channel
// with this id), ErrMalformed (a body that is not JSON, or not CloudEvents),
// ErrConnectorMissing, router.ErrInvalidSubjectToken (an event type unfit for a subject),
// and otherwise the store's or the bus's failure to answer. Unmatched and rejected events
// are no error: they are in the Receipt, logged and counted.
func (m *Manager) Receive(ctx context.Context, channelID string, header http.Header, body []byte, admit func(store.ChannelRef) error) (Receipt, error) {
	ref, err := m.cfg.Store.ResolveChannelID(ctx, channelID)
	if errors.Is(err, store.ErrNotFound) {
		return Receipt{}, ErrUnknownChannel
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("receiving: %w", err)
	}
	t, err := m.resolve(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return Receipt{}, ErrUnknownChannel
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("receiving: %w", err)
	}
	ref = t.ref
	rc := Receipt{IntegrationKey: ref.IntegrationKey, ChannelKey: ref.ChannelKey, Kind: t.channel.Kind}
	// Admission (the caller's per-URL rate limit) runs only once the id is known to be a
	// channel's, so that unknown ids, however many, cost the caller nothing to remember.
	if admit != nil {
		if err := admit(ref); err != nil {
			return rc, err
		}
	}
	log := m.log.With("integration", ref.IntegrationKey, "connection", ref.ConnectionID, "channel", ref.ChannelKey, "kind", rc.Kind)

	collect := func(ev Event, err error) error {
		var re *RejectedError
		switch {
		case err == nil:
			rc.Events = append(rc.Events, ev)
		case errors.Is(err, ErrNoMatch):
			rc.Unmatched++
			m.metrics.unmatched.WithLabelValues(ref.IntegrationKey, ref.ChannelKey, rc.Kind).Inc()
		case errors.As(err, &re):
			rc.Rejected = append(rc.Rejected, re)
			m.logRejected(log, rc.Kind, ref, re)
		default:
			return err
		}
		return nil
	}
	switch t.channel.Kind {
	case connector.ChannelWebhook:
		msg, err := decodeJSON(body)
		if err != nil {
			return rc, err
		}
		if err := collect(Extract(t.channel, msg, body)); err != nil {
			return rc, err
		}
	case connector.ChannelCloudEvents:
		ces, err := readCloudEvents(header, body)
		if err != nil {
			return rc, err
		}
		for i := range ces {
			if err := collect(extractCloudEvent(t.channel, &ces[i])); err != nil {
				return rc, err
			}
		}
	default:
		return Receipt{}, ErrUnknownChannel // sse and polling channels are not pushed to
	}

	rc.Published, err = m.publish(ctx, ref, rc.Kind, rc.Events)
	if err != nil {
		return rc, err
	}
	return rc, nil
}
