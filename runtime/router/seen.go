package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// Seen remembers the events already published, for longer than the bus's duplicate
// window (store.SeenStore satisfies it). See the package doc, "De-duplication".
type Seen interface {
	// Seen reports, for each key, whether it was marked and has not expired.
	Seen(ctx context.Context, integrationKey string, keys []string) ([]bool, error)
	// MarkSeen marks keys as seen for ttl.
	MarkSeen(ctx context.Context, integrationKey string, keys []string, ttl time.Duration) error
}

// Defaults of Config's de-duplication fields.
const (
	DefaultSeenTTL      = 7 * 24 * time.Hour
	DefaultStoreTimeout = time.Second
)

// seenKey is an event's key in the Seen store: what stays the same when the sender retries
// (the event's id, else the request's delivery id and the event's position) under the
// webhook key, so that one integration's webhooks do not share ids. Empty when the request
// gives neither: such an event is not remembered.
func seenKey(webhookKey, deliveryID string, index int, eventID string) string {
	var kb [256]byte
	k := append(kb[:0], webhookKey...)
	switch {
	case eventID != "":
		k = append(k, "\x00event\x00"...)
		k = append(k, eventID...)
	case deliveryID != "":
		k = append(k, "\x00delivery\x00"...)
		k = append(k, deliveryID...)
		k = append(k, 0)
		k = strconv.AppendInt(k, int64(index), 10)
	default:
		return ""
	}
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:20]) // 160 bits: collisions are not a concern
}

// unseen looks up the request's events in the Seen store. It returns each event's key (""
// for an event that cannot be recognised) and whether it was already seen; both nil when
// the router has no Seen store.
func (r *Router) unseen(ctx context.Context, in Input) (keys []string, seen []bool, err error) {
	if r.seen == nil {
		return nil, nil, nil
	}
	keys = make([]string, len(in.Events))
	ask := make([]string, 0, len(in.Events))
	for i, ev := range in.Events {
		if keys[i] = seenKey(in.WebhookKey, in.DeliveryID, i, ev.ID); keys[i] != "" {
			ask = append(ask, keys[i])
		}
	}
	seen = make([]bool, len(in.Events))
	if len(ask) == 0 {
		return keys, seen, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.storeTimeout)
	defer cancel()
	answers, err := r.seen.Seen(ctx, in.IntegrationKey, ask)
	if err != nil {
		return nil, nil, err
	}
	j := 0
	for i := range keys {
		if keys[i] != "" {
			seen[i] = answers[j]
			j++
		}
	}
	return keys, seen, nil
}

// markSeen marks the keys of the events just published. The events are on the bus whatever
// happens here, so a failure is logged, not returned: it costs at most a duplicate if the
// sender sends the event again after the bus's duplicate window. It outlives ctx's
// cancellation: the sender hanging up does not undo the publish.
func (r *Router) markSeen(ctx context.Context, integrationKey string, keys []string) {
	if len(keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.storeTimeout)
	defer cancel()
	if err := r.seen.MarkSeen(ctx, integrationKey, keys, r.seenTTL); err != nil {
		r.log.WarnContext(ctx, "marking published events seen", "integration", integrationKey,
			"events", len(keys), "error", err)
	}
}
