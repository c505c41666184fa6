package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// ChannelStore is a store with the channel additions, as both implementations are.
type ChannelStore interface {
	store.Store
	store.ChannelStore
}

// RunChannels runs the conformance suite of store.ChannelStore against the stores that open
// returns, under the same rules as Run.
func RunChannels(t *testing.T, open func(t *testing.T) ChannelStore) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s ChannelStore)
	}{
		{"ChannelIDs", testChannelIDs},
		{"ChannelIDErrors", testChannelIDErrors},
		{"ConcurrentChannelIDs", testConcurrentChannelIDs},
		{"ChannelIDsGoWithTheirConnection", testChannelIDsDeleted},
		{"ChannelSubscriptions", testChannelSubscriptions},
		{"ActiveChannels", testActiveChannels},
		{"ActiveChannelsAmongManyConnections", testActiveChannelsAmongMany},
		{"ChannelCursors", testChannelCursors},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, open(t)) })
	}
}

// RunChannelPersistence checks that channel ids and cursors survive a restart, as
// RunPersistence does for the records.
func RunChannelPersistence(t *testing.T, open func(t *testing.T) (s ChannelStore, reopen func(t *testing.T) ChannelStore)) {
	t.Helper()
	ctx := t.Context()
	s, reopen := open(t)
	f := seed(t, s)
	id := mustChannelID(t, s, f.conn1.ID, "orders")
	if err := s.SetChannelCursor(ctx, f.conn1.ID, "orders", "2026-11-22T10:00:00Z"); err != nil {
		t.Fatalf("SetChannelCursor: %v", err)
	}
	mustCreateSubscription(t, s, channelSubscription("sub_ch", f.conn1, "orders", "order.created"))
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = reopen(t)
	if again := mustChannelID(t, s, f.conn1.ID, "orders"); again != id {
		t.Errorf("ChannelID after reopening = %q, want %q", again, id)
	}
	ref, err := s.ResolveChannelID(ctx, id)
	if want := (store.ChannelRef{IntegrationKey: "slack", ConnectionID: f.conn1.ID, ChannelKey: "orders"}); err != nil || ref != want {
		t.Errorf("ResolveChannelID after reopening = %+v, %v; want %+v", ref, err, want)
	}
	if cur, err := s.ChannelCursor(ctx, f.conn1.ID, "orders"); err != nil || cur != "2026-11-22T10:00:00Z" {
		t.Errorf("ChannelCursor after reopening = %q, %v", cur, err)
	}
	active, err := s.ListActiveChannels(ctx)
	if want := []store.ChannelRef{ref}; err != nil || !reflect.DeepEqual(active, want) {
		t.Errorf("ListActiveChannels after reopening = %+v, %v; want %+v", active, err, want)
	}
}

// channelSubscription is a channel subscription of c, as the API makes them: the event key
// is the event type.
func channelSubscription(id string, c store.Connection, channelKey, eventType string) store.Subscription {
	return store.Subscription{
		ID:             id,
		ConnectionID:   c.ID,
		IntegrationKey: c.IntegrationKey,
		CustomerID:     c.CustomerID,
		EventKey:       eventType,
		Parameters:     map[string]any{},
		Status:         "subscribed",
		ChannelKey:     channelKey,
		EventType:      eventType,
		CreatedAt:      created,
		UpdatedAt:      created,
	}
}

func mustChannelID(t testing.TB, s store.ChannelIDs, connectionID, channelKey string) string {
	t.Helper()
	id, err := s.ChannelID(t.Context(), connectionID, channelKey)
	if err != nil {
		t.Fatalf("ChannelID(%s, %s): %v", connectionID, channelKey, err)
	}
	return id
}

