package channel_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-run/switchboard/runtime/bus"
	"github.com/switchboard-run/switchboard/runtime/channel"
	"github.com/switchboard-run/switchboard/runtime/server"
	"github.com/switchboard-run/switchboard/runtime/server/servertest"
	"github.com/switchboard-run/switchboard/runtime/store/embedded"
)

// The end-to-end tests run the real server (runtime/server) on a temporary data directory:
// embedded store, in-process NATS exposed on a random loopback port, the test connector of
// testdata/channel, and a FakeAPI for its sse and polling channels.

const (
	publicURL     = "https://hooks.example.com"
	subjectPrefix = "events.cust_42.apps.app.event_received.shop-prod."
)

type e2e struct {
	srv  *server.Server
	stop func()
	log  *channel.LogBuffer
}

func startServer(t *testing.T, dataDir string) *e2e {
	t.Helper()
	logs := new(channel.LogBuffer)
	srv, err := server.New(t.Context(), server.Config{
		Listen:               "127.0.0.1:0",
		PublicURL:            publicURL,
		ConnectorsDir:        filepath.Join("..", "..", "testdata", "channel", "connectors"),
		DataDir:              dataDir,
		EmbeddedNATSListen:   "127.0.0.1:0",
		AllowPrivateNetworks: true,
		MaxBody:              4096,
		ChannelBackoff:       20 * time.Millisecond,
		ChannelReadTimeout:   2 * time.Second,
		ChannelResync:        200 * time.Millisecond,
		Logger:               channel.NewTestLogger(t, logs),
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	return &e2e{srv: srv, log: logs, stop: servertest.Run(t, srv)}
}

// collect reads the routed events the bus stored, from the first.
func (e *e2e) collect(t *testing.T) *channel.Collector {
	t.Helper()
	nc, err := nats.Connect(e.srv.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return channel.Collect(t, js, bus.DefaultStreamName, "events.*.apps.app.event_received.>")
}

func (e *e2e) do(t *testing.T, method, path string, header http.Header, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header != nil {
		req.Header = header
	} else if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *e2e) must(t *testing.T, want int, method, path, body string) []byte {
	t.Helper()
	status, b := e.do(t, method, path, nil, body)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	return b
}

// setUp installs the test connector as "shop-prod" with connection conn_1 of cust_42.
func (e *e2e) setUp(t *testing.T, api *channel.FakeAPI) {
	t.Helper()
	e.must(t, 201, "POST", "/v1/integrations", `{"key":"shop-prod","connectorKey":"shop","parameters":{}}`)
	e.must(t, 201, "POST", "/v1/connections", `{"id":"conn_1","integrationKey":"shop-prod","customerId":"cust_42",`+
		`"credentials":{"accessToken":"`+api.Token+`"},"parameters":{"apiHost":"`+api.Host()+`"}}`)
}

func (e *e2e) subscribe(t *testing.T, eventUID string) string {
	t.Helper()
	var sub struct{ ID string }
	json.Unmarshal(e.must(t, 201, "POST", "/v1/apps/shop-prod/events/subscribe", `{"eventUid":"`+eventUID+`","connectionId":"conn_1"}`), &sub)
	return sub.ID
}

func TestServerChannelRoutes(t *testing.T) {
	api := channel.NewFakeAPI(t)
	e := startServer(t, t.TempDir())
	e.setUp(t, api)
	msgs := e.collect(t)

	// The connection's channels, with URLs for those that are pushed to.
	var chans []struct{ Key, Kind, URI string }
	json.Unmarshal(e.must(t, 200, "GET", "/v1/connections/conn_1/channels", ""), &chans)
	var kinds []string
	uris := map[string]string{}
	for _, c := range chans {
		kinds = append(kinds, c.Key+":"+c.Kind)
		uris[c.Key] = c.URI
	}
	if want := []string{"cloud:cloudevents", "orders:webhook", "poll:polling", "pollids:polling", "stream:sse"}; !slices.Equal(kinds, want) {
		t.Errorf("channels = %v, want %v", kinds, want)
	}
	for key, uri := range uris {
		pushed := key == "orders" || key == "cloud"
		if pushed != strings.HasPrefix(uri, publicURL+"/hooks/") || (!pushed && uri != "") {
			t.Errorf("channel %s: uri %q", key, uri)
		}
	}
	if uris["orders"] == uris["cloud"] {
		t.Errorf("two channels share the URI %s", uris["orders"])
	}
	var again []struct{ Key, URI string }
	json.Unmarshal(e.must(t, 200, "GET", "/v1/connections/conn_1/channels", ""), &again)
	if again[1].URI != uris["orders"] {
		t.Errorf("the URI changed between two calls: %s, then %s", uris["orders"], again[1].URI)
	}
	orders := strings.TrimPrefix(uris["orders"], publicURL)

	// Subscribing.
	e.must(t, 201, "POST", "/v1/integrations", `{"key":"other-app","connectorKey":"shop","parameters":{}}`)
	for _, tt := range []struct{ name, path, body string }{
		{"no eventUid", "/v1/apps/shop-prod/events/subscribe", `{"connectionId":"conn_1"}`},
		{"no event type", "/v1/apps/shop-prod/events/subscribe", `{"eventUid":"orders","connectionId":"conn_1"}`},
		{"empty event type", "/v1/apps/shop-prod/events/subscribe", `{"eventUid":"orders:","connectionId":"conn_1"}`},
		{"unknown channel", "/v1/apps/shop-prod/events/subscribe", `{"eventUid":"nope:order.created","connectionId":"conn_1"}`},
		{"unknown event type", "/v1/apps/shop-prod/events/subscribe", `{"eventUid":"orders:order.deleted","connectionId":"conn_1"}`},
		{"unknown connection", "/v1/apps/shop-prod/events/subscribe", `{"eventUid":"orders:order.created","connectionId":"conn_9"}`},
		{"another app's connection", "/v1/apps/other-app/events/subscribe", `{"eventUid":"orders:order.created","connectionId":"conn_1"}`},
		{"bad app id", "/v1/apps/bad.app/events/subscribe", `{"eventUid":"orders:order.created","connectionId":"conn_1"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, b := e.do(t, "POST", tt.path, nil, tt.body)
			if status != 400 || !strings.Contains(string(b), `"invalid_request"`) {
				t.Errorf("status %d %s, want 400 invalid_request", status, b)
			}
		})
	}
	if status, b := e.do(t, "POST", "/v1/apps/no-such-app/events/subscribe", nil, `{"eventUid":"orders:order.created","connectionId":"conn_1"}`); status != 404 {
		t.Errorf("an unknown app: status %d %s, want 404", status, b)
	}
	var sub map[string]any
	json.Unmarshal(e.must(t, 201, "POST", "/v1/apps/shop-prod/events/subscribe", `{"eventUid":"orders:order.created","connectionId":"conn_1"}`), &sub)
	for k, want := range map[string]any{"connectionId": "conn_1", "integrationKey": "shop-prod", "customerId": "cust_42",
		"eventKey": "order.created", "status": "subscribed", "channelKey": "orders", "eventType": "order.created"} {
		if sub[k] != want {
			t.Errorf("subscription %s = %v, want %v", k, sub[k], want)
		}
	}
	subID, _ := sub["id"].(string)
	if !strings.HasPrefix(subID, "sub_") || sub["createdAt"] == nil || sub["globalWebhookKey"] != nil {
		t.Errorf("subscription = %v", sub)
	}
	json.Unmarshal(e.must(t, 200, "GET", "/v1/event-subscriptions/"+subID, ""), &sub)
	if sub["channelKey"] != "orders" {
		t.Errorf("GET subscription = %v", sub)
	}

	// The ingest route.
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	for _, tt := range []struct {
		name, path, body string
		status           int
		want             string // in the body
	}{
		{"unknown id", "/hooks/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", `{}`, 404, `"not_found"`},
		{"an sse channel has no URL", "/hooks/", `{}`, 404, ``},
		{"over the limit", orders, `{"pad":"` + strings.Repeat("x", 5000) + `"}`, 413, `"payload_too_large"`},
		{"not JSON", orders, `{"event":`, 400, `"invalid_request"`},
		{"no match", orders, `{"event":{"type":"order.deleted","id":"o_0"}}`, 200, `"status":"ignored"`},
		{"schema failure", orders, `{"event":{"type":"order.created","id":"o_9","data":{"total":"12"}}}`, 422, `"payload_rejected"`},
		{"an event nobody subscribed to", orders, `{"event":{"type":"order.updated","id":"o_1","data":{}}}`, 200, `"status":"no_subscribers"`},
		{"published", orders, `{"event":{"type":"order.created","id":"o_1","data":{"total":12.5}}}`, 200, `"published":1`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, b := e.do(t, "POST", tt.path, jsonHeader, tt.body)
			if status != tt.status || !strings.Contains(string(b), tt.want) {
				t.Errorf("status %d %s, want %d with %s", status, b, tt.status, tt.want)
			}
		})
	}
	channel.AssertMessages(t, msgs.Wait(t, 1), [2]string{subjectPrefix + "orders.order.created",
		channel.Envelope("conn_1", subID, "orders", "order.created", "o_1", `{"total":12.5}`)})

	// CloudEvents through HTTP, binary mode.
	cloud := strings.TrimPrefix(uris["cloud"], publicURL)
	subCE := e.subscribe(t, "cloud:com.example.order.shipped")
	status, b := e.do(t, "POST", cloud, http.Header{"Content-Type": {"application/json"}, "Ce-Specversion": {"1.0"},
		"Ce-Type": {"com.example.order.shipped"}, "Ce-Source": {"/shop"}, "Ce-Id": {"ce-1"}}, `{"orderId":"o_1"}`)
	if status != 200 {
		t.Fatalf("cloudevent: status %d %s", status, b)
	}
	channel.AssertMessages(t, msgs.Wait(t, 2)[1:], [2]string{subjectPrefix + "cloud.com.example.order.shipped",
		channel.Envelope("conn_1", subCE, "cloud", "com.example.order.shipped", "ce-1", `{"orderId":"o_1"}`)})

	// Unsubscribing; deleting the connection kills its URLs.
	e.must(t, 204, "DELETE", "/v1/event-subscriptions/"+subID, "")
	if status, b := e.do(t, "POST", orders, jsonHeader, `{"event":{"type":"order.created","id":"o_2","data":{"total":1}}}`); status != 200 || !strings.Contains(string(b), `"no_subscribers"`) {
		t.Errorf("after unsubscribing: status %d %s", status, b)
	}
	e.must(t, 204, "DELETE", "/v1/connections/conn_1", "")
	if status, _ := e.do(t, "POST", orders, jsonHeader, `{}`); status != 404 {
		t.Errorf("a deleted connection's channel URL: status %d, want 404", status)
	}

	// Channel ids are secrets: the log shows none of them, nor the connection's credentials.
	e.stop()
	logs := e.log.String()
	for _, secret := range []string{orders, cloud, api.Token} {
		if strings.Contains(logs, strings.TrimPrefix(secret, "/hooks/")) {
			t.Errorf("the log holds the secret %q", secret)
		}
	}
	if !strings.Contains(logs, "/hooks/[redacted]") {
		t.Errorf("the log has no redacted /hooks request line")
	}
}

// TestServerRestart stops the server while an SSE and a polling worker run, lets the API
// move on meanwhile, and starts a new server on the same data directory: the workers come
// back by themselves and every event reaches the bus exactly once, none replayed, none
// skipped.
func TestServerRestart(t *testing.T) {
	api := channel.NewFakeAPI(t)
	dataDir := t.TempDir()
	e := startServer(t, dataDir)
	e.setUp(t, api)

	api.AddEvents(channel.Tick(1), channel.Tick(2))
	item := func(id, at string) map[string]any { return map[string]any{"id": id, "updated_at": at} }
	listing := []any{item("o_1", "2026-11-22T10:00:01Z")}
	api.SetListing("/api/orders", map[string]any{"items": listing})
	tickSub := e.subscribe(t, "stream:tick")
	pollSub := e.subscribe(t, "poll:order.changed")

	msgs := e.collect(t)
	msgs.Wait(t, 2) // ticks 1 and 2; the first poll is the baseline and publishes nothing
	waitFor(t, "the baseline poll", func() bool { return api.Hits("/api/orders") >= 2 })
	listing = append([]any{item("o_2", "2026-11-22T10:00:02Z")}, listing...)
	api.SetListing("/api/orders", map[string]any{"items": listing})
	msgs.Wait(t, 3)

	e.stop()
	total, _ := api.StreamConns()
	pollsBefore := api.Hits("/api/orders")
	// While nothing runs, the API moves on.
	api.AddEvents(channel.Tick(3))
	listing = append([]any{item("o_3", "2026-11-22T10:00:03Z")}, listing...)
	api.SetListing("/api/orders", map[string]any{"items": listing})

	e = startServer(t, dataDir) // no subscribe calls from here on
	msgs = e.collect(t)         // the whole stream again, from its first message
	msgs.Wait(t, 5)
	// A barrier: once these are on the bus, anything replayed would be too.
	api.AddEvents(channel.Tick(4))
	listing = append([]any{item("o_4", "2026-11-22T10:00:04Z")}, listing...)
	api.SetListing("/api/orders", map[string]any{"items": listing})
	all := msgs.Wait(t, 7)
	time.Sleep(300 * time.Millisecond) // a few more polls and heartbeats: nothing else may come
	if extra := msgs.All()[len(all):]; len(extra) > 0 {
		t.Errorf("messages after the barrier:\n%s", channel.Dump(extra))
	}

	var ticks, orders []channel.Msg
	for _, m := range msgs.All() {
		switch m.Subject {
		case subjectPrefix + "stream.tick":
			ticks = append(ticks, m)
		case subjectPrefix + "poll.order.changed":
			orders = append(orders, m)
		default:
			t.Errorf("unexpected subject %s", m.Subject)
		}
	}
	tick := func(n string) [2]string {
		return [2]string{subjectPrefix + "stream.tick", channel.Envelope("conn_1", tickSub, "stream", "tick", "t"+n, `{"n":`+n+`}`)}
	}
	order := func(id, at string) [2]string {
		return [2]string{subjectPrefix + "poll.order.changed", channel.Envelope("conn_1", pollSub, "poll", "order.changed", id,
			`{"id":"`+id+`","updated_at":"`+at+`"}`)}
	}
	channel.AssertMessages(t, ticks, tick("1"), tick("2"), tick("3"), tick("4"))
	channel.AssertMessages(t, orders, order("o_2", "2026-11-22T10:00:02Z"), order("o_3", "2026-11-22T10:00:03Z"), order("o_4", "2026-11-22T10:00:04Z"))

	// The workers came back by themselves: the stream resumed after tick 2, polling went on.
	ids := api.LastEventIDs()
	if len(ids) <= total || ids[total] != "2" {
		t.Errorf("Last-Event-ID of the stream connections = %q; the one after the restart should be 2", ids)
	}
	if api.Hits("/api/orders") <= pollsBefore {
		t.Errorf("no poll after the restart")
	}
	if n := api.BadAuth(); n != 0 {
		t.Errorf("%d requests without the credentials", n)
	}

	// The cursors themselves, not only the bus's de-duplication, kept the restart from
	// replaying: they are where the workers got to.
	e.stop()
	st, err := embedded.Open(filepath.Join(dataDir, "switchboard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	if c, err := st.ChannelCursor(t.Context(), "conn_1", "stream"); err != nil || c != "4" {
		t.Errorf("sse cursor = %q, %v; want 4", c, err)
	}
	if c, err := st.ChannelCursor(t.Context(), "conn_1", "poll"); err != nil || !strings.Contains(c, `"mark":"2026-11-22T10:00:04Z"`) {
		t.Errorf("polling cursor = %q, %v; want its mark at o_4", c, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShippedOrdersDemo takes SPEC 2.4's example body through the shipped orders-demo
// connector's webhook channel.
func TestShippedOrdersDemo(t *testing.T) {
	srv, err := server.New(t.Context(), server.Config{
		Listen:             "127.0.0.1:0",
		PublicURL:          publicURL,
		ConnectorsDir:      filepath.Join("..", "..", "connectors"),
		DataDir:            t.TempDir(),
		EmbeddedNATSListen: "127.0.0.1:0",
		Logger:             channel.NewTestLogger(t),
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	e := &e2e{srv: srv}
	msgs := e.collect(t)
	e.must(t, 201, "POST", "/v1/integrations", `{"key":"shop-prod","connectorKey":"orders-demo","parameters":{}}`)
	e.must(t, 201, "POST", "/v1/connections", `{"id":"conn_1","integrationKey":"shop-prod","customerId":"cust_42",`+
		`"credentials":{"accessToken":"tok"},"parameters":{"shopDomain":"acme.shop.example"}}`)
	sub := e.subscribe(t, "orders:order.created")
	var chans []struct{ Key, Kind, URI string }
	json.Unmarshal(e.must(t, 200, "GET", "/v1/connections/conn_1/channels", ""), &chans)
	if len(chans) != 2 || chans[0].Key != "orders" || chans[1].Key != "orders-feed" || chans[1].Kind != "polling" {
		t.Fatalf("channels = %+v", chans)
	}
	body := `{"event":{"type":"order.created","id":"evt_9","data":{"id":"o_1","total":12.5,"currency":"EUR"}}}`
	if status, b := e.do(t, "POST", strings.TrimPrefix(chans[0].URI, publicURL), http.Header{"Content-Type": {"application/json"}}, body); status != 200 {
		t.Fatalf("status %d %s", status, b)
	}
	channel.AssertMessages(t, msgs.Wait(t, 1), [2]string{subjectPrefix + "orders.order.created",
		channel.Envelope("conn_1", sub, "orders", "order.created", "evt_9", `{"id":"o_1","total":12.5,"currency":"EUR"}`)})
}
