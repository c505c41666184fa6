// Package storetest is the conformance suite of the store.Store contract. Every
// implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) { storetest.Run(t, openTestStore) }
//
// Each subtest asks open for a fresh store that shares no records with any other subtest;
// open owns that store's teardown (closing it, removing its data) through t.Cleanup.
// RunPersistence checks what must survive a restart.
package storetest

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// Run runs the whole conformance suite against the stores that open returns.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"Integrations", testIntegrations},
		{"IntegrationErrors", testIntegrationErrors},
		{"ReturnedValuesAreCopies", testCopies},
		{"Connections", testConnections},
		{"ConnectionErrors", testConnectionErrors},
		{"WebhookTokens", testWebhookTokens},
		{"WebhookTokenErrors", testWebhookTokenErrors},
		{"ConcurrentWebhookTokens", testConcurrentWebhookTokens},
		{"Subscriptions", testSubscriptions},
		{"SubscriptionErrors", testSubscriptionErrors},
		{"UpdateSubscriptionMovesIndex", testUpdateSubscription},
		{"DeleteSubscriptionUnindexes", testDeleteSubscription},
		{"MatchRoutes", testMatchRoutes},
		{"MatchRoutesEdgeCases", testMatchRoutesEdgeCases},
		{"DeleteConnectionCascades", testDeleteConnection},
		{"DeleteIntegrationCascades", testDeleteIntegration},
		{"ConcurrentSubscriptions", testConcurrentSubscriptions},
		{"InvalidKeys", testInvalidKeys},
		{"CanceledContext", testCanceledContext},
		{"Ping", func(t *testing.T, s store.Store) {
			if err := s.Ping(t.Context()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, open(t)) })
	}
}

// RunPersistence checks that integrations, connections, subscriptions, their index entries
// and webhook tokens survive a restart. open returns a fresh store and a function that opens
// the same data again; the suite closes the first store before calling it.
func RunPersistence(t *testing.T, open func(t *testing.T) (s store.Store, reopen func(t *testing.T) store.Store)) {
	t.Helper()
	ctx := t.Context()
	s, reopen := open(t)
	f := seed(t, s)
	token := mustToken(t, s, "slack", "events")
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = reopen(t)
	gotIn, err := s.GetIntegration(ctx, "slack")
	if err != nil {
		t.Fatalf("GetIntegration after reopening: %v", err)
	}
	assertSame(t, "integration", gotIn, f.integration)
	gotConn, err := s.GetConnection(ctx, f.conn1.ID)
	if err != nil {
		t.Fatalf("GetConnection after reopening: %v", err)
	}
	assertSame(t, "connection", gotConn, f.conn1)
	gotSub, err := s.GetSubscription(ctx, f.sub1.ID)
	if err != nil {
		t.Fatalf("GetSubscription after reopening: %v", err)
	}
	assertSame(t, "subscription", gotSub, f.sub1)
	if again := mustToken(t, s, "slack", "events"); again != token {
		t.Errorf("WebhookToken after reopening = %q, want %q", again, token)
	}
	in, wh, err := s.ResolveWebhookToken(ctx, token)
	if err != nil || in != "slack" || wh != "events" {
		t.Errorf("ResolveWebhookToken after reopening = %q, %q, %v; want slack, events", in, wh, err)
	}
	assertRoutes(t, s, "slack", "events", []string{"team_id:T1"}, map[string][]store.Route{
		"team_id:T1": {store.RouteOf(f.sub1), store.RouteOf(f.sub2)},
	})
}

// Fixed times survive a JSON round trip exactly, so records compare equal after one.
var (
	created = time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	updated = created.Add(time.Hour)
)

func integration(key string) store.Integration {
	return store.Integration{
		Key:          key,
		ConnectorKey: "slack",
		Parameters:   map[string]any{"signingSecret": "s3cret-" + key, "retries": 3.0},
		CreatedAt:    created,
		UpdatedAt:    created,
	}
}

func connection(id, integrationKey, customerID string) store.Connection {
	return store.Connection{
		ID:             id,
		IntegrationKey: integrationKey,
		CustomerID:     customerID,
		Credentials:    map[string]any{"accessToken": "xoxb-" + id},
		Parameters:     map[string]any{"teamId": "T1", "nested": map[string]any{"a": []any{1.0, "b"}}},
		CreatedAt:      created,
	}
}

// subscription is a global-webhook event subscription of c; IntegrationKey and CustomerID
// are set as the store would set them.
func subscription(id string, c store.Connection, webhookKey, selector string) store.Subscription {
	return store.Subscription{
		ID:               id,
		ConnectionID:     c.ID,
		IntegrationKey:   c.IntegrationKey,
		CustomerID:       c.CustomerID,
		EventKey:         "message-posted",
		Parameters:       map[string]any{"channel": "C1"},
		Status:           "subscribed",
		GlobalWebhookKey: webhookKey,
		Selector:         selector,
		CreatedAt:        created,
		UpdatedAt:        created,
	}
}

// fixture is the data most tests start from: integration "slack" with two connections,
// "other" with one, and subscriptions on both.
type fixture struct {
	integration, otherIntegration store.Integration
	conn1, conn2, otherConn       store.Connection
	sub1, sub2, sub3, otherSub    store.Subscription
}