func testChannelIDs(t *testing.T, s ChannelStore) {
	ctx := t.Context()
	f := seed(t, s)
	id := mustChannelID(t, s, f.conn1.ID, "orders")
	checkTokenFormat(t, id)
	if again := mustChannelID(t, s, f.conn1.ID, "orders"); again != id {
		t.Errorf("second ChannelID = %q, want the first one %q", again, id)
	}
	others := map[string]string{
		"other channel":    mustChannelID(t, s, f.conn1.ID, "payments"),
		"other connection": mustChannelID(t, s, f.conn2.ID, "orders"),
	}
	for what, other := range others {
		if other == id {
			t.Errorf("the channel id of the %s equals the first one", what)
		}
	}
	for _, tt := range []struct {
		id   string
		want store.ChannelRef
	}{
		{id, store.ChannelRef{IntegrationKey: "slack", ConnectionID: f.conn1.ID, ChannelKey: "orders"}},
		{others["other channel"], store.ChannelRef{IntegrationKey: "slack", ConnectionID: f.conn1.ID, ChannelKey: "payments"}},
		{others["other connection"], store.ChannelRef{IntegrationKey: "slack", ConnectionID: f.conn2.ID, ChannelKey: "orders"}},
	} {
		got, err := s.ResolveChannelID(ctx, tt.id)
		if err != nil || got != tt.want {
			t.Errorf("ResolveChannelID = %+v, %v; want %+v", got, err, tt.want)
		}
	}
	// A channel id is not a webhook token, nor the other way round.
	if _, _, err := s.ResolveWebhookToken(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResolveWebhookToken(channel id): err = %v, want ErrNotFound", err)
	}
	if _, err := s.ResolveChannelID(ctx, mustToken(t, s, "slack", "events")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResolveChannelID(webhook token): err = %v, want ErrNotFound", err)
	}
}

func testChannelIDErrors(t *testing.T, s ChannelStore) {
	ctx := t.Context()
	f := seed(t, s)
	if _, err := s.ChannelID(ctx, "missing", "orders"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ChannelID of a missing connection: err = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "a.b", "a:b", "a b"} {
		if _, err := s.ChannelID(ctx, f.conn1.ID, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ChannelID with channel key %q: err = %v, want ErrInvalid", bad, err)
		}
	}
	for _, unknown := range []string{"", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "not/a/token", "a\x00b"} {
		if _, err := s.ResolveChannelID(ctx, unknown); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ResolveChannelID(%q): err = %v, want ErrNotFound", unknown, err)
		}
	}
}

func testConcurrentChannelIDs(t *testing.T, s ChannelStore) {
	f := seed(t, s)
	const n = 16
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i], errs[i] = s.ChannelID(t.Context(), f.conn1.ID, "orders") })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("ChannelID %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("concurrent ChannelID calls returned %q and %q", ids[0], ids[i])
		}
	}
	if ref, err := s.ResolveChannelID(t.Context(), ids[0]); err != nil || ref.ChannelKey != "orders" {
		t.Errorf("ResolveChannelID = %+v, %v", ref, err)
	}
}

func testChannelIDsDeleted(t *testing.T, s ChannelStore) {
	ctx := t.Context()
	f := seed(t, s)
	id1 := mustChannelID(t, s, f.conn1.ID, "orders")
	id2 := mustChannelID(t, s, f.conn2.ID, "orders")
	idOther := mustChannelID(t, s, f.otherConn.ID, "orders")
	if err := s.DeleteConnection(ctx, f.conn1.ID); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	if _, err := s.ResolveChannelID(ctx, id1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResolveChannelID of a deleted connection's channel: err = %v, want ErrNotFound", err)
	}
	if _, err := s.ResolveChannelID(ctx, id2); err != nil {
		t.Errorf("ResolveChannelID of another connection's channel: %v", err)
	}
	// A re-created connection of the same id gets a new id: the old URL stays dead.
	mustCreateConnection(t, s, f.conn1)
	if again := mustChannelID(t, s, f.conn1.ID, "orders"); again == id1 {
		t.Errorf("a re-created connection got its predecessor's channel id")
	}
	if _, err := s.ResolveChannelID(ctx, id1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResolveChannelID of the old id after re-creating: err = %v, want ErrNotFound", err)
	}

	if err := s.DeleteIntegration(ctx, "slack"); err != nil {
		t.Fatalf("DeleteIntegration: %v", err)
	}
	if _, err := s.ResolveChannelID(ctx, id2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResolveChannelID of a deleted integration's channel: err = %v, want ErrNotFound", err)
	}
	if _, err := s.ResolveChannelID(ctx, idOther); err != nil {
		t.Errorf("ResolveChannelID of another integration's channel: %v", err)
	}
}

