package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// The live stream, GET /v1/stream?subject=<pattern>: a WebSocket that carries every message
// published on the subjects matching the pattern, one JSON envelope per text message. It is
// a core NATS subscription: what is published while the socket is open, no history, no
// acknowledgements. The pattern must start with "events."; * and > work as in NATS.
//
// Authentication is the /v1 bearer token in the Authorization header, as everywhere else.
// Browsers cannot set that header on a WebSocket; a browser client goes through a proxy of
// its own that adds it (a token in the query string would end up in access logs).
//
// Each socket has a bounded send buffer. A client that does not keep up (the buffer fills,
// or a write does not finish within the write timeout) is disconnected with close status
// 1008 (policy violation) and reason "slow consumer": it never slows the bus or other
// clients. The subscription ends with the socket.

// Subscriber subscribes to core NATS subjects; the server hands in the bus's connection.
type Subscriber interface {
	// Subscribe calls deliver, on a goroutine of the subscription's, with the body of every
	// message on the subjects matching pattern, until unsubscribe is called. deliver must
	// not block.
	Subscribe(pattern string, deliver func(data []byte)) (unsubscribe func(), err error)
}

// StreamConfig is what the stream route is handed. Subscriber is required.
type StreamConfig struct {
	Subscriber Subscriber
	// Buffer is how many messages may wait for one slow client; default 256.
	Buffer int
	// WriteTimeout bounds sending one message; default 10s.
	WriteTimeout time.Duration
}

const (
	defaultStreamBuffer       = 256
	defaultStreamWriteTimeout = 10 * time.Second
	streamSubjectPrefix       = "events."
	slowConsumerReason        = "slow consumer"
)

var errSlowConsumer = errors.New("slow consumer: send buffer full")

// AddStreamRoute adds GET /v1/stream and registers its metrics.
func (a *API) AddStreamRoute(cfg StreamConfig) {
	if cfg.Buffer <= 0 {
		cfg.Buffer = defaultStreamBuffer
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultStreamWriteTimeout
	}
	s := &streamRoute{
		cfg: cfg,
		clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_stream_clients",
			Help: "WebSocket clients of /v1/stream connected now.",
		}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_stream_disconnects_total",
			Help: "WebSocket clients of /v1/stream gone, by reason: closed (by the client or at shutdown), slow, write_failed.",
		}, []string{"reason"}),
	}
	a.metrics.Registry.MustRegister(s.clients, s.disconnects)
	a.v1.GET("/stream", s.serve)
}

type streamRoute struct {
	cfg         StreamConfig
	clients     prometheus.Gauge
	disconnects *prometheus.CounterVec
}

// checkStreamSubject reports what makes p unfit as a stream pattern.
func checkStreamSubject(p string) error {
	if p == "" {
		return errors.New("required")
	}
	if !strings.HasPrefix(p, streamSubjectPrefix) {
		return errors.New(`must start with "events."`)
	}
	tokens := strings.Split(p, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return errors.New("has an empty token")
		case t == ">" && i != len(tokens)-1:
			return errors.New(`">" must be the last token`)
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return fmt.Errorf("token %q mixes a wildcard with other characters", t)
		case strings.IndexFunc(t, unicode.IsSpace) >= 0:
			return errors.New("holds white space")
		}
	}
	return nil
}

func (s *streamRoute) serve(c echo.Context) error {
	pattern := c.QueryParam("subject")
	if err := checkStreamSubject(pattern); err != nil {
		return invalid("subject", "%v", err)
	}
	r := c.Request()
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return &Error{Status: http.StatusUpgradeRequired, Code: codeInvalidRequest, Message: "want a WebSocket upgrade"}
	}

	// Subscribe before upgrading, so that a bus failure is an ordinary 503.
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	buf := make(chan []byte, s.cfg.Buffer)
	unsubscribe, err := s.cfg.Subscriber.Subscribe(pattern, func(data []byte) {
		select {
		case buf <- data:
		default:
			cancel(errSlowConsumer) // also interrupts a write in progress
		}
	})
	if err != nil {
		return unavailable("event bus", err)
	}
	var unsubOnce sync.Once
	unsub := func() { unsubOnce.Do(unsubscribe) }
	defer unsub()

	conn, err := websocket.Accept(c.Response(), r, nil)
	if err != nil {
		return nil // Accept has answered
	}
	defer conn.CloseNow()
	s.clients.Inc()
	defer s.clients.Dec()
	// Nothing is expected from the client; reading handles its pings and close. The
	// returned ctx keeps the cause of its parent's cancellation.
	ctx = conn.CloseRead(ctx)

	reason := "closed"
	defer func() { s.disconnects.WithLabelValues(reason).Inc() }()
	for {
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errSlowConsumer) {
				reason = "slow"
				unsub()
				conn.Close(websocket.StatusPolicyViolation, slowConsumerReason)
			}
			return nil
		case data := <-buf:
			wctx, wcancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
			err := conn.Write(wctx, websocket.MessageText, data)
			timedOut := errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
			wcancel()
			switch {
			case err == nil:
			case timedOut:
				reason = "slow"
				unsub()
				conn.Close(websocket.StatusPolicyViolation, slowConsumerReason)
				return nil
			case errors.Is(context.Cause(ctx), errSlowConsumer):
				reason = "slow"
				return nil
			default:
				if ctx.Err() == nil {
					reason = "write_failed"
				}
				return nil
			}
		}
	}
}