func seed(t testing.TB, s store.Store) fixture {
	t.Helper()
	f := fixture{
		integration:      integration("slack"),
		otherIntegration: integration("other"),
		conn1:            connection("conn_1", "slack", "cust_1"),
		conn2:            connection("conn_2", "slack", "cust_2"),
		otherConn:        connection("conn_3", "other", "cust_1"),
	}
	f.sub1 = subscription("sub_1", f.conn1, "events", "team_id:T1")
	f.sub2 = subscription("sub_2", f.conn2, "events", "team_id:T1")
	f.sub3 = subscription("sub_3", f.conn1, "events", "user_id:U1")
	// Same webhook key and selector as sub1, other integration: must never match for slack.
	f.otherSub = subscription("sub_4", f.otherConn, "events", "team_id:T1")

	mustCreateIntegration(t, s, f.integration)
	mustCreateIntegration(t, s, f.otherIntegration)
	for _, c := range []store.Connection{f.conn1, f.conn2, f.otherConn} {
		mustCreateConnection(t, s, c)
	}
	for _, sub := range []store.Subscription{f.sub1, f.sub2, f.sub3, f.otherSub} {
		mustCreateSubscription(t, s, sub)
	}
	return f
}

func testIntegrations(t *testing.T, s store.Store) {
	ctx := t.Context()
	b, a := integration("b-slack"), integration("a-github")
	a.ConnectorKey = "github"
	mustCreateIntegration(t, s, b)
	mustCreateIntegration(t, s, a)

	got, err := s.GetIntegration(ctx, "b-slack")
	if err != nil {
		t.Fatalf("GetIntegration: %v", err)
	}
	assertSame(t, "GetIntegration", got, b)

	list, err := s.ListIntegrations(ctx)
	if err != nil {
		t.Fatalf("ListIntegrations: %v", err)
	}
	assertSame(t, "ListIntegrations (sorted by key)", list, []store.Integration{a, b})

	b.Parameters = map[string]any{"signingSecret": "rotated"}
	b.UpdatedAt = updated
	if err := s.UpdateIntegration(ctx, b); err != nil {
		t.Fatalf("UpdateIntegration: %v", err)
	}
	got, err = s.GetIntegration(ctx, "b-slack")
	if err != nil {
		t.Fatalf("GetIntegration after update: %v", err)
	}
	assertSame(t, "GetIntegration after update", got, b)

	if err := s.DeleteIntegration(ctx, "b-slack"); err != nil {
		t.Fatalf("DeleteIntegration: %v", err)
	}
	if _, err := s.GetIntegration(ctx, "b-slack"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetIntegration after delete: err = %v, want ErrNotFound", err)
	}
	list, err = s.ListIntegrations(ctx)
	if err != nil {
		t.Fatalf("ListIntegrations after delete: %v", err)
	}
	assertSame(t, "ListIntegrations after delete", list, []store.Integration{a})

	// A deleted key can be used again.
	mustCreateIntegration(t, s, integration("b-slack"))
}

func testIntegrationErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	list, err := s.ListIntegrations(ctx)
	if err != nil || len(list) != 0 {
		t.Errorf("ListIntegrations of an empty store = %v, %v; want none", list, err)
	}
	mustCreateIntegration(t, s, integration("slack"))
	changed := integration("slack")
	changed.ConnectorKey = "changed"
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"create existing", func() error { return s.CreateIntegration(ctx, changed) }, store.ErrExists},
		{"get missing", func() error { _, err := s.GetIntegration(ctx, "missing"); return err }, store.ErrNotFound},
		{"update missing", func() error { return s.UpdateIntegration(ctx, integration("missing")) }, store.ErrNotFound},
		{"delete missing", func() error { return s.DeleteIntegration(ctx, "missing") }, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	got, err := s.GetIntegration(ctx, "slack")
	if err != nil {
		t.Fatalf("GetIntegration: %v", err)
	}
	assertSame(t, "integration after a refused create", got, integration("slack"))
	if _, err := s.ListIntegrations(ctx); err != nil {
		t.Errorf("ListIntegrations: %v", err)
	}
}

// testCopies checks that a Store keeps no memory shared with its callers, in either direction.
func testCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	in := integration("slack")
	mustCreateIntegration(t, s, in)
	in.Parameters["signingSecret"] = "changed by the caller after create"

	got, err := s.GetIntegration(ctx, "slack")
	if err != nil {
		t.Fatalf("GetIntegration: %v", err)
	}
	assertSame(t, "integration after changing the created value", got, integration("slack"))
	got.Parameters["signingSecret"] = "changed by the caller after get"
	list, err := s.ListIntegrations(ctx)
	if err != nil {
		t.Fatalf("ListIntegrations: %v", err)
	}
	list[0].Parameters["retries"] = 99.0
	got, err = s.GetIntegration(ctx, "slack")
	if err != nil {
		t.Fatalf("GetIntegration: %v", err)
	}
	assertSame(t, "integration after changing returned values", got, integration("slack"))

	c := connection("conn_1", "slack", "cust_1")
	mustCreateConnection(t, s, c)
	gotConn, err := s.GetConnection(ctx, c.ID)
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	gotConn.Credentials["accessToken"] = "changed"
	gotConn.Parameters["nested"].(map[string]any)["a"] = "changed"
	gotConn, err = s.GetConnection(ctx, c.ID)
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	assertSame(t, "connection after changing a returned value", gotConn, c)

	sub := subscription("sub_1", c, "events", "team_id:T1")
	mustCreateSubscription(t, s, sub)
	routes, err := s.MatchRoutes(ctx, "slack", "events", []string{"team_id:T1"})
	if err != nil {
		t.Fatalf("MatchRoutes: %v", err)
	}
	routes["team_id:T1"][0].ConnectionID = "changed"
	gotSub, err := s.GetSubscription(ctx, sub.ID)
	if err != nil {
		t.Fatalf("GetSubscription: %v", err)
	}
	gotSub.Parameters["channel"] = "changed"
	gotSub, err = s.GetSubscription(ctx, sub.ID)
	if err != nil {
		t.Fatalf("GetSubscription: %v", err)
	}
	assertSame(t, "subscription after changing a returned value", gotSub, sub)
	assertRoutes(t, s, "slack", "events", []string{"team_id:T1"}, map[string][]store.Route{"team_id:T1": {store.RouteOf(sub)}})
}