func testChannelSubscriptions(t *testing.T, s ChannelStore) {
	ctx := t.Context()
	f := seed(t, s)
	created1 := channelSubscription("ch_1", f.conn1, "orders", "order.created")
	created2 := channelSubscription("ch_2", f.conn1, "orders", "order.created")
	updated := channelSubscription("ch_3", f.conn1, "orders", "order:updated")
	payments := channelSubscription("ch_4", f.conn1, "payments", "order.created")
	otherConn := channelSubscription("ch_5", f.conn2, "orders", "order.created")
	for _, sub := range []store.Subscription{created2, created1, updated, payments, otherConn} {
		mustCreateSubscription(t, s, sub)
	}
	for _, tt := range []struct {
		conn, channel, eventType string
		want                     []store.Subscription
	}{
		{f.conn1.ID, "orders", "order.created", []store.Subscription{created1, created2}},
		{f.conn1.ID, "orders", "order:updated", []store.Subscription{updated}},
		{f.conn1.ID, "orders", "", []store.Subscription{created1, created2, updated}},
		{f.conn1.ID, "payments", "order.created", []store.Subscription{payments}},
		{f.conn1.ID, "orders", "order.deleted", []store.Subscription{}},
		{f.conn1.ID, "events", "", []store.Subscription{}}, // a global webhook key is no channel
		{f.conn2.ID, "orders", "", []store.Subscription{otherConn}},
	} {
		got, err := s.ListChannelSubscriptions(ctx, tt.conn, tt.channel, tt.eventType)
		if err != nil {
			t.Fatalf("ListChannelSubscriptions(%s, %s, %s): %v", tt.conn, tt.channel, tt.eventType, err)
		}
		assertSame(t, fmt.Sprintf("ListChannelSubscriptions(%s, %s, %s)", tt.conn, tt.channel, tt.eventType), got, tt.want)
	}
	if _, err := s.ListChannelSubscriptions(ctx, "missing", "orders", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ListChannelSubscriptions of a missing connection: err = %v, want ErrNotFound", err)
	}
	// Channel subscriptions are not routes of global webhooks.
	assertRoutes(t, s, "slack", "events", []string{"team_id:T1", ""}, map[string][]store.Route{
		"team_id:T1": {store.RouteOf(f.sub1), store.RouteOf(f.sub2)},
	})
	assertRoutes(t, s, "slack", "orders", []string{"", "order.created"}, map[string][]store.Route{})

	if err := s.DeleteSubscription(ctx, created1.ID); err != nil {
		t.Fatalf("DeleteSubscription: %v", err)
	}
	got, err := s.ListChannelSubscriptions(ctx, f.conn1.ID, "orders", "order.created")
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, "ListChannelSubscriptions after a delete", got, []store.Subscription{created2})
}

// assertActiveChannels checks ListActiveChannels against want, in its order.
func assertActiveChannels(t testing.TB, s store.ChannelSubscriptions, what string, want ...store.ChannelRef) {
	t.Helper()
	got, err := s.ListActiveChannels(t.Context())
	if err != nil {
		t.Fatalf("ListActiveChannels %s: %v", what, err)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ListActiveChannels %s\n got %+v\nwant %+v", what, got, want)
	}
}

