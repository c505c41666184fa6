package delivery

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-run/switchboard/runtime/egress"
	"github.com/switchboard-run/switchboard/runtime/router"
	"github.com/switchboard-run/switchboard/runtime/store"
)

// result is the outcome of one request to an endpoint.
type result struct {
	status     int // 0: no response
	duration   time.Duration
	err        error // why it failed, when it did
	retryAfter time.Duration
	body       string // the start of the response body
}

func (r result) ok() bool { return r.err == nil && r.status >= 200 && r.status < 300 }

func (r result) attempt(endpointID string, t task, n int, at time.Time) store.Attempt {
	a := store.Attempt{
		EndpointID: endpointID,
		MessageID:  t.messageID,
		EventID:    t.eventID,
		Attempt:    n,
		Status:     r.status,
		DurationMs: r.duration.Milliseconds(),
		Response:   truncate(r.body, storedResponseLimit),
		At:         at.UTC(),
	}
	if r.err != nil {
		a.Error = r.err.Error()
	}
	return a
}

// send POSTs body to ep, signed, and reads at most limit bytes of the response.
func (s *Service) send(ctx context.Context, ep store.Endpoint, msgID string, body []byte, limit int) result {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	now := s.cfg.Now()
	ts := now.Unix()
	sig, err := Sign(ep.SigningSecrets(now), msgID, ts, body)
	if err != nil {
		return result{err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return result{err: fmt.Errorf("building the request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("webhook-id", msgID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)

	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		r := result{duration: time.Since(start), err: err}
		if ctx.Err() == context.DeadlineExceeded {
			r.err = fmt.Errorf("no response within %s", s.cfg.Timeout)
		}
		return r
	}
	defer resp.Body.Close()
	// The body counts against the timeout too: an endpoint that sends headers and then
	// trickles is as stuck as one that never answers.
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, int64(limit)))
	r := result{status: resp.StatusCode, duration: time.Since(start), body: string(data)}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if readErr != nil && ctx.Err() != nil {
			r.err = fmt.Errorf("reading the response: no complete response within %s", s.cfg.Timeout)
		}
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		r.err = fmt.Errorf("status %d: redirects are not followed (to %q)", resp.StatusCode, resp.Header.Get("Location"))
	default:
		r.err = fmt.Errorf("status %d", resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
		}
	}
	return r
}

// parseRetryAfter reads a Retry-After value, seconds or an HTTP date; 0 when absent or
// unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(365*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// newID returns prefix and 130 random bits in lower-case base32.
func newID(prefix string) string {
	b := make([]byte, 17)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:26]
}

// Test sends ep a signed test event now, whether or not it is enabled: an envelope with
// eventName "test" and payload {"test":true}. The attempt is recorded (marked test) and
// returned with up to 4 KiB of the response body; the error is for a failure to record it.
func (s *Service) Test(ctx context.Context, ep store.Endpoint) (store.Attempt, error) {
	now := s.cfg.Now().UTC()
	env := router.Envelope{
		ID:         router.NewEventID(now),
		Source:     router.SourceApps,
		Resource:   router.ResourceApp,
		ResourceID: ep.IntegrationKey,
		EventName:  "test",
		Timestamp:  now,
		Payload:    json.RawMessage(`{"test":true}`),
	}
	body := env.AppendJSON(nil)
	t := task{integrationKey: ep.IntegrationKey, endpointID: ep.ID, messageID: MessageID(env.ID, ep.ID), eventID: env.ID}
	res := s.send(ctx, ep, t.messageID, body, testResponseLimit)
	a := res.attempt(ep.ID, t, 1, now)
	a.Test = true
	stored := a
	stored.Response = truncate(a.Response, storedResponseLimit)
	a.Response = res.body
	if err := s.store.AddAttempt(ctx, ep.IntegrationKey, stored); err != nil {
		return a, fmt.Errorf("recording a test attempt: %w", err)
	}
	return a, nil
}

// Replay enqueues dead letters of ep again, each for a full retry schedule, and deletes
// them once enqueued. It returns how many were enqueued before any failure. A replayed
// message keeps its webhook-id, so a receiver that did get it after all can tell.
func (s *Service) Replay(ctx context.Context, ep store.Endpoint, dls []store.DeadLetter) (int, error) {
	n := 0
	for _, d := range dls {
		t := task{
			integrationKey: ep.IntegrationKey,
			endpointID:     ep.ID,
			messageID:      d.MessageID,
			eventID:        d.EventID,
			subject:        d.Subject,
			body:           d.Envelope,
		}
		// A dedup id of its own: the original's may still be in the duplicate window.
		if err := s.enqueue(ctx, t, d.MessageID+"-replay-"+d.ID); err != nil {
			return n, fmt.Errorf("replaying dead letter %q: %w", d.ID, err)
		}
		if err := s.store.DeleteDeadLetter(ctx, ep.IntegrationKey, ep.ID, d.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return n, fmt.Errorf("deleting replayed dead letter %q: %w", d.ID, err)
		}
		n++
		s.metrics.replays.WithLabelValues(ep.IntegrationKey).Inc()
	}
	return n, nil
}

// CheckURL is CheckURL with the service's AllowPrivateNetworks.
func (s *Service) CheckURL(ctx context.Context, raw string) error {
	return CheckURL(ctx, raw, s.cfg.AllowPrivateNetworks)
}

// CheckURL reports what makes raw unfit as an endpoint URL: not absolute http or https,
// no host, or, unless allowPrivate, a host that is or resolves to a loopback, private or
// otherwise internal address. A name that does not resolve now is accepted: the guard at
// dial time stands either way, and it is what protects (a name may resolve differently
// later).
func CheckURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an absolute http or https URL")
	case u.Hostname() == "":
		return errors.New("has no host")
	case u.Fragment != "":
		return errors.New("must not have a fragment")
	}
	if allowPrivate {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !egress.IsPublic(ip) {
			return fmt.Errorf("%s is not a public address (private networks are allowed only with --allow-private-networks)", ip)
		}
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, ip := range ips {
		if !egress.IsPublic(ip) {
			return fmt.Errorf("%s resolves to %s, which is not a public address (private networks are allowed only with --allow-private-networks)", host, ip)
		}
	}
	return nil
}
