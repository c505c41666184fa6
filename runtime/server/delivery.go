package server

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// natsSubscriber is the stream route's api.Subscriber: core NATS subscriptions on the bus's
// connection, which the Bus owns.
type natsSubscriber struct{ nc *nats.Conn }

// Subscribe returns once the server has the subscription, so that a stream client misses
// nothing published after its upgrade.
func (n natsSubscriber) Subscribe(pattern string, deliver func([]byte)) (func(), error) {
	sub, err := n.nc.Subscribe(pattern, func(m *nats.Msg) { deliver(m.Data) })
	if err != nil {
		return nil, fmt.Errorf("subscribing to %s: %w", pattern, err)
	}
	if err := n.nc.Flush(); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("subscribing to %s: %w", pattern, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
