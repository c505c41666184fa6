package channel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/runtime/store"
)

var (
	errLineTooLong   = errors.New("sse line longer than the limit")
	errEventTooLarge = errors.New("sse event larger than the limit")
	errSilent        = errors.New("sse stream silent for longer than the read timeout")
)

// sseEvent is one dispatched SSE event (WHATWG HTML, "event stream interpretation").
type sseEvent struct {
	LastEventID string // the stream's last event id when this event was dispatched
	Type        string
	Data        string // without the final newline; "" for an event that only set an id
}

// sseParser reads an event stream with bounded memory: a line longer than maxLine or an
// event whose data exceeds maxEvent is an error (the caller drops the connection). An event
// is dispatched only at the blank line that ends it, so one cut off by a dropped connection
// is never seen. It does not handle "retry" itself: it reports it through onRetry.
type sseParser struct {
	r                 *bufio.Reader
	maxLine, maxEvent int
	onRetry           func(time.Duration)

	line          []byte
	skipLF        bool // the previous line ended with CR: a LF right after it belongs to it
	started       bool
	lastEventID   string
	reported      string // the last event id last handed to the caller
	idBuf, typBuf string
	data          strings.Builder
}

func newSSEParser(r io.Reader, lastEventID string, maxLine, maxEvent int, onRetry func(time.Duration)) *sseParser {
	return &sseParser{r: bufio.NewReaderSize(r, 32<<10), maxLine: maxLine, maxEvent: maxEvent, onRetry: onRetry,
		lastEventID: lastEventID, reported: lastEventID, idBuf: lastEventID}
}

// next returns the next dispatched event; io.EOF at a clean end of stream (a partial event
// is dropped).
func (p *sseParser) next() (sseEvent, error) {
	for {
		line, err := p.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if len(line) == 0 {
			p.lastEventID = p.idBuf
			if p.data.Len() == 0 {
				// Nothing to dispatch; an event that only set an id still moves the last
				// event id, which the caller keeps as its cursor.
				p.typBuf = ""
				if p.lastEventID == p.reported {
					continue
				}
				p.reported = p.lastEventID
				return sseEvent{LastEventID: p.lastEventID}, nil
			}
			ev := sseEvent{LastEventID: p.lastEventID, Type: p.typBuf, Data: strings.TrimSuffix(p.data.String(), "\n")}
			p.data.Reset()
			p.typBuf = ""
			p.reported = p.lastEventID
			return ev, nil
		}
		if line[0] == ':' {
			continue // a comment: heartbeats
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "event":
			p.typBuf = string(value)
		case "data":
			if p.data.Len()+len(value)+1 > p.maxEvent {
				return sseEvent{}, errEventTooLarge
			}
			p.data.Write(value)
			p.data.WriteByte('\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.idBuf = string(value)
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 31); err == nil && p.onRetry != nil {
				p.onRetry(time.Duration(ms) * time.Millisecond)
			}
		}
	}
}

// readLine returns the next line without its end (CRLF, LF or CR), valid until the next
// call. A stream's leading byte order mark is dropped.
func (p *sseParser) readLine() ([]byte, error) {
	p.line = p.line[:0]
	for {
		b, err := p.r.ReadByte()
		if err != nil {
			return nil, err // a line cut off by the end of the stream is not a line
		}
		if p.skipLF {
			p.skipLF = false
			if b == '\n' {
				continue
			}
		}
		switch b {
		case '\n':
			return p.finishLine(), nil
		case '\r':
			p.skipLF = true
			return p.finishLine(), nil
		}
		if len(p.line) >= p.maxLine {
			return nil, errLineTooLong
		}
		p.line = append(p.line, b)
	}
}

func (p *sseParser) finishLine() []byte {
	if !p.started {
		p.started = true
		p.line = bytes.TrimPrefix(p.line, []byte("\uFEFF"))
	}
	return p.line
}

// idleReader cancels its stream when no byte arrived for timeout: a silent server (no
// events, no heartbeats) is taken for a dead connection.
type idleReader struct {
	r      io.Reader
	timer  *time.Timer
	d      time.Duration
	silent atomic.Bool
}

func newIdleReader(r io.Reader, d time.Duration, cancel context.CancelFunc) *idleReader {
	ir := &idleReader{r: r, d: d}
	ir.timer = time.AfterFunc(d, func() {
		ir.silent.Store(true)
		cancel()
	})
	return ir
}

func (ir *idleReader) Read(b []byte) (int, error) {
	n, err := ir.r.Read(b)
	if n > 0 {
		ir.timer.Reset(ir.d)
	}
	if err != nil && ir.silent.Load() {
		err = errSilent
	}
	return n, err
}

func (ir *idleReader) stop() { ir.timer.Stop() }