func testConnections(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	mustCreateIntegration(t, s, integration("other"))
	c2, c1 := connection("conn_b", "slack", "cust_1"), connection("conn_a", "slack", "cust_2")
	other := connection("conn_c", "other", "cust_1")
	for _, c := range []store.Connection{c2, c1, other} {
		mustCreateConnection(t, s, c)
	}

	got, err := s.GetConnection(ctx, "conn_b")
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	assertSame(t, "GetConnection", got, c2)

	list, err := s.ListConnections(ctx, "slack")
	if err != nil {
		t.Fatalf("ListConnections: %v", err)
	}
	assertSame(t, "ListConnections (sorted by id, only the integration's)", list, []store.Connection{c1, c2})

	if err := s.DeleteConnection(ctx, "conn_b"); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	if _, err := s.GetConnection(ctx, "conn_b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetConnection after delete: err = %v, want ErrNotFound", err)
	}
	list, err = s.ListConnections(ctx, "slack")
	if err != nil {
		t.Fatalf("ListConnections after delete: %v", err)
	}
	assertSame(t, "ListConnections after delete", list, []store.Connection{c1})

	// A deleted id can be used again, in another integration too.
	mustCreateConnection(t, s, connection("conn_b", "other", "cust_3"))
	list, err = s.ListConnections(ctx, "other")
	if err != nil {
		t.Fatalf("ListConnections: %v", err)
	}
	assertSame(t, "ListConnections of other", list, []store.Connection{connection("conn_b", "other", "cust_3"), other})
}

func testConnectionErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	mustCreateIntegration(t, s, integration("other"))
	c := connection("conn_1", "slack", "cust_1")
	mustCreateConnection(t, s, c)
	mustCreateIntegration(t, s, integration("empty"))
	list, err := s.ListConnections(ctx, "empty")
	if err != nil || len(list) != 0 {
		t.Errorf("ListConnections of an integration without connections = %v, %v; want none", list, err)
	}

	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"create existing", func() error { return s.CreateConnection(ctx, connection("conn_1", "slack", "cust_9")) }, store.ErrExists},
		{"create existing id in another integration", func() error { return s.CreateConnection(ctx, connection("conn_1", "other", "cust_9")) }, store.ErrExists},
		{"create in a missing integration", func() error { return s.CreateConnection(ctx, connection("conn_2", "missing", "cust_1")) }, store.ErrNotFound},
		{"get missing", func() error { _, err := s.GetConnection(ctx, "missing"); return err }, store.ErrNotFound},
		{"list of a missing integration", func() error { _, err := s.ListConnections(ctx, "missing"); return err }, store.ErrNotFound},
		{"delete missing", func() error { return s.DeleteConnection(ctx, "missing") }, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	got, err := s.GetConnection(ctx, "conn_1")
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	assertSame(t, "connection after refused creates", got, c)
	if _, err := s.GetConnection(ctx, "conn_2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetConnection of a connection refused for a missing integration: err = %v, want ErrNotFound", err)
	}
	list, err = s.ListConnections(ctx, "other")
	if err != nil || len(list) != 0 {
		t.Errorf("ListConnections(other) = %v, %v; want none", list, err)
	}
}

func testWebhookTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	mustCreateIntegration(t, s, integration("other"))

	tokens := map[string]string{} // token -> "integration/webhook"
	for _, iw := range [][2]string{{"slack", "events"}, {"slack", "commands"}, {"other", "events"}} {
		token := mustToken(t, s, iw[0], iw[1])
		checkTokenFormat(t, token)
		if again := mustToken(t, s, iw[0], iw[1]); again != token {
			t.Errorf("WebhookToken(%s, %s) changed from %q to %q", iw[0], iw[1], token, again)
		}
		if prev, ok := tokens[token]; ok {
			t.Errorf("WebhookToken(%s, %s) = WebhookToken(%s)", iw[0], iw[1], prev)
		}
		tokens[token] = iw[0] + "/" + iw[1]

		in, wh, err := s.ResolveWebhookToken(ctx, token)
		if err != nil {
			t.Fatalf("ResolveWebhookToken: %v", err)
		}
		if in != iw[0] || wh != iw[1] {
			t.Errorf("ResolveWebhookToken(token of %s/%s) = %s/%s", iw[0], iw[1], in, wh)
		}
	}

	// Updating the integration keeps its tokens.
	in := integration("slack")
	in.UpdatedAt = updated
	if err := s.UpdateIntegration(ctx, in); err != nil {
		t.Fatalf("UpdateIntegration: %v", err)
	}
	for token, iw := range tokens {
		if _, _, err := s.ResolveWebhookToken(ctx, token); err != nil {
			t.Errorf("ResolveWebhookToken(token of %s) after an update: %v", iw, err)
		}
	}
}

func testWebhookTokenErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	token := mustToken(t, s, "slack", "events")
	for _, unknown := range []string{"", "unknown", token[:len(token)-1], token + "0", "../" + token} {
		if _, _, err := s.ResolveWebhookToken(ctx, unknown); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ResolveWebhookToken(%q): err = %v, want ErrNotFound", unknown, err)
		}
	}
	if _, err := s.WebhookToken(ctx, "missing", "events"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("WebhookToken of a missing integration: err = %v, want ErrNotFound", err)
	}
}

func testConcurrentWebhookTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	const n = 16
	tokens := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { tokens[i], errs[i] = s.WebhookToken(ctx, "slack", "events") })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("WebhookToken: %v", errs[i])
		}
		if tokens[i] != tokens[0] {
			t.Fatalf("concurrent WebhookToken calls returned %q and %q", tokens[0], tokens[i])
		}
	}
}

func testSubscriptions(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := seed(t, s)

	// The store fills in IntegrationKey and CustomerID from the connection.
	bare := subscription("sub_5", f.conn2, "events", "user_id:U2")
	bare.IntegrationKey, bare.CustomerID = "", ""
	mustCreateSubscription(t, s, bare)
	sub5 := subscription("sub_5", f.conn2, "events", "user_id:U2")
	got, err := s.GetSubscription(ctx, "sub_5")
	if err != nil {
		t.Fatalf("GetSubscription: %v", err)
	}
	assertSame(t, "GetSubscription of a subscription created without integration and customer", got, sub5)

	// A channel subscription is stored but never routed by MatchRoutes.
	channel := store.Subscription{
		ID: "sub_6", ConnectionID: f.conn1.ID, EventKey: "orders:order.created",
		Status: "subscribed", ChannelKey: "events", EventType: "team_id:T1", CreatedAt: created, UpdatedAt: created,
	}
	mustCreateSubscription(t, s, channel)
	channel.IntegrationKey, channel.CustomerID = f.conn1.IntegrationKey, f.conn1.CustomerID

	got, err = s.GetSubscription(ctx, f.sub1.ID)
	if err != nil {
		t.Fatalf("GetSubscription: %v", err)
	}
	assertSame(t, "GetSubscription", got, f.sub1)

	list, err := s.ListSubscriptions(ctx, f.conn1.ID)
	if err != nil {
		t.Fatalf("ListSubscriptions: %v", err)
	}
	assertSame(t, "ListSubscriptions (sorted by id, only the connection's)", list, []store.Subscription{f.sub1, f.sub3, channel})

	mustCreateConnection(t, s, connection("conn_9", "slack", "cust_9"))
	list, err = s.ListSubscriptions(ctx, "conn_9")
	if err != nil || len(list) != 0 {
		t.Errorf("ListSubscriptions of a connection without subscriptions = %v, %v; want none", list, err)
	}

	assertRoutes(t, s, "slack", "events", []string{"team_id:T1", "user_id:U1", "user_id:U2"}, map[string][]store.Route{
		"team_id:T1": {store.RouteOf(f.sub1), store.RouteOf(f.sub2)},
		"user_id:U1": {store.RouteOf(f.sub3)},
		"user_id:U2": {store.RouteOf(sub5)},
	})
}

func testSubscriptionErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := seed(t, s)

	otherIntegration := subscription("sub_10", f.conn1, "events", "x")
	otherIntegration.IntegrationKey = "other"
	otherCustomer := subscription("sub_11", f.conn1, "events", "x")
	otherCustomer.CustomerID = "cust_2"
	both := subscription("sub_12", f.conn1, "events", "x")
	both.ChannelKey = "orders"
	movedToConn2 := f.sub1
	movedToConn2.ConnectionID = f.conn2.ID
	movedToConn2.CustomerID = f.conn2.CustomerID

	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"create existing", func() error { return s.CreateSubscription(ctx, subscription("sub_1", f.conn2, "events", "x")) }, store.ErrExists},
		{"create existing id in another integration", func() error {
			return s.CreateSubscription(ctx, subscription("sub_1", f.otherConn, "events", "x"))
		}, store.ErrExists},
		{"create for a missing connection", func() error {
			return s.CreateSubscription(ctx, subscription("sub_13", connection("missing", "slack", "cust_1"), "events", "x"))
		}, store.ErrNotFound},
		{"create with another integration than the connection's", func() error { return s.CreateSubscription(ctx, otherIntegration) }, store.ErrInvalid},
		{"create with another customer than the connection's", func() error { return s.CreateSubscription(ctx, otherCustomer) }, store.ErrInvalid},
		{"create with a webhook key and a channel key", func() error { return s.CreateSubscription(ctx, both) }, store.ErrInvalid},
		{"get missing", func() error { _, err := s.GetSubscription(ctx, "missing"); return err }, store.ErrNotFound},
		{"list of a missing connection", func() error { _, err := s.ListSubscriptions(ctx, "missing"); return err }, store.ErrNotFound},
		{"update missing", func() error { return s.UpdateSubscription(ctx, subscription("missing", f.conn1, "events", "x")) }, store.ErrNotFound},
		{"update moving to another connection", func() error { return s.UpdateSubscription(ctx, movedToConn2) }, store.ErrInvalid},
		{"delete missing", func() error { return s.DeleteSubscription(ctx, "missing") }, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}

	// Nothing refused was stored or indexed.
	for _, id := range []string{"sub_10", "sub_11", "sub_12", "sub_13", "missing"} {
		if _, err := s.GetSubscription(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSubscription(%s) of a refused subscription: err = %v, want ErrNotFound", id, err)
		}
	}
	got, err := s.GetSubscription(ctx, "sub_1")
	if err != nil {
		t.Fatalf("GetSubscription: %v", err)
	}
	assertSame(t, "subscription after refused writes", got, f.sub1)
	assertRoutes(t, s, "slack", "events", []string{"team_id:T1", "x"}, map[string][]store.Route{
		"team_id:T1": {store.RouteOf(f.sub1), store.RouteOf(f.sub2)},
	})
	assertRoutes(t, s, "other", "events", []string{"x"}, map[string][]store.Route{})
}

