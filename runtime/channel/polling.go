package channel

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/runtime/store"
)

// pollCursor is a polling channel's cursor, stored as JSON. It is never empty once the
// first poll established the baseline: an empty cursor means "no baseline yet".
//
//   - timestamp discriminator: Mark is the greatest value seen (as it appeared: an RFC 3339
//     time or a number) and At the keys (hashes) of the items carrying exactly that value,
//     so that an item arriving later with the same timestamp is new, not skipped.
//   - id discriminator: Seen lists ids, oldest first, at most max(maxSeen, 2 × the items of
//     the last response). Every id of a response moves to the end, so an id still listed by
//     the API never falls out; one that left the listing for longer than the window and
//     comes back is published again.
type pollCursor struct {
	Mark string   `json:"mark,omitempty"`
	At   []string `json:"at,omitempty"`
	Seen []string `json:"seen,omitempty"`
}

const maxSeen = 1000

// runPolling polls the channel's path every interval while ctx lasts. A failing poll (the
// endpoint, the store or the bus) is retried with exponential, jittered backoff from the
// interval up to MaxBackoff, logged and counted; a success returns to the interval. It
// returns when ctx ends or the connection is gone.
func (m *Manager) runPolling(ctx context.Context, ref store.ChannelRef, log *slog.Logger) {
	var failures int
	b := m.newBackoff(0)
	for ctx.Err() == nil {
		t, err := m.resolve(ctx, ref)
		var wait time.Duration
		if err == nil {
			wait = t.channel.Polling.Interval
			if failures == 0 {
				b = m.newBackoff(wait)
			}
			err = m.pollOnce(ctx, t, log)
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, store.ErrNotFound):
			log.Info("channel worker giving up: its connection is gone")
			return
		case err != nil:
			failures++
			wait = b.NextBackOff()
			m.metrics.workerErrors.WithLabelValues(ref.IntegrationKey, ref.ChannelKey, connector.ChannelPolling).Inc()
			log.Warn("poll failed", "error", err, "failures", failures, "retry_in", wait.Round(time.Millisecond))
		default:
			if failures > 0 {
				log.Info("poll succeeded again", "after_failures", failures)
			}
			failures = 0
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// polledItem is one item of a response with what tells it apart.
type polledItem struct {
	value any
	disc  string // the discriminator's value, as found
	key   string // timestamp: a hash of the item; id: the id
	order discriminant
}

// pollOnce fetches the items, publishes the new ones and then stores the cursor. The first
// poll of a channel without a cursor publishes nothing: it records what exists as the
// baseline, so that a new subscription starts from now instead of replaying history.
func (m *Manager) pollOnce(ctx context.Context, t target, log *slog.Logger) error {
	ref, p := t.ref, t.channel.Polling
	raw, err := m.cfg.Store.ChannelCursor(ctx, ref.ConnectionID, ref.ChannelKey)
	if err != nil {
		return fmt.Errorf("reading the cursor: %w", err)
	}
	values, err := m.fetch(ctx, t)
	if err != nil {
		return err
	}
	items := make([]polledItem, 0, len(values))
	for _, v := range values {
		it, ok := discriminate(p.Discriminator, v)
		if !ok {
			m.metrics.unmatched.WithLabelValues(ref.IntegrationKey, ref.ChannelKey, connector.ChannelPolling).Inc()
			log.Debug("polled item without a usable discriminator: skipped")
			continue
		}
		items = append(items, it)
	}

	var cur pollCursor
	baseline := raw == ""
	if !baseline {
		if err := json.Unmarshal([]byte(raw), &cur); err != nil {
			log.Warn("unreadable polling cursor: establishing a new baseline", "error", err)
			baseline = true
		}
	}
	fresh, next := advance(p.Discriminator.Kind, cur, items)
	if baseline {
		fresh = nil
		log.Info("polling baseline established", "items", len(items))
	}

	var events []Event
	for _, it := range fresh {
		ev, err := Extract(t.channel, it.value, nil)
		var re *RejectedError
		switch {
		case err == nil:
			ev.key = "poll\x00" + it.key + "\x00" + it.disc
			events = append(events, ev)
		case errors.As(err, &re):
			m.logRejected(log, connector.ChannelPolling, ref, re)
		case errors.Is(err, ErrNoMatch):
			m.metrics.unmatched.WithLabelValues(ref.IntegrationKey, ref.ChannelKey, connector.ChannelPolling).Inc()
		default:
			return err
		}
	}
	if _, err := m.publish(ctx, ref, connector.ChannelPolling, events); err != nil {
		return err // the cursor stays: the next poll tries these items again
	}
	b, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encoding the cursor: %w", err)
	}
	if string(b) == raw {
		return nil
	}
	if err := m.saveCursor(ctx, ref, string(b)); err != nil {
		return fmt.Errorf("storing the cursor: %w", err)
	}
	return nil
}

// fetch GETs the channel's path with the connection's credentials and returns the items
// that itemsPath finds in the JSON response.
func (m *Manager) fetch(ctx context.Context, t target) ([]any, error) {
	req, err := t.api.NewRequest(ctx, http.MethodGet, t.channel.Polling.Path)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := t.api.HTTPClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("polling: %w", withoutURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("polling: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, m.cfg.MaxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("polling: reading the response: %w", withoutURL(err))
	}
	if int64(len(body)) > m.cfg.MaxResponse {
		return nil, fmt.Errorf("polling: response larger than %d bytes", m.cfg.MaxResponse)
	}
	doc, err := decodeJSON(body)
	if err != nil {
		return nil, fmt.Errorf("polling: %w", err)
	}
	found := t.channel.Polling.ItemsPath.Get(doc)
	if len(found) == 1 {
		if list, ok := found[0].([]any); ok {
			return list, nil
		}
	}
	return found, nil
}

// discriminant orders timestamp discriminators: times by time, numbers by value.
type discriminant struct {
	isTime bool
	t      time.Time
	n      float64
}

func (a discriminant) compare(b discriminant) int {
	switch {
	case a.isTime && b.isTime:
		return a.t.Compare(b.t)
	case !a.isTime && !b.isTime:
		return cmp.Compare(a.n, b.n)
	case a.isTime:
		return 1 // a time is newer than a number: the API changed formats, keep moving
	}
	return -1
}

// parseDiscriminant reads an RFC 3339 time or a number (in a string or not).
func parseDiscriminant(s string) (discriminant, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return discriminant{isTime: true, t: t}, true
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return discriminant{n: n}, true
	}
	return discriminant{}, false
}

// discriminate reads an item's discriminator; false when it has none usable.
func discriminate(d connector.Discriminator, v any) (polledItem, bool) {
	it := polledItem{value: v, disc: scalar(d.Path.First(v))}
	if it.disc == "" {
		return it, false
	}
	if d.Kind == connector.DiscriminatorID {
		it.key = it.disc
		return it, true
	}
	var ok bool
	if it.order, ok = parseDiscriminant(it.disc); !ok {
		return it, false
	}
	b, err := encodeJSON(v)
	if err != nil {
		return it, false
	}
	it.key = hashOf(b)
	return it, true
}

// advance returns the items of a response that cur has not seen, in publishing order
// (timestamps ascending; ids in response order, or ascending when all are integers), and
// the cursor after them.
func advance(kind string, cur pollCursor, items []polledItem) ([]polledItem, pollCursor) {
	if kind == connector.DiscriminatorID {
		return advanceIDs(cur, items)
	}
	mark, hasMark := parseDiscriminant(cur.Mark)
	at := map[string]bool{}
	for _, k := range cur.At {
		at[k] = true
	}
	var fresh []polledItem
	for _, it := range items {
		c := 1
		if hasMark {
			c = it.order.compare(mark)
		}
		if c > 0 || (c == 0 && !at[it.key]) {
			fresh = append(fresh, it)
		}
	}
	slices.SortStableFunc(fresh, func(a, b polledItem) int { return a.order.compare(b.order) })

	next := pollCursor{Mark: cur.Mark, At: slices.Clone(cur.At)}
	for _, it := range fresh {
		c := 1
		if m, ok := parseDiscriminant(next.Mark); ok {
			c = it.order.compare(m)
		}
		switch {
		case c > 0:
			next.Mark, next.At = it.disc, []string{it.key}
		case c == 0 && !slices.Contains(next.At, it.key):
			next.At = append(next.At, it.key)
		}
	}
	if next.Mark == "" {
		next.Mark = "-" // a baseline with no items: not empty, and parses as no mark
	}
	return fresh, next
}

func advanceIDs(cur pollCursor, items []polledItem) ([]polledItem, pollCursor) {
	seen := make(map[string]bool, len(cur.Seen))
	for _, id := range cur.Seen {
		seen[id] = true
	}
	var fresh []polledItem
	listed := map[string]bool{}
	for _, it := range items {
		if !seen[it.key] && !listed[it.key] {
			fresh = append(fresh, it)
		}
		listed[it.key] = true
	}
	if ints, ok := integers(fresh); ok {
		slices.SortStableFunc(fresh, func(a, b polledItem) int { return cmp.Compare(ints[a.key], ints[b.key]) })
	}

	// The ids of this response move to the end, in response order.
	next := pollCursor{Seen: make([]string, 0, len(cur.Seen)+len(items))}
	for _, id := range cur.Seen {
		if !listed[id] {
			next.Seen = append(next.Seen, id)
		}
	}
	added := map[string]bool{}
	for _, it := range items {
		if !added[it.key] {
			added[it.key] = true
			next.Seen = append(next.Seen, it.key)
		}
	}
	if limit := max(maxSeen, 2*len(items)); len(next.Seen) > limit {
		next.Seen = next.Seen[len(next.Seen)-limit:]
	}
	if len(next.Seen) == 0 {
		next.Seen = []string{} // a baseline with no items: still not an empty cursor
	}
	return fresh, next
}

func integers(items []polledItem) (map[string]int64, bool) {
	out := make(map[string]int64, len(items))
	for _, it := range items {
		n, err := strconv.ParseInt(it.key, 10, 64)
		if err != nil {
			return nil, false
		}
		out[it.key] = n
	}
	return out, true
}
