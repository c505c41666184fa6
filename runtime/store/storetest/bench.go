package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// BenchmarkMatchRoutes measures MatchRoutes on s, an empty store, after seeding it with one
// integration, 10 connections and 1,000 subscriptions spread evenly over 100 selectors: the
// one-selector case returns 10 routes, the three-selector case 30.
func BenchmarkMatchRoutes(b *testing.B, s store.Store) {
	const subscriptions, selectors, connections = 1000, 100, 10
	mustCreateIntegration(b, s, integration("slack"))
	conns := make([]store.Connection, connections)
	for i := range conns {
		conns[i] = connection(fmt.Sprintf("conn_%d", i), "slack", fmt.Sprintf("cust_%d", i))
		mustCreateConnection(b, s, conns[i])
	}
	for i := range subscriptions {
		sel := fmt.Sprintf("team_id:T%d", i%selectors)
		mustCreateSubscription(b, s, subscription(fmt.Sprintf("sub_%04d", i), conns[i%connections], "events", sel))
	}
	for _, bm := range []struct {
		name      string
		selectors []string
		want      int // routes
	}{
		{"1-selector", []string{"team_id:T7"}, 10},
		{"3-selectors", []string{"team_id:T7", "team_id:T42", "team_id:T99"}, 30},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := s.MatchRoutes(b.Context(), "slack", "events", bm.selectors)
				if err != nil {
					b.Fatal(err)
				}
				if n := countRoutes(got); n != bm.want {
					b.Fatalf("MatchRoutes found %d routes, want %d", n, bm.want)
				}
			}
		})
	}
}

// BenchmarkListActiveChannels measures ListActiveChannels on s, an empty store, after
// seeding it with one integration of 10,000 connections, each with one global-webhook
// subscription, of which 10 also have a channel subscription: what it costs must follow
// the 10, not the 10,000.
func BenchmarkListActiveChannels(b *testing.B, s ChannelStore) {
	const connections, active = 10_000, 10
	mustCreateIntegration(b, s, integration("slack"))
	// Seeded by 16 writers: a Redis store takes round trips, not CPU, per write.
	var next atomic.Int64
	errs := make([]error, 16)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			ctx := b.Context()
			for i := int(next.Add(1) - 1); i < connections && errs[w] == nil; i = int(next.Add(1) - 1) {
				c := connection(fmt.Sprintf("conn_%05d", i), "slack", fmt.Sprintf("cust_%d", i))
				if errs[w] = s.CreateConnection(ctx, c); errs[w] != nil {
					break
				}
				errs[w] = s.CreateSubscription(ctx, subscription(fmt.Sprintf("sub_%05d", i), c, "events", fmt.Sprintf("team_id:T%d", i)))
				if errs[w] == nil && i%(connections/active) == 0 {
					errs[w] = s.CreateSubscription(ctx, channelSubscription(fmt.Sprintf("ch_%05d", i), c, "orders", "order.created"))
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatalf("seeding: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.ListActiveChannels(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != active {
			b.Fatalf("ListActiveChannels found %d channels, want %d", len(got), active)
		}
	}
}

func countRoutes(m map[string][]store.Route) int {
	n := 0
	for _, routes := range m {
		n += len(routes)
	}
	return n
}
