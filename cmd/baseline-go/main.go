// Command baseline-go is the plain Go baseline of switchboard's load comparison: the
// global webhook a team would write by hand, without JavaScript, doing the same job for
// every request:
//
//  1. read the body (at most -max-body bytes: 413) and parse it as JSON (400 if it is not);
//  2. compute the selector user_id:<from_user_id>;
//  3. SMEMBERS <prefix>:sel:<selector> in Redis: the routes of the subscriptions that match,
//     each a JSON object {"s": subscription, "c": connection, "o": customer, "e": event key}
//     (switchboard-load setup writes them);
//  4. publish one envelope per route to JetStream, subject
//     events.<customer>.apps.app.event_received.<integration>.<webhook>.<event key>, with a
//     Nats-Msg-Id derived from the body and the subscription, and wait for every
//     acknowledgement;
//  5. answer 201 "Webhook received"; a Redis or NATS failure is a 503 with Retry-After.
//
// What it skips compared with switchboard is listed in testdata/baselines/README.md.
//
// Usage:
//
//	baseline-go -listen 127.0.0.1:8081 -redis-url redis://127.0.0.1:6379 \
//	    -nats-url nats://127.0.0.1:4222 -prefix bl -stream SWITCHBOARD_EVENTS
//
// It accepts any path and method. On start it makes sure a stream captures events.>: it
// uses the stream named -stream if there is one, else creates it, else uses whichever
// stream already captures the subjects (switchboard's, when it runs on the same NATS).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "baseline-go:", err)
		os.Exit(1)
	}
}

type config struct {
	Listen      string
	RedisURL    string
	NATSURL     string
	Prefix      string
	Stream      string
	Integration string
	Webhook     string
	MaxBody     int64
	Timeout     time.Duration
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baseline-go", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8081", "HTTP address")
	fs.StringVar(&cfg.RedisURL, "redis-url", "redis://127.0.0.1:6379", "Redis holding the selector sets")
	fs.StringVar(&cfg.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS with JetStream")
	fs.StringVar(&cfg.Prefix, "prefix", "bl", "key prefix of the selector sets")
	fs.StringVar(&cfg.Stream, "stream", "SWITCHBOARD_EVENTS", "stream to publish to (created on events.> if missing and no other stream captures it)")
	fs.StringVar(&cfg.Integration, "integration", "load", "integration key, in the subject")
	fs.StringVar(&cfg.Webhook, "webhook", "webhook-key", "global webhook key, in the subject")
	fs.Int64Var(&cfg.MaxBody, "max-body", 1<<20, "largest request body, bytes")
	fs.DurationVar(&cfg.Timeout, "publish-timeout", 5*time.Second, "bound on the Redis lookup and the acknowledgements of one request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("parsing -redis-url: %w", err)
	}
	opts.PoolSize = max(opts.PoolSize, 64)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("pinging redis: %w", err)
	}

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("baseline-go"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connecting to nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("opening jetstream: %w", err)
	}
	stream, err := ensureStream(ctx, js, cfg.Stream)
	if err != nil {
		return err
	}

	srv := &http.Server{
		Handler:           &handler{cfg: cfg, rdb: rdb, js: js, log: log},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	fmt.Fprintf(stdout, "baseline-go listening on %s, pid %d, publishing to stream %s\n", ln.Addr(), os.Getpid(), stream)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := nc.Drain(); err != nil {
		return fmt.Errorf("draining nats: %w", err)
	}
	return nil
}

// ensureStream returns the name of the stream to publish to: name if it exists, else a new
// stream of that name on events.>, else the stream that already captures events.>.
func ensureStream(ctx context.Context, js jetstream.JetStream, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := js.Stream(ctx, name)
	if err == nil {
		return name, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return "", fmt.Errorf("looking up stream %q: %w", name, err)
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       name,
		Subjects:   []string{"events.>"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxAge:     7 * 24 * time.Hour,
		Duplicates: 2 * time.Minute,
	})
	if err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return name, nil
	}
	if other, serr := js.StreamNameBySubject(ctx, "events.>"); serr == nil {
		return other, nil
	}
	return "", fmt.Errorf("creating stream %q: %w", name, err)
}