func testUpdateSubscription(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := seed(t, s)

	moved := f.sub1
	moved.Selector = "team_id:T2"
	moved.EventKey = "reaction-added"
	moved.Parameters = map[string]any{"channel": "C2"}
	moved.UpdatedAt = updated
	if err := s.UpdateSubscription(ctx, moved); err != nil {
		t.Fatalf("UpdateSubscription: %v", err)
	}
	got, err := s.GetSubscription(ctx, moved.ID)
	if err != nil {
		t.Fatalf("GetSubscription: %v", err)
	}
	assertSame(t, "GetSubscription after update", got, moved)
	assertRoutes(t, s, "slack", "events", []string{"team_id:T1", "team_id:T2"}, map[string][]store.Route{
		"team_id:T1": {store.RouteOf(f.sub2)},
		"team_id:T2": {store.RouteOf(moved)},
	})

	// Another webhook key.
	moved.GlobalWebhookKey = "commands"
	if err := s.UpdateSubscription(ctx, moved); err != nil {
		t.Fatalf("UpdateSubscription: %v", err)
	}
	assertRoutes(t, s, "slack", "events", []string{"team_id:T2"}, map[string][]store.Route{})
	assertRoutes(t, s, "slack", "commands", []string{"team_id:T2"}, map[string][]store.Route{"team_id:T2": {store.RouteOf(moved)}})

	// Into a channel subscription: unindexed; and back.
	channel := moved
	channel.GlobalWebhookKey, channel.Selector, channel.ChannelKey, channel.EventType = "", "", "orders", "order.created"
	if err := s.UpdateSubscription(ctx, channel); err != nil {
		t.Fatalf("UpdateSubscription to a channel subscription: %v", err)
	}
	assertRoutes(t, s, "slack", "commands", []string{"team_id:T2", ""}, map[string][]store.Route{})
	if err := s.UpdateSubscription(ctx, f.sub1); err != nil {
		t.Fatalf("UpdateSubscription back: %v", err)
	}
	assertRoutes(t, s, "slack", "events", []string{"team_id:T1"}, map[string][]store.Route{"team_id:T1": {store.RouteOf(f.sub1), store.RouteOf(f.sub2)}})

	// The store keeps IntegrationKey and CustomerID when the update leaves them empty.
	bare := f.sub1
	bare.IntegrationKey, bare.CustomerID, bare.Status = "", "", "paused"
	if err := s.UpdateSubscription(ctx, bare); err != nil {
		t.Fatalf("UpdateSubscription: %v", err)
	}
	want := f.sub1
	want.Status = "paused"
	got, err = s.GetSubscription(ctx, want.ID)
	if err != nil {
		t.Fatalf("GetSubscription: %v", err)
	}
	assertSame(t, "GetSubscription after an update without integration and customer", got, want)
	list, err := s.ListSubscriptions(ctx, f.conn1.ID)
	if err != nil {
		t.Fatalf("ListSubscriptions: %v", err)
	}
	assertSame(t, "ListSubscriptions after updates", list, []store.Subscription{want, f.sub3})
}

func testDeleteSubscription(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := seed(t, s)
	if err := s.DeleteSubscription(ctx, f.sub1.ID); err != nil {
		t.Fatalf("DeleteSubscription: %v", err)
	}
	if _, err := s.GetSubscription(ctx, f.sub1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSubscription after delete: err = %v, want ErrNotFound", err)
	}
	list, err := s.ListSubscriptions(ctx, f.conn1.ID)
	if err != nil {
		t.Fatalf("ListSubscriptions: %v", err)
	}
	assertSame(t, "ListSubscriptions after delete", list, []store.Subscription{f.sub3})
	assertRoutes(t, s, "slack", "events", []string{"team_id:T1", "user_id:U1"}, map[string][]store.Route{
		"team_id:T1": {store.RouteOf(f.sub2)},
		"user_id:U1": {store.RouteOf(f.sub3)},
	})
	if err := s.DeleteSubscription(ctx, f.sub2.ID); err != nil {
		t.Fatalf("DeleteSubscription: %v", err)
	}
	assertRoutes(t, s, "slack", "events", []string{"team_id:T1"}, map[string][]store.Route{})
	// The other integration's subscription with the same selector is untouched.
	assertRoutes(t, s, "other", "events", []string{"team_id:T1"}, map[string][]store.Route{"team_id:T1": {store.RouteOf(f.otherSub)}})

	// A deleted id can be used again.
	mustCreateSubscription(t, s, f.sub1)
	assertRoutes(t, s, "slack", "events", []string{"team_id:T1"}, map[string][]store.Route{"team_id:T1": {store.RouteOf(f.sub1)}})
}

