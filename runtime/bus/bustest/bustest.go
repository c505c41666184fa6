// Package bustest reads back, in tests, what a switchboard server stored on the bus.
package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Msg is one message read back from the events stream.
type Msg struct {
	Subject string
	Data    []byte
}

func (m Msg) String() string { return m.Subject + " " + string(m.Data) }

// Watcher reads back what the bus durably stored on subjects matching a pattern, from the
// moment it starts (an ordered JetStream consumer, so a publish that JetStream dropped as a
// duplicate is not seen).
type Watcher struct {
	ch chan Msg
}

// Watch starts a Watcher on the stream that holds the events subjects of the NATS server
// at url; it stops when the test ends.
func Watch(t testing.TB, url, subject string) *Watcher {
	t.Helper()
	if url == "" {
		t.Fatal("no nats url to watch")
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connecting to nats %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stream, err := js.StreamNameBySubject(ctx, "events.probe")
	if err != nil {
		t.Fatalf("finding the events stream: %v", err)
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		t.Fatalf("creating a consumer: %v", err)
	}
	w := &Watcher{ch: make(chan Msg, 1024)}
	cc, err := cons.Consume(func(m jetstream.Msg) { w.ch <- Msg{Subject: m.Subject(), Data: m.Data()} })
	if err != nil {
		t.Fatalf("consuming: %v", err)
	}
	t.Cleanup(cc.Stop)
	return w
}

// Collect returns what arrives until quiet has passed with nothing new, waiting up to 10s
// for the first want messages.
func (w *Watcher) Collect(want int, quiet time.Duration) []Msg {
	var out []Msg
	deadline := time.After(10 * time.Second)
	for {
		wait := quiet
		if len(out) < want {
			wait = 10 * time.Second
		}
		select {
		case m := <-w.ch:
			out = append(out, m)
		case <-time.After(wait):
			return out
		case <-deadline:
			return out
		}
	}
}