// runSSE holds the channel's stream while ctx lasts: connect with the credentials and the
// last event id, publish what arrives, reconnect after a failure with backoff (the server's
// retry when it gave one, else exponential with jitter, reset after a stream that stayed up
// for HealthyAfter). It returns when ctx ends or the connection is gone.
func (m *Manager) runSSE(ctx context.Context, ref store.ChannelRef, log *slog.Logger) {
	b := m.newBackoff(0)
	var serverRetry time.Duration
	for ctx.Err() == nil {
		start := time.Now()
		reason, err := m.streamOnce(ctx, ref, log, &serverRetry)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, store.ErrNotFound) {
			log.Info("channel worker giving up: its connection is gone")
			return
		}
		if time.Since(start) >= m.cfg.HealthyAfter {
			b.Reset()
		}
		delay := max(b.NextBackOff(), serverRetry)
		m.metrics.reconnects.WithLabelValues(ref.IntegrationKey, ref.ChannelKey, reason).Inc()
		if reason != "eof" {
			m.metrics.workerErrors.WithLabelValues(ref.IntegrationKey, ref.ChannelKey, connector.ChannelSSE).Inc()
		}
		log.Warn("sse stream ended, reconnecting", "reason", reason, "error", err, "retry_in", delay.Round(time.Millisecond))
		if !sleep(ctx, delay) {
			return
		}
	}
}

// streamOnce connects once and reads the stream until it ends; reason names why, for the
// metrics and the log.
func (m *Manager) streamOnce(ctx context.Context, ref store.ChannelRef, log *slog.Logger, serverRetry *time.Duration) (reason string, err error) {
	t, err := m.resolve(ctx, ref)
	if err != nil {
		return "error", err
	}
	ref = t.ref
	lastID, err := m.cfg.Store.ChannelCursor(ctx, ref.ConnectionID, ref.ChannelKey)
	if err != nil {
		return "error", fmt.Errorf("reading the cursor: %w", err)
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := t.api.NewRequest(sctx, http.MethodGet, t.channel.SSE.Path)
	if err != nil {
		return "error", err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := m.streamClient(t).Do(req)
	if err != nil {
		return "error", fmt.Errorf("connecting: %w", withoutURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "error", fmt.Errorf("connecting: status %d", resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return "error", fmt.Errorf("connecting: content type %q is not text/event-stream", resp.Header.Get("Content-Type"))
	}
	log.Debug("sse stream connected", "resuming", lastID != "")

	body := newIdleReader(resp.Body, m.cfg.ReadTimeout, cancel)
	defer body.stop()
	p := newSSEParser(body, lastID, m.cfg.MaxLine, m.cfg.MaxEvent, func(d time.Duration) { *serverRetry = d })
	for {
		ev, err := p.next()
		switch {
		case errors.Is(err, io.EOF):
			return "eof", nil
		case errors.Is(err, errLineTooLong):
			return "line_too_long", err
		case errors.Is(err, errEventTooLarge):
			return "event_too_large", err
		case errors.Is(err, errSilent):
			return "silent", err
		case err != nil:
			return "error", err
		}
		if err := m.handleSSEEvent(ctx, t, log, ev); err != nil {
			return "error", err
		}
	}
}

// handleSSEEvent extracts and publishes one event, retrying the publish while the bus or
// store does not answer (holding the stream meanwhile), then stores the event's id as the
// cursor. It fails only when ctx ends.
func (m *Manager) handleSSEEvent(ctx context.Context, t target, log *slog.Logger, ev sseEvent) error {
	ref := t.ref
	var events []Event
	if ev.Data != "" {
		msg, err := decodeJSON([]byte(ev.Data))
		if err == nil {
			var e Event
			e, err = Extract(t.channel, msg, []byte(ev.Data))
			if err == nil && e.ID == "" && ev.LastEventID != "" {
				e.key = "sse\x00" + ev.LastEventID
			}
			if err == nil {
				events = append(events, e)
			}
		}
		var re *RejectedError
		switch {
		case errors.As(err, &re):
			m.logRejected(log, connector.ChannelSSE, ref, re)
		case err != nil:
			m.metrics.unmatched.WithLabelValues(ref.IntegrationKey, ref.ChannelKey, connector.ChannelSSE).Inc()
			log.Debug("sse message not recognised", "error", err)
		}
	}
	b := m.newBackoff(0)
	for {
		_, err := m.publish(ctx, ref, connector.ChannelSSE, events)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		delay := b.NextBackOff()
		log.Warn("publishing an sse event failed, retrying", "error", err, "retry_in", delay.Round(time.Millisecond))
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
	}
	if ev.LastEventID == "" {
		return nil
	}
	if err := m.saveCursor(ctx, ref, ev.LastEventID); err != nil {
		// The event is on the bus; a lost cursor means the server may resend it, which the
		// bus de-duplicates within its window.
		log.Warn("storing the sse cursor", "error", err)
	}
	return nil
}

// streamClient is the worker's client for a long-lived stream: no overall timeout (the
// idle timeout and ctx bound it) and redirects held to the API's host, since the
// credentials travel with the request.
func (m *Manager) streamClient(t target) *http.Client {
	c := t.api.HTTPClient()
	c.Timeout = 0
	return c
}