func testMatchRoutes(t *testing.T, s store.Store) {
	f := seed(t, s)
	mustToken(t, s, "slack", "events")
	commands := subscription("sub_7", f.conn1, "commands", "team_id:T1")
	mustCreateSubscription(t, s, commands)
	channel := store.Subscription{ID: "sub_8", ConnectionID: f.conn2.ID, EventKey: "e", ChannelKey: "events", EventType: "team_id:T1"}
	mustCreateSubscription(t, s, channel)

	tests := []struct {
		name        string
		integration string
		webhook     string
		selectors   []string
		want        map[string][]store.Route
	}{
		{"one selector", "slack", "events", []string{"team_id:T1"}, map[string][]store.Route{
			"team_id:T1": {store.RouteOf(f.sub1), store.RouteOf(f.sub2)},
		}},
		{"several selectors, unmatched absent", "slack", "events", []string{"user_id:U1", "nobody", "team_id:T1"}, map[string][]store.Route{
			"team_id:T1": {store.RouteOf(f.sub1), store.RouteOf(f.sub2)},
			"user_id:U1": {store.RouteOf(f.sub3)},
		}},
		{"repeated selector", "slack", "events", []string{"user_id:U1", "user_id:U1"}, map[string][]store.Route{
			"user_id:U1": {store.RouteOf(f.sub3)},
		}},
		{"other webhook key", "slack", "commands", []string{"team_id:T1", "user_id:U1"}, map[string][]store.Route{
			"team_id:T1": {store.RouteOf(commands)},
		}},
		{"other integration", "other", "events", []string{"team_id:T1", "user_id:U1"}, map[string][]store.Route{
			"team_id:T1": {store.RouteOf(f.otherSub)},
		}},
		{"unknown webhook key", "slack", "nothing", []string{"team_id:T1"}, map[string][]store.Route{}},
		{"unknown integration", "missing", "events", []string{"team_id:T1"}, map[string][]store.Route{}},
		{"no selectors", "slack", "events", nil, map[string][]store.Route{}},
		{"selector is a prefix of stored ones", "slack", "events", []string{"team_id:", "team_id", "user_id:U"}, map[string][]store.Route{}},
		{"channel subscriptions never match", "slack", "", []string{"team_id:T1", ""}, map[string][]store.Route{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertRoutes(t, s, tt.integration, tt.webhook, tt.selectors, tt.want)
		})
	}
}

// testMatchRoutesEdgeCases stores selectors that could confuse a key layout: separators,
// NUL bytes, hash-tag braces, glob characters, the empty string.
func testMatchRoutesEdgeCases(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	c := connection("conn_1", "slack", "cust_1")
	mustCreateConnection(t, s, c)
	selectors := []string{"", "a", "a\x00", "a\x00b", "a:b", "a:b:c", "{a}", "}{", "a*", "a?", "[a]", "ünïcode ✓", "\xff\xfe", "x\ny"}
	want := map[string][]store.Route{}
	for i, sel := range selectors {
		sub := subscription(fmt.Sprintf("sub_%02d", i), c, "events", sel)
		mustCreateSubscription(t, s, sub)
		want[sel] = []store.Route{store.RouteOf(sub)}
	}
	assertRoutes(t, s, "slack", "events", selectors, want)
	for _, sel := range selectors {
		assertRoutes(t, s, "slack", "events", []string{sel}, map[string][]store.Route{sel: want[sel]})
	}
	assertRoutes(t, s, "slack", "events", []string{"a\x00b\x00", "*", "a\x00c", "b"}, map[string][]store.Route{})

	got, err := s.GetSubscription(ctx, "sub_03")
	if err != nil {
		t.Fatalf("GetSubscription: %v", err)
	}
	if got.Selector != "a\x00b" {
		t.Errorf("selector = %q, want %q", got.Selector, "a\x00b")
	}
}

func testDeleteConnection(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := seed(t, s)
	if err := s.DeleteConnection(ctx, f.conn1.ID); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	for _, sub := range []store.Subscription{f.sub1, f.sub3} {
		if _, err := s.GetSubscription(ctx, sub.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSubscription(%s) after deleting its connection: err = %v, want ErrNotFound", sub.ID, err)
		}
	}
	if _, err := s.ListSubscriptions(ctx, f.conn1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ListSubscriptions of a deleted connection: err = %v, want ErrNotFound", err)
	}
	assertRoutes(t, s, "slack", "events", []string{"team_id:T1", "user_id:U1"}, map[string][]store.Route{
		"team_id:T1": {store.RouteOf(f.sub2)},
	})
	got, err := s.GetSubscription(ctx, f.sub2.ID)
	if err != nil {
		t.Fatalf("GetSubscription of another connection's subscription: %v", err)
	}
	assertSame(t, "another connection's subscription", got, f.sub2)

	// Recreating the connection brings none of its old subscriptions back.
	mustCreateConnection(t, s, f.conn1)
	list, err := s.ListSubscriptions(ctx, f.conn1.ID)
	if err != nil || len(list) != 0 {
		t.Errorf("ListSubscriptions of a recreated connection = %v, %v; want none", list, err)
	}
	mustCreateSubscription(t, s, f.sub1)
	assertRoutes(t, s, "slack", "events", []string{"team_id:T1", "user_id:U1"}, map[string][]store.Route{
		"team_id:T1": {store.RouteOf(f.sub1), store.RouteOf(f.sub2)},
	})
}