func testActiveChannels(t *testing.T, s ChannelStore) {
	ctx := t.Context()
	f := seed(t, s)
	assertActive := func(what string, want ...store.ChannelRef) {
		t.Helper()
		assertActiveChannels(t, s, what, want...)
	}
	assertActive("with global-webhook subscriptions only")

	for _, sub := range []store.Subscription{
		channelSubscription("ch_1", f.conn2, "orders", "order.created"),
		channelSubscription("ch_2", f.conn2, "orders", "order.updated"),
		channelSubscription("ch_3", f.conn1, "stream", "tick"),
		channelSubscription("ch_4", f.otherConn, "orders", "order.created"),
	} {
		mustCreateSubscription(t, s, sub)
	}
	conn1Stream := store.ChannelRef{IntegrationKey: "slack", ConnectionID: f.conn1.ID, ChannelKey: "stream"}
	conn2Orders := store.ChannelRef{IntegrationKey: "slack", ConnectionID: f.conn2.ID, ChannelKey: "orders"}
	otherOrders := store.ChannelRef{IntegrationKey: "other", ConnectionID: f.otherConn.ID, ChannelKey: "orders"}
	assertActive("with channel subscriptions", conn1Stream, conn2Orders, otherOrders)

	if err := s.DeleteSubscription(ctx, "ch_1"); err != nil {
		t.Fatal(err)
	}
	assertActive("after deleting one of two subscriptions", conn1Stream, conn2Orders, otherOrders)
	if err := s.DeleteSubscription(ctx, "ch_2"); err != nil {
		t.Fatal(err)
	}
	assertActive("after deleting the last subscription of a channel", conn1Stream, otherOrders)
	if err := s.DeleteConnection(ctx, f.conn1.ID); err != nil {
		t.Fatal(err)
	}
	assertActive("after deleting a connection", otherOrders)
	if err := s.DeleteIntegration(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	assertActive("after deleting an integration")
}

// testActiveChannelsAmongMany: with many connections that have only global-webhook
// subscriptions, the few channels with subscriptions are listed, and follow their
// subscriptions through updates and deletes.
func testActiveChannelsAmongMany(t *testing.T, s ChannelStore) {
	ctx := t.Context()
	f := seed(t, s)
	const connections = 200
	conns := make([]store.Connection, connections)
	for i := range conns {
		conns[i] = connection(fmt.Sprintf("bulk_%03d", i), "slack", fmt.Sprintf("cust_%d", i))
		mustCreateConnection(t, s, conns[i])
		mustCreateSubscription(t, s, subscription(fmt.Sprintf("bulk_sub_%03d", i), conns[i], "events", fmt.Sprintf("team_id:T%d", i)))
	}
	assertActiveChannels(t, s, "with global-webhook subscriptions only")

	c7, c42, c150 := conns[7], conns[42], conns[150]
	moving := channelSubscription("ch_moving", c42, "stream", "tick")
	toGlobal := channelSubscription("ch_to_global", c150, "orders", "order.created")
	for _, sub := range []store.Subscription{
		channelSubscription("ch_7a", c7, "orders", "order.created"),
		channelSubscription("ch_7b", c7, "orders", "order.updated"),
		channelSubscription("ch_42", c42, "orders", "order.created"),
		moving,
		toGlobal,
		channelSubscription("ch_other", f.otherConn, "orders", "order.created"),
	} {
		mustCreateSubscription(t, s, sub)
	}
	ref := func(c store.Connection, channelKey string) store.ChannelRef {
		return store.ChannelRef{IntegrationKey: c.IntegrationKey, ConnectionID: c.ID, ChannelKey: channelKey}
	}
	c7Orders, c42Orders, c150Orders, otherOrders := ref(c7, "orders"), ref(c42, "orders"), ref(c150, "orders"), ref(f.otherConn, "orders")
	assertActiveChannels(t, s, "with a few channel subscriptions",
		c7Orders, c42Orders, ref(c42, "stream"), c150Orders, otherOrders)

	moving.ChannelKey = "payments"
	moving.UpdatedAt = updated
	if err := s.UpdateSubscription(ctx, moving); err != nil {
		t.Fatalf("UpdateSubscription to another channel: %v", err)
	}
	assertActiveChannels(t, s, "after moving a subscription to another channel",
		c7Orders, c42Orders, ref(c42, "payments"), c150Orders, otherOrders)

	global := subscription(toGlobal.ID, c150, "events", "team_id:T150")
	if err := s.UpdateSubscription(ctx, global); err != nil {
		t.Fatalf("UpdateSubscription to a global-webhook subscription: %v", err)
	}
	assertActiveChannels(t, s, "after turning a channel's only subscription into a global-webhook one",
		c7Orders, c42Orders, ref(c42, "payments"), otherOrders)

	if err := s.DeleteSubscription(ctx, "ch_7a"); err != nil {
		t.Fatal(err)
	}
	assertActiveChannels(t, s, "after deleting one of a channel's two subscriptions",
		c7Orders, c42Orders, ref(c42, "payments"), otherOrders)
	if err := s.DeleteSubscription(ctx, "ch_7b"); err != nil {
		t.Fatal(err)
	}
	assertActiveChannels(t, s, "after deleting the last subscription of a channel",
		c42Orders, ref(c42, "payments"), otherOrders)

	if err := s.DeleteConnection(ctx, c42.ID); err != nil {
		t.Fatal(err)
	}
	assertActiveChannels(t, s, "after deleting a connection with two active channels", otherOrders)
	// A re-created connection of the same id starts with no active channel.
	mustCreateConnection(t, s, c42)
	assertActiveChannels(t, s, "after re-creating the connection", otherOrders)
}

func testChannelCursors(t *testing.T, s ChannelStore) {
	ctx := t.Context()
	f := seed(t, s)
	cursor := func(conn, channel string) string {
		t.Helper()
		c, err := s.ChannelCursor(ctx, conn, channel)
		if err != nil {
			t.Fatalf("ChannelCursor(%s, %s): %v", conn, channel, err)
		}
		return c
	}
	set := func(conn, channel, c string) {
		t.Helper()
		if err := s.SetChannelCursor(ctx, conn, channel, c); err != nil {
			t.Fatalf("SetChannelCursor(%s, %s, %q): %v", conn, channel, c, err)
		}
	}
	if c := cursor(f.conn1.ID, "orders"); c != "" {
		t.Errorf("cursor before any set = %q, want empty", c)
	}
	set(f.conn1.ID, "orders", "42")
	set(f.conn1.ID, "stream", "evt-9:\x00 any bytes")
	set(f.conn2.ID, "orders", "7")
	if c := cursor(f.conn1.ID, "orders"); c != "42" {
		t.Errorf("cursor = %q, want 42", c)
	}
	set(f.conn1.ID, "orders", "43")
	if c := cursor(f.conn1.ID, "orders"); c != "43" {
		t.Errorf("cursor after a second set = %q, want 43", c)
	}
	if c := cursor(f.conn1.ID, "stream"); c != "evt-9:\x00 any bytes" {
		t.Errorf("opaque cursor = %q", c)
	}
	set(f.conn1.ID, "stream", "")
	if c := cursor(f.conn1.ID, "stream"); c != "" {
		t.Errorf("cursor after clearing = %q, want empty", c)
	}

	if _, err := s.ChannelCursor(ctx, "missing", "orders"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ChannelCursor of a missing connection: err = %v, want ErrNotFound", err)
	}
	if err := s.SetChannelCursor(ctx, "missing", "orders", "1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetChannelCursor of a missing connection: err = %v, want ErrNotFound", err)
	}

	// Cursors go with their connection.
	if err := s.DeleteConnection(ctx, f.conn1.ID); err != nil {
		t.Fatal(err)
	}
	mustCreateConnection(t, s, f.conn1)
	if c := cursor(f.conn1.ID, "orders"); c != "" {
		t.Errorf("cursor of a re-created connection = %q, want empty", c)
	}
	if c := cursor(f.conn2.ID, "orders"); c != "7" {
		t.Errorf("another connection's cursor = %q, want 7", c)
	}
}
