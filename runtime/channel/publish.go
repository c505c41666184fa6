package channel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/switchboard-run/switchboard/runtime/router"
	"github.com/switchboard-run/switchboard/runtime/store"
)

// publish sends one envelope per (event, channel subscription of ref whose event type is the
// event's) and returns once the bus acknowledged them all; the count is the number of
// messages. Nothing is published when a subject cannot be built.
func (m *Manager) publish(ctx context.Context, ref store.ChannelRef, kind string, events []Event) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	subs, err := m.cfg.Store.ListChannelSubscriptions(ctx, ref.ConnectionID, ref.ChannelKey, "")
	if err != nil {
		return 0, fmt.Errorf("listing the subscriptions of channel %q of connection %q: %w", ref.ChannelKey, ref.ConnectionID, err)
	}
	byType := make(map[string][]store.Subscription, len(subs))
	for _, s := range subs {
		byType[s.EventType] = append(byType[s.EventType], s)
	}
	now := m.cfg.Now()
	var msgs []router.Message
	for i := range events {
		ev := &events[i]
		for _, sub := range byType[ev.Type] {
			subject, err := router.ChannelEventSubject(sub.CustomerID, ref.IntegrationKey, ref.ChannelKey, ev.Type)
			if err != nil {
				return 0, fmt.Errorf("publishing event type %q to subscription %q: %w", ev.Type, sub.ID, err)
			}
			env := router.Envelope{
				ID:             router.NewEventID(now),
				OrganizationID: sub.CustomerID,
				Source:         router.SourceApps,
				Resource:       router.ResourceApp,
				ResourceID:     ref.IntegrationKey,
				EventName:      router.EventNameReceived,
				Timestamp:      now,
				Payload:        ev.Payload,
				Metadata: &router.Metadata{
					ConnectionID:   ref.ConnectionID,
					SubscriptionID: sub.ID,
					EventKey:       sub.EventKey,
					Channel:        &ref.ChannelKey,
					EventType:      &ev.Type,
					EventID:        ev.ID,
				},
			}
			msgs = append(msgs, router.Message{
				Subject: subject,
				Data:    env.AppendJSON(nil),
				ID:      messageID(ref, ev.key, sub.ID),
			})
		}
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	if err := m.cfg.Bus.PublishAll(ctx, msgs); err != nil {
		m.metrics.publishFailed.WithLabelValues(ref.IntegrationKey, ref.ChannelKey, kind).Inc()
		return 0, fmt.Errorf("publishing %d channel events: %w", len(msgs), err)
	}
	m.metrics.published.WithLabelValues(ref.IntegrationKey, ref.ChannelKey, kind).Add(float64(len(msgs)))
	return len(msgs), nil
}

// messageID derives a message's de-duplication id from what stays the same when the same
// event arrives again: the connection, the channel, the event's key and the subscription.
func messageID(ref store.ChannelRef, eventKey, subscriptionID string) string {
	h := sha256.New()
	for _, part := range []string{"channel", ref.ConnectionID, ref.ChannelKey, eventKey, subscriptionID} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