func testDeleteIntegration(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := seed(t, s)
	token := mustToken(t, s, "slack", "events")
	otherToken := mustToken(t, s, "other", "events")
	if err := s.DeleteIntegration(ctx, "slack"); err != nil {
		t.Fatalf("DeleteIntegration: %v", err)
	}

	for _, c := range []store.Connection{f.conn1, f.conn2} {
		if _, err := s.GetConnection(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetConnection(%s) after deleting its integration: err = %v, want ErrNotFound", c.ID, err)
		}
	}
	for _, sub := range []store.Subscription{f.sub1, f.sub2, f.sub3} {
		if _, err := s.GetSubscription(ctx, sub.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSubscription(%s) after deleting its integration: err = %v, want ErrNotFound", sub.ID, err)
		}
	}
	if _, err := s.ListConnections(ctx, "slack"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ListConnections of a deleted integration: err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.ResolveWebhookToken(ctx, token); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResolveWebhookToken of a deleted integration's token: err = %v, want ErrNotFound", err)
	}
	assertRoutes(t, s, "slack", "events", []string{"team_id:T1", "user_id:U1"}, map[string][]store.Route{})

	// The other integration is untouched.
	if in, _, err := s.ResolveWebhookToken(ctx, otherToken); err != nil || in != "other" {
		t.Errorf("ResolveWebhookToken(other's token) = %q, %v", in, err)
	}
	if _, err := s.GetConnection(ctx, f.otherConn.ID); err != nil {
		t.Errorf("GetConnection(other's connection): %v", err)
	}
	assertRoutes(t, s, "other", "events", []string{"team_id:T1"}, map[string][]store.Route{"team_id:T1": {store.RouteOf(f.otherSub)}})

	// Recreating the integration brings nothing back, and gets a new token.
	mustCreateIntegration(t, s, f.integration)
	list, err := s.ListConnections(ctx, "slack")
	if err != nil || len(list) != 0 {
		t.Errorf("ListConnections of a recreated integration = %v, %v; want none", list, err)
	}
	assertRoutes(t, s, "slack", "events", []string{"team_id:T1"}, map[string][]store.Route{})
	if again := mustToken(t, s, "slack", "events"); again == token {
		t.Errorf("a recreated integration got its deleted predecessor's token")
	}
	if _, _, err := s.ResolveWebhookToken(ctx, token); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResolveWebhookToken of the deleted predecessor's token: err = %v, want ErrNotFound", err)
	}
	// Ids of the deleted records can be used again.
	mustCreateConnection(t, s, f.conn1)
	mustCreateSubscription(t, s, f.sub1)
}

