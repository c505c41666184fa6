package bus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-run/switchboard/runtime/bus"
)

// runServer starts a nats-server with JetStream on a random port, storing under dir.
func runServer(tb testing.TB, dir string, port int) *server.Server {
	tb.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port = port
	opts.JetStream = true
	opts.StoreDir = dir
	s := natstest.RunServer(&opts)
	tb.Cleanup(s.Shutdown)
	return s
}

func connect(tb testing.TB, url string, cfg bus.Config) *bus.Bus {
	tb.Helper()
	cfg.URL = url
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, cfg)
	if err != nil {
		tb.Fatalf("Connect: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) { w.tb.Log(string(p)); return len(p), nil }

func streamMsgs(tb testing.TB, b *bus.Bus) uint64 {
	tb.Helper()
	s, err := b.JetStream().Stream(tb.Context(), b.StreamName())
	if err != nil {
		tb.Fatalf("Stream: %v", err)
	}
	info, err := s.Info(tb.Context())
	if err != nil {
		tb.Fatalf("Info: %v", err)
	}
	return info.State.Msgs
}

func TestConnectCreatesStream(t *testing.T) {
	s := runServer(t, t.TempDir(), -1)
	b := connect(t, s.ClientURL(), bus.Config{})

	if got := b.StreamName(); got != bus.DefaultStreamName {
		t.Fatalf("StreamName() = %q, want %q", got, bus.DefaultStreamName)
	}
	st, err := b.JetStream().Stream(t.Context(), bus.DefaultStreamName)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	cfg := st.CachedInfo().Config
	if fmt.Sprint(cfg.Subjects) != "[events.>]" || cfg.Storage != jetstream.FileStorage ||
		cfg.Duplicates != bus.DefaultDuplicateWindow || cfg.MaxAge != bus.DefaultMaxAge {
		t.Errorf("stream config: subjects %v storage %v duplicates %v maxAge %v",
			cfg.Subjects, cfg.Storage, cfg.Duplicates, cfg.MaxAge)
	}
	if err := b.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}

	t.Run("second connect reuses the stream", func(t *testing.T) {
		b2 := connect(t, s.ClientURL(), bus.Config{})
		if got := b2.StreamName(); got != bus.DefaultStreamName {
			t.Errorf("StreamName() = %q", got)
		}
	})
}

func TestConnectUsesStreamCoveringSubjects(t *testing.T) {
	s := runServer(t, t.TempDir(), -1)
	b0 := connect(t, s.ClientURL(), bus.Config{StreamName: "OPERATORS", Subjects: []string{"events.>"}})
	if got := b0.StreamName(); got != "OPERATORS" {
		t.Fatalf("StreamName() = %q", got)
	}

	b := connect(t, s.ClientURL(), bus.Config{})
	if got := b.StreamName(); got != "OPERATORS" {
		t.Fatalf("StreamName() = %q, want the existing stream OPERATORS", got)
	}
	if err := b.Publish(t.Context(), bus.Message{Subject: "events.a.b", Data: []byte("{}"), ID: "1"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if n := streamMsgs(t, b); n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
}

func TestPublish(t *testing.T) {
	s := runServer(t, t.TempDir(), -1)
	b := connect(t, s.ClientURL(), bus.Config{})
	ctx := t.Context()

	m := bus.Message{Subject: "events.cust_1.apps.app.event_received.i.w.e", Data: []byte(`{"a":1}`), ID: "msg-1"}
	if err := b.Publish(ctx, m); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := b.Publish(ctx, m); err != nil {
		t.Fatalf("Publish again: %v", err)
	}
	if n := streamMsgs(t, b); n != 1 {
		t.Fatalf("stream holds %d messages after publishing one ID twice, want 1", n)
	}

	st, _ := b.JetStream().Stream(ctx, b.StreamName())
	raw, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("GetMsg: %v", err)
	}
	if raw.Subject != m.Subject || string(raw.Data) != string(m.Data) || raw.Header.Get(jetstream.MsgIDHeader) != "msg-1" {
		t.Errorf("stored %s %s %v", raw.Subject, raw.Data, raw.Header)
	}

	t.Run("subject outside the stream", func(t *testing.T) {
		err := b.Publish(ctx, bus.Message{Subject: "other.subject", Data: []byte("{}")})
		if err == nil {
			t.Fatal("Publish to a subject no stream captures succeeded")
		}
	})
}

func TestPublishAll(t *testing.T) {
	s := runServer(t, t.TempDir(), -1)
	b := connect(t, s.ClientURL(), bus.Config{})
	ctx := t.Context()

	const n = 200
	msgs := make([]bus.Message, n)
	for i := range msgs {
		msgs[i] = bus.Message{
			Subject: fmt.Sprintf("events.cust_%d.apps.app.event_received.i.w.e", i%7),
			Data:    fmt.Appendf(nil, `{"i":%d}`, i),
			ID:      fmt.Sprintf("id-%d", i),
		}
	}
	if err := b.PublishAll(ctx, msgs); err != nil {
		t.Fatalf("PublishAll: %v", err)
	}
	if got := streamMsgs(t, b); got != n {
		t.Fatalf("stream holds %d messages, want %d", got, n)
	}
	// A retry of the whole batch, and of a part of it, stores nothing new.
	if err := b.PublishAll(ctx, msgs); err != nil {
		t.Fatalf("PublishAll again: %v", err)
	}
	if err := b.PublishAll(ctx, msgs[10:20]); err != nil {
		t.Fatalf("PublishAll part: %v", err)
	}
	if got := streamMsgs(t, b); got != n {
		t.Fatalf("stream holds %d messages after retries, want %d", got, n)
	}
	if err := b.PublishAll(ctx, nil); err != nil {
		t.Errorf("PublishAll(nil): %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	tests := []struct {
		name string
		call func(context.Context, *bus.Bus) error
	}{
		{"Publish", func(ctx context.Context, b *bus.Bus) error {
			return b.Publish(ctx, bus.Message{Subject: "events.a", Data: []byte("{}"), ID: "x"})
		}},
		{"PublishAll", func(ctx context.Context, b *bus.Bus) error {
			return b.PublishAll(ctx, []bus.Message{
				{Subject: "events.a", Data: []byte("{}"), ID: "x"},
				{Subject: "events.b", Data: []byte("{}"), ID: "y"},
			})
		}},
		{"Ping", func(ctx context.Context, b *bus.Bus) error { return b.Ping(ctx) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := runServer(t, t.TempDir(), -1)
			b := connect(t, s.ClientURL(), bus.Config{})
			s.Shutdown()

			const deadline = 2 * time.Second
			ctx, cancel := context.WithTimeout(t.Context(), deadline)
			defer cancel()
			start := time.Now()
			err := tt.call(ctx, b)
			elapsed := time.Since(start)
			if !errors.Is(err, bus.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			if elapsed > deadline+200*time.Millisecond {
				t.Errorf("returned after %v, past the ctx deadline %v", elapsed, deadline)
			}
		})
	}

	t.Run("no acknowledgement within the publish timeout", func(t *testing.T) {
		s := runServer(t, t.TempDir(), -1)
		b := connect(t, s.ClientURL(), bus.Config{PublishTimeout: 300 * time.Millisecond})
		// A responder that never answers stands in for a stuck JetStream.
		sub, err := b.Conn().Subscribe("silent.>", func(*nats.Msg) {})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
		for _, msgs := range [][]bus.Message{
			{{Subject: "silent.a", Data: []byte("{}")}},
			{{Subject: "silent.a", Data: []byte("{}")}, {Subject: "silent.b", Data: []byte("{}")}},
		} {
			start := time.Now()
			err := b.PublishAll(t.Context(), msgs)
			if !errors.Is(err, bus.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want ErrUnavailable and DeadlineExceeded", err)
			}
			if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
				t.Errorf("returned after %v, want about the 300ms publish timeout", d)
			}
		}
	})

	t.Run("stream deleted while connected", func(t *testing.T) {
		s := runServer(t, t.TempDir(), -1)
		b := connect(t, s.ClientURL(), bus.Config{})
		if err := b.JetStream().DeleteStream(t.Context(), b.StreamName()); err != nil {
			t.Fatal(err)
		}
		err := b.PublishAll(t.Context(), []bus.Message{{Subject: "events.a", Data: []byte("{}")}, {Subject: "events.b", Data: []byte("{}")}})
		if !errors.Is(err, bus.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if err := b.Ping(t.Context()); !errors.Is(err, bus.ErrUnavailable) {
			t.Errorf("Ping without the stream: %v, want ErrUnavailable", err)
		}
	})

	t.Run("cancelled ctx is not unavailability", func(t *testing.T) {
		s := runServer(t, t.TempDir(), -1)
		b := connect(t, s.ClientURL(), bus.Config{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := b.Publish(ctx, bus.Message{Subject: "events.a", Data: []byte("{}")})
		if !errors.Is(err, context.Canceled) || errors.Is(err, bus.ErrUnavailable) {
			t.Errorf("err = %v, want context.Canceled only", err)
		}
	})

	t.Run("after Close", func(t *testing.T) {
		s := runServer(t, t.TempDir(), -1)
		b := connect(t, s.ClientURL(), bus.Config{})
		if err := b.Close(t.Context()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := b.Publish(t.Context(), bus.Message{Subject: "events.a"}); !errors.Is(err, bus.ErrUnavailable) {
			t.Errorf("Publish after Close: %v, want ErrUnavailable", err)
		}
		if err := b.Close(t.Context()); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestConnectGivesUpWithCtx(t *testing.T) {
	s := runServer(t, t.TempDir(), -1)
	url := s.ClientURL()
	s.Shutdown()

	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := bus.Connect(ctx, bus.Config{URL: url, Logger: testLogger(t)})
	if !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("Connect returned after %v", d)
	}
}

func TestReconnectRecreatesStream(t *testing.T) {
	s := runServer(t, t.TempDir(), -1)
	b := connect(t, s.ClientURL(), bus.Config{})
	port := s.Addr().(*net.TCPAddr).Port
	s.Shutdown()

	// A fresh server on the same address, without the old files: the stream is gone.
	runServer(t, t.TempDir(), port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := b.Ping(t.Context())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ping after reconnect: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := b.Publish(t.Context(), bus.Message{Subject: "events.a", Data: []byte("{}"), ID: "1"}); err != nil {
		t.Fatalf("Publish after reconnect: %v", err)
	}
}