// route is one member of a selector set.
type route struct {
	SubscriptionID string `json:"s"`
	ConnectionID   string `json:"c"`
	CustomerID     string `json:"o"`
	EventKey       string `json:"e"`
}

type envelope struct {
	ID             string          `json:"id"`
	OrganizationID string          `json:"organizationId"`
	Source         string          `json:"source"`
	Resource       string          `json:"resource"`
	ResourceID     string          `json:"resourceId"`
	EventName      string          `json:"eventName"`
	Timestamp      time.Time       `json:"timestamp"`
	Payload        json.RawMessage `json:"payload"`
	Metadata       metadata        `json:"metadata"`
}

type metadata struct {
	ConnectionID     string  `json:"connectionId"`
	SubscriptionID   string  `json:"subscriptionId"`
	EventKey         string  `json:"eventKey"`
	GlobalWebhookKey string  `json:"globalWebhookKey"`
	Selector         string  `json:"selector"`
	Channel          *string `json:"channel"`
	EventType        *string `json:"eventType"`
}

type handler struct {
	cfg config
	rdb *redis.Client
	js  jetstream.JetStream
	log *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the body", http.StatusBadRequest)
		return
	}
	var ev struct {
		FromUserID json.RawMessage `json:"from_user_id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "body is not JSON", http.StatusBadRequest)
		return
	}
	selector := "user_id:" + userID(ev.FromUserID)

	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	members, err := h.rdb.SMembers(ctx, h.cfg.Prefix+":sel:"+selector).Result()
	if err != nil {
		h.unavailable(w, "redis", err)
		return
	}
	if len(members) > 0 {
		if err := h.publish(ctx, body, selector, members); err != nil {
			h.unavailable(w, "nats", err)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Handled", "yes")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, "Webhook received")
}

// publish sends one envelope per route and waits for all acknowledgements.
func (h *handler) publish(ctx context.Context, body []byte, selector string, members []string) error {
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	now := time.Now().UTC()
	futures := make([]jetstream.PubAckFuture, 0, len(members))
	for _, m := range members {
		var rt route
		if err := json.Unmarshal([]byte(m), &rt); err != nil {
			return fmt.Errorf("decoding route %q: %w", m, err)
		}
		data, err := json.Marshal(envelope{
			ID:             "evt_" + strconv.FormatUint(rand.Uint64(), 36),
			OrganizationID: rt.CustomerID,
			Source:         "apps",
			Resource:       "app",
			ResourceID:     h.cfg.Integration,
			EventName:      "event_received",
			Timestamp:      now,
			Payload:        body,
			Metadata: metadata{
				ConnectionID: rt.ConnectionID, SubscriptionID: rt.SubscriptionID, EventKey: rt.EventKey,
				GlobalWebhookKey: h.cfg.Webhook, Selector: selector,
			},
		})
		if err != nil {
			return fmt.Errorf("encoding the envelope: %w", err)
		}
		msgID := sha256.Sum256([]byte(digest + rt.SubscriptionID))
		msg := &nats.Msg{
			Subject: "events." + rt.CustomerID + ".apps.app.event_received." + h.cfg.Integration + "." + h.cfg.Webhook + "." + rt.EventKey,
			Data:    data,
			Header:  nats.Header{jetstream.MsgIDHeader: []string{hex.EncodeToString(msgID[:])}},
		}
		f, err := h.js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("publishing: %w", err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publishing: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("awaiting acknowledgements: %w", ctx.Err())
		}
	}
	return nil
}

func (h *handler) unavailable(w http.ResponseWriter, what string, err error) {
	h.log.Warn("unavailable", "what", what, "err", err)
	w.Header().Set("Retry-After", "1")
	http.Error(w, what+" unavailable", http.StatusServiceUnavailable)
}

// userID renders from_user_id as JavaScript's template literal would for the common
// cases: a string as is, a number as written, anything else as its JSON text.
func userID(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "undefined"
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
