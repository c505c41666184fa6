package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/bus"
)

func startEmbedded(tb testing.TB, cfg bus.EmbeddedConfig) *bus.Embedded {
	tb.Helper()
	cfg.Logger = testLogger(tb)
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	e, err := bus.StartEmbedded(ctx, cfg)
	if err != nil {
		tb.Fatalf("StartEmbedded: %v", err)
	}
	tb.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e
}

func TestEmbeddedKeepsMessagesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	msgs := []bus.Message{
		{Subject: "events.c.apps.app.event_received.i.w.e", Data: []byte(`{"n":1}`), ID: "a"},
		{Subject: "events.c.apps.app.event_received.i.w.e", Data: []byte(`{"n":2}`), ID: "b"},
		{Subject: "events.d.apps.subscription.created.sub_1", Data: []byte(`{"n":3}`), ID: "c"},
	}

	e := startEmbedded(t, bus.EmbeddedConfig{DataDir: dir})
	if got := e.ClientURL(); got != "" {
		t.Errorf("ClientURL() without Listen = %q, want empty", got)
	}
	b, err := e.Connect(t.Context(), bus.Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if err := b.PublishAll(t.Context(), msgs); err != nil {
		t.Fatalf("PublishAll: %v", err)
	}
	if err := b.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	e = startEmbedded(t, bus.EmbeddedConfig{DataDir: dir})
	b, err = e.Connect(t.Context(), bus.Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Connect after restart: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	if got := streamMsgs(t, b); got != uint64(len(msgs)) {
		t.Fatalf("stream holds %d messages after restart, want %d", got, len(msgs))
	}
	st, err := b.JetStream().Stream(t.Context(), b.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		raw, err := st.GetMsg(t.Context(), uint64(i+1))
		if err != nil {
			t.Fatalf("GetMsg(%d): %v", i+1, err)
		}
		if raw.Subject != m.Subject || string(raw.Data) != string(m.Data) {
			t.Errorf("message %d = %s %s, want %s %s", i+1, raw.Subject, raw.Data, m.Subject, m.Data)
		}
	}
	// The de-duplication window survives too.
	if err := b.Publish(t.Context(), msgs[0]); err != nil {
		t.Fatal(err)
	}
	if got := streamMsgs(t, b); got != uint64(len(msgs)) {
		t.Errorf("republishing an ID after restart stored it again: %d messages", got)
	}
}

func TestEmbeddedListen(t *testing.T) {
	e := startEmbedded(t, bus.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	url := e.ClientURL()
	if url == "" || url == "nats://127.0.0.1:0" || url == "nats://127.0.0.1:4222" {
		t.Fatalf("ClientURL() = %q, want a random port", url)
	}
	b := connect(t, url, bus.Config{})
	for i := range 3 {
		if err := b.Publish(t.Context(), bus.Message{Subject: fmt.Sprintf("events.x.%d", i), Data: []byte("{}")}); err != nil {
			t.Fatalf("Publish over TCP: %v", err)
		}
	}
	if got := streamMsgs(t, b); got != 3 {
		t.Errorf("stream holds %d messages, want 3", got)
	}
}

func TestStartEmbeddedErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  bus.EmbeddedConfig
	}{
		{"no data dir", bus.EmbeddedConfig{}},
		{"bad listen address", bus.EmbeddedConfig{DataDir: t.TempDir(), Listen: "localhost"}},
		{"bad port", bus.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e, err := bus.StartEmbedded(t.Context(), tt.cfg); err == nil {
				_ = e.Shutdown(context.Background())
				t.Fatal("StartEmbedded succeeded")
			}
		})
	}
}