func testConcurrentSubscriptions(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateIntegration(t, s, integration("slack"))
	conns := []store.Connection{connection("conn_1", "slack", "cust_1"), connection("conn_2", "slack", "cust_2")}
	for _, c := range conns {
		mustCreateConnection(t, s, c)
	}
	const workers, perWorker, selectors = 20, 10, 7
	want := map[string][]store.Route{}
	var all []string
	for i := range selectors {
		all = append(all, fmt.Sprintf("team_id:T%d", i))
	}
	subs := make([]store.Subscription, 0, workers*perWorker)
	for i := range workers * perWorker {
		sub := subscription(fmt.Sprintf("sub_%04d", i), conns[i%2], "events", all[i%selectors])
		subs = append(subs, sub)
		want[sub.Selector] = append(want[sub.Selector], store.RouteOf(sub))
	}

	errs := make(chan error, len(subs))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for _, sub := range subs[w*perWorker : (w+1)*perWorker] {
				if err := s.CreateSubscription(ctx, sub); err != nil {
					errs <- fmt.Errorf("CreateSubscription(%s): %w", sub.ID, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assertRoutes(t, s, "slack", "events", all, want)
	total := 0
	for _, c := range conns {
		list, err := s.ListSubscriptions(ctx, c.ID)
		if err != nil {
			t.Fatalf("ListSubscriptions: %v", err)
		}
		total += len(list)
	}
	if total != len(subs) {
		t.Errorf("ListSubscriptions found %d subscriptions, want %d", total, len(subs))
	}

	// Concurrent deletes unindex every one of them.
	errs = make(chan error, len(subs))
	for w := range workers {
		wg.Go(func() {
			for _, sub := range subs[w*perWorker : (w+1)*perWorker] {
				if err := s.DeleteSubscription(ctx, sub.ID); err != nil {
					errs <- fmt.Errorf("DeleteSubscription(%s): %w", sub.ID, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assertRoutes(t, s, "slack", "events", all, map[string][]store.Route{})
}

func testInvalidKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := seed(t, s)
	bad := []string{"", "a:b", "a{b}", "a b", "a\x00b", "ü", strings.Repeat("a", 129)}
	for _, key := range bad {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			writes := []struct {
				name string
				call func() error
			}{
				{"CreateIntegration", func() error { return s.CreateIntegration(ctx, integration(key)) }},
				{"CreateConnection id", func() error { return s.CreateConnection(ctx, connection(key, "slack", "cust_1")) }},
				{"CreateSubscription id", func() error { return s.CreateSubscription(ctx, subscription(key, f.conn1, "events", "x")) }},
				{"CreateSubscription webhook key", func() error { return s.CreateSubscription(ctx, subscription("sub_x", f.conn1, key, "x")) }},
				{"WebhookToken webhook key", func() error { _, err := s.WebhookToken(ctx, "slack", key); return err }},
			}
			if key == "" {
				// An empty webhook key means "not a global-webhook subscription".
				writes = writes[:3]
			}
			for _, w := range writes {
				if err := w.call(); !errors.Is(err, store.ErrInvalid) {
					t.Errorf("%s: err = %v, want ErrInvalid", w.name, err)
				}
			}
			reads := []struct {
				name string
				call func() error
			}{
				{"GetIntegration", func() error { _, err := s.GetIntegration(ctx, key); return err }},
				{"GetConnection", func() error { _, err := s.GetConnection(ctx, key); return err }},
				{"GetSubscription", func() error { _, err := s.GetSubscription(ctx, key); return err }},
				{"ListConnections", func() error { _, err := s.ListConnections(ctx, key); return err }},
				{"ListSubscriptions", func() error { _, err := s.ListSubscriptions(ctx, key); return err }},
				{"DeleteIntegration", func() error { return s.DeleteIntegration(ctx, key) }},
				{"DeleteConnection", func() error { return s.DeleteConnection(ctx, key) }},
				{"DeleteSubscription", func() error { return s.DeleteSubscription(ctx, key) }},
				{"WebhookToken integration key", func() error { _, err := s.WebhookToken(ctx, key, "events"); return err }},
			}
			for _, r := range reads {
				if err := r.call(); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s: err = %v, want ErrNotFound", r.name, err)
				}
			}
			assertRoutes(t, s, key, "events", []string{"team_id:T1"}, map[string][]store.Route{})
			assertRoutes(t, s, "slack", key, []string{"team_id:T1"}, map[string][]store.Route{})
		})
	}
	list, err := s.ListIntegrations(ctx)
	if err != nil {
		t.Fatalf("ListIntegrations: %v", err)
	}
	assertSame(t, "ListIntegrations after refused creates", list, []store.Integration{f.otherIntegration, f.integration})
}

func testCanceledContext(t *testing.T, s store.Store) {
	mustCreateIntegration(t, s, integration("slack"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.GetIntegration(ctx, "slack"); !errors.Is(err, context.Canceled) {
		t.Errorf("GetIntegration with a canceled context: err = %v, want context.Canceled", err)
	}
	if err := s.CreateIntegration(ctx, integration("other")); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateIntegration with a canceled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.MatchRoutes(ctx, "slack", "events", []string{"x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("MatchRoutes with a canceled context: err = %v, want context.Canceled", err)
	}
}

func mustCreateIntegration(t testing.TB, s store.Store, in store.Integration) {
	t.Helper()
	if err := s.CreateIntegration(t.Context(), in); err != nil {
		t.Fatalf("CreateIntegration(%s): %v", in.Key, err)
	}
}

func mustCreateConnection(t testing.TB, s store.Store, c store.Connection) {
	t.Helper()
	if err := s.CreateConnection(t.Context(), c); err != nil {
		t.Fatalf("CreateConnection(%s): %v", c.ID, err)
	}
}

func mustCreateSubscription(t testing.TB, s store.Store, sub store.Subscription) {
	t.Helper()
	if err := s.CreateSubscription(t.Context(), sub); err != nil {
		t.Fatalf("CreateSubscription(%s): %v", sub.ID, err)
	}
}

func mustToken(t testing.TB, s store.Store, integrationKey, webhookKey string) string {
	t.Helper()
	token, err := s.WebhookToken(t.Context(), integrationKey, webhookKey)
	if err != nil {
		t.Fatalf("WebhookToken(%s, %s): %v", integrationKey, webhookKey, err)
	}
	return token
}

// checkTokenFormat requires at least 128 bits in hex or unpadded base64url: tokens go into
// URL paths and must not be guessable.
func checkTokenFormat(t testing.TB, token string) {
	t.Helper()
	if b, err := hex.DecodeString(token); err == nil {
		if len(b) < 16 {
			t.Errorf("token %q holds %d bits, want at least 128", token, len(b)*8)
		}
		return
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Errorf("token %q is neither hex nor unpadded base64url", token)
		return
	}
	if len(b) < 16 {
		t.Errorf("token %q holds %d bits, want at least 128", token, len(b)*8)
	}
}

func assertRoutes(t testing.TB, s store.Store, integrationKey, webhookKey string, selectors []string, want map[string][]store.Route) {
	t.Helper()
	got, err := s.MatchRoutes(t.Context(), integrationKey, webhookKey, selectors)
	if err != nil {
		t.Fatalf("MatchRoutes(%s, %s, %q): %v", integrationKey, webhookKey, selectors, err)
	}
	if got == nil {
		t.Fatalf("MatchRoutes(%s, %s, %q) returned a nil map", integrationKey, webhookKey, selectors)
	}
	for _, routes := range want {
		sort.Slice(routes, func(i, j int) bool { return routes[i].SubscriptionID < routes[j].SubscriptionID })
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("MatchRoutes(%s, %s, %q)\n got %s\nwant %s", integrationKey, webhookKey, selectors, jsonOf(got), jsonOf(want))
	}
}

// assertSame compares records by their JSON encoding, the form both stores keep them in:
// numbers in parameters come back as float64 and times without a monotonic reading.
func assertSame(t testing.TB, what string, got, want any) {
	t.Helper()
	if g, w := jsonOf(got), jsonOf(want); g != w {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}
