package storetest

import (
	"fmt"
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

func countRoutes(m map[string][]store.Route) int {
	n := 0
	for _, routes := range m {
		n += len(routes)
	}
	return n
}
