// Package connectors_test tests the shipped connectors as a connector author would run
// them: loaded from this directory, handle run in the real sandbox on requests taken from
// the providers' documentation (testdata/connectors/<connector>/*.txtar), signed at test
// time with the real clock, and getEventSelector run against a loopback stand-in for the
// provider's API.
//
// A fixture holds:
//
//	-- parameters.json --  the integration's connector parameters (the signing secret)
//	-- request.http --     method and target, headers, a blank line, the body; {{timestamp}}
//	                       (Unix seconds), {{timestamp_ms}} and {{signature}} are filled in
//	                       when the test runs
//	-- want.json --        {status, headers, body | json, events}: what handle answers
//	-- subscribe.json --   (optional) a connection and the event it subscribes to, for the
//	                       test through the real server
//
// Every fixture whose request carries {{signature}} is also sent tampered, signed with the
// wrong secret, with a stale and a future timestamp (timestamped schemes), with a
// malformed and without a signature header: each must answer 401 and route nothing.
// go test -run TestHandle -update rewrites the want.json sections from the results.
package connectors_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/txtar"

	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/sandbox"
)

var update = flag.Bool("update", false, "rewrite the want.json sections of testdata/connectors from the results")

const fixturesDir = "../testdata/connectors"

// provider says how one shipped connector's global webhook is signed.
type provider struct {
	connector   string
	webhook     string
	secretParam string // connector parameter holding the signing secret
	header      string // the signature header
	timestamped bool   // the scheme signs a timestamp that must be recent
	// sign returns the signature header's value for req (timestamps already filled in).
	sign func(req *request, secret string, params map[string]any) string
}

// The signers are written from each provider's documentation, apart from the sandbox's
// verifiers, so that the tests compare two readings of each scheme.
var providers = []provider{
	{
		connector: "slack", webhook: "events", secretParam: "signingSecret",
		header: "X-Slack-Signature", timestamped: true,
		sign: func(r *request, secret string, _ map[string]any) string {
			ts := r.header.Get("X-Slack-Request-Timestamp")
			return "v0=" + hex.EncodeToString(mac(secret, "v0:"+ts+":", string(r.body)))
		},
	},
	{
		connector: "github", webhook: "app", secretParam: "webhookSecret",
		header: "X-Hub-Signature-256",
		sign: func(r *request, secret string, _ map[string]any) string {
			return "sha256=" + hex.EncodeToString(mac(secret, string(r.body)))
		},
	},
	{
		connector: "stripe", webhook: "connect", secretParam: "endpointSecret",
		header: "Stripe-Signature", timestamped: true,
		sign: func(r *request, secret string, _ map[string]any) string {
			ts := strconv.FormatInt(r.now.Unix(), 10)
			return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts+".", string(r.body)))
		},
	},
	{
		connector: "shopify", webhook: "webhooks", secretParam: "clientSecret",
		header: "X-Shopify-Hmac-Sha256",
		sign: func(r *request, secret string, _ map[string]any) string {
			return base64.StdEncoding.EncodeToString(mac(secret, string(r.body)))
		},
	},
	{
		connector: "hubspot", webhook: "webhooks", secretParam: "clientSecret",
		header: "X-HubSpot-Signature-v3", timestamped: true,
		sign: func(r *request, secret string, params map[string]any) string {
			uri, _ := params["webhookUrl"].(string)
			ts := r.header.Get("X-HubSpot-Request-Timestamp")
			return base64.StdEncoding.EncodeToString(mac(secret, r.method+uri, string(r.body), ts))
		},
	},
}

func mac(secret string, parts ...string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// request is a fixture's request with its placeholders filled in.
type request struct {
	method string
	target string // path and query, as in the request line
	header http.Header
	body   []byte
	now    time.Time
}

func (r *request) query() url.Values {
	u, err := url.Parse(r.target)
	if err != nil {
		return url.Values{}
	}
	return u.Query()
}

// fixture is one testdata/connectors/<connector>/<name>.txtar.
type fixture struct {
	name      string
	path      string
	archive   *txtar.Archive
	params    map[string]any
	raw       string // request.http as written
	want      want
	subscribe *subscription
}

// want is what handle must answer.
type want struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    *string           `json:"body,omitempty"` // a text response, byte for byte
	JSON    json.RawMessage   `json:"json,omitempty"` // a JSON response, compared as JSON
	Events  []wantEvent       `json:"events"`
}

type wantEvent struct {
	Selector string          `json:"selector"`
	ID       string          `json:"id,omitempty"`
	Payload  json.RawMessage `json:"payload"`
}

// subscription is a fixture's subscribe.json: the connection to create and the event it
// subscribes to, and what the provider's API answers its getEventSelector.
type subscription struct {
	EventKey             string                 `json:"eventKey"`
	Credentials          map[string]any         `json:"credentials"`
	ConnectionParameters map[string]any         `json:"connectionParameters"`
	API                  map[string]apiResponse `json:"api"` // by "METHOD /path"
}

type apiResponse struct {
	Header   map[string]string `json:"header"` // headers the request must carry
	Response json.RawMessage   `json:"response"`
}

func (p provider) fixtures(t testing.TB) []*fixture {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(fixturesDir, p.connector, "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures for %s in %s (%v)", p.connector, fixturesDir, err)
	}
	var out []*fixture
	for _, file := range files {
		a, err := txtar.ParseFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f := &fixture{name: strings.TrimSuffix(filepath.Base(file), ".txtar"), path: file, archive: a}
		for _, s := range a.Files {
			switch s.Name {
			case "parameters.json":
				err = json.Unmarshal(s.Data, &f.params)
			case "request.http":
				f.raw = string(s.Data)
			case "want.json":
				err = json.Unmarshal(s.Data, &f.want)
			case "subscribe.json":
				f.subscribe = new(subscription)
				err = json.Unmarshal(s.Data, f.subscribe)
			default:
				err = fmt.Errorf("unknown section %q", s.Name)
			}
			if err != nil {
				t.Fatalf("%s: %s: %v", file, s.Name, err)
			}
		}
		if f.raw == "" || f.params == nil {
			t.Fatalf("%s: want parameters.json and request.http sections", file)
		}
		out = append(out, f)
	}
	return out
}

// query is the query string of the fixture's request line.
func (f *fixture) query() url.Values {
	line, _, _ := strings.Cut(f.raw, "\n")
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return url.Values{}
	}
	return (&request{target: fields[1]}).query()
}

// signed reports whether the fixture's request is signed at test time.
func (f *fixture) signed() bool { return strings.Contains(f.raw, "{{signature}}") }

// build fills in the fixture's request: timestamps from now, then the signature (when the
// request asks for one) under secret over the final body. The body is everything after
// the first blank line, less the final newline txtar adds.
func (f *fixture) build(t testing.TB, p provider, now time.Time, secret string, params map[string]any) *request {
	t.Helper()
	raw := strings.NewReplacer(
		"{{timestamp_ms}}", strconv.FormatInt(now.UnixMilli(), 10),
		"{{timestamp}}", strconv.FormatInt(now.Unix(), 10),
	).Replace(f.raw)
	head, body, ok := strings.Cut(raw, "\n\n")
	if !ok {
		t.Fatalf("%s: request.http has no blank line before the body", f.path)
	}
	lines := strings.Split(head, "\n")
	fields := strings.Fields(lines[0])
	if len(fields) < 2 {
		t.Fatalf("%s: bad request line %q", f.path, lines[0])
	}
	r := &request{method: fields[0], target: fields[1], header: http.Header{}, now: now,
		body: []byte(strings.TrimSuffix(body, "\n"))}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("%s: bad header line %q", f.path, l)
		}
		r.header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	for k, vs := range r.header {
		for i, v := range vs {
			if v == "{{signature}}" {
				r.header[k][i] = p.sign(r, secret, params)
			}
		}
	}
	return r
}

// result is what handle answered, in want's shape.
type result struct {
	status int
	header http.Header
	body   []byte
	events []connector.HandledEvent
}

// handler runs one connector's global webhook through the real sandbox.
type handler struct {
	webhook *connector.Webhook
	pool    *sandbox.Pool
}

func loadHandler(t testing.TB, p provider) handler {
	t.Helper()
	c, err := connector.LoadConnector(p.connector)
	if err != nil {
		t.Fatalf("loading %s: %v", p.connector, err)
	}
	w, ok := c.Webhooks[p.webhook]
	if !ok {
		t.Fatalf("connector %s has no global webhook %q", p.connector, p.webhook)
	}
	return handler{webhook: w, pool: sandbox.NewPool(w.Handle, sandbox.Config{Size: 1})}
}

func (h handler) run(t testing.TB, r *request, params map[string]any) result {
	t.Helper()
	in := connector.HandleInput(r.method, r.header, r.query(), r.body, params)
	out, err := h.pool.Call(t.Context(), in, sandbox.Env{})
	if err != nil {
		t.Fatalf("handle (%s): %v", h.webhook.Handle.Name(), err)
	}
	res, err := connector.ParseHandleResult(out)
	if err != nil {
		t.Fatalf("handle (%s) returned an invalid result: %v", h.webhook.Handle.Name(), err)
	}
	return result{status: res.Response.Status, header: res.Response.Header, body: res.Response.Body, events: res.Events}
}

// check compares a result with want, reporting every difference.
func (w want) check(t testing.TB, got result) {
	t.Helper()
	w.checkResponse(t, got)
	if len(got.events) != len(w.Events) {
		t.Errorf("got %d events, want %d: %s", len(got.events), len(w.Events), mustJSON(t, got.events))
		return
	}
	for i, ev := range got.events {
		we := w.Events[i]
		if ev.Selector != we.Selector || ev.ID != we.ID {
			t.Errorf("events[%d] = selector %q id %q, want selector %q id %q", i, ev.Selector, ev.ID, we.Selector, we.ID)
		}
		if !jsonEqual(mustJSON(t, ev.Payload), we.Payload) {
			t.Errorf("events[%d].payload = %s\nwant %s", i, mustJSON(t, ev.Payload), we.Payload)
		}
	}
}

// checkResponse compares the response part of a result with want.
func (w want) checkResponse(t testing.TB, got result) {
	t.Helper()
	if got.status != w.Status {
		t.Errorf("status = %d, want %d (body %q)", got.status, w.Status, got.body)
	}
	for k, v := range w.Headers {
		if g := got.header.Get(k); g != v {
			t.Errorf("header %s = %q, want %q", k, g, v)
		}
	}
	switch {
	case w.JSON != nil:
		if !jsonEqual(got.body, w.JSON) {
			t.Errorf("body = %s, want JSON %s", got.body, w.JSON)
		}
	case w.Body != nil:
		if string(got.body) != *w.Body {
			t.Errorf("body = %q, want %q", got.body, *w.Body)
		}
	default:
		if len(got.body) != 0 {
			t.Errorf("body = %q, want none", got.body)
		}
	}
}

// wantFrom is the want.json that -update writes for a result.
func wantFrom(t testing.TB, got result) want {
	w := want{Status: got.status, Events: []wantEvent{}}
	if len(got.body) > 0 {
		ct := got.header.Get("Content-Type")
		w.Headers = map[string]string{"Content-Type": ct}
		if mt, _, _ := mime.ParseMediaType(ct); mt == "application/json" && json.Valid(got.body) {
			w.JSON = got.body
		} else {
			s := string(got.body)
			w.Body = &s
		}
	}
	for _, ev := range got.events {
		var payload bytes.Buffer
		enc := json.NewEncoder(&payload)
		enc.SetEscapeHTML(false) // keep <@U0LAN0Z89> readable in the golden files
		if err := enc.Encode(ev.Payload); err != nil {
			t.Fatal(err)
		}
		w.Events = append(w.Events, wantEvent{Selector: ev.Selector, ID: ev.ID, Payload: bytes.TrimSpace(payload.Bytes())})
	}
	return w
}

func (f *fixture) rewriteWant(t testing.TB, w want) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		t.Fatal(err)
	}
	for i := range f.archive.Files {
		if f.archive.Files[i].Name == "want.json" {
			f.archive.Files[i].Data = buf.Bytes()
		}
	}
	if err := os.WriteFile(f.path, txtar.Format(f.archive), 0o644); err != nil {
		t.Fatal(err)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLoad: the shipped tree loads as a whole, as the server and switchboard check load
// it, and every connector has the webhooks and events its documentation promises.
func TestLoad(t *testing.T) {
	set, err := connector.Load("../connectors")
	if err != nil {
		t.Fatalf("connector.Load: %v", err)
	}
	want := map[string]struct {
		webhooks, events []string
	}{
		"example":  {[]string{"webhook-key"}, []string{"message-posted"}},
		"teamchat": {[]string{"webhook-key"}, []string{"message-posted"}},
		"slack":    {[]string{"events"}, []string{"app-mention", "message", "reaction-added"}},
		"github":   {[]string{"app"}, []string{"issues", "pull-request", "push"}},
		"stripe":   {[]string{"connect"}, []string{"charge-refunded", "customer-created", "payment-intent-succeeded"}},
		"shopify":  {[]string{"webhooks"}, []string{"app-uninstalled", "customers-create", "orders-create", "orders-paid"}},
		"hubspot":  {[]string{"webhooks"}, []string{"contact-creation", "contact-propertychange", "deal-creation", "deal-propertychange"}},
		// Channels only (runtime/channel tests it through the server).
		"orders-demo": {nil, nil},
	}
	if got := sortedKeys(set.Connectors); !slices.Equal(got, sortedKeys(want)) {
		t.Errorf("connectors = %v, want %v", got, sortedKeys(want))
	}
	for key, w := range want {
		c, ok := set.Connectors[key]
		if !ok {
			continue
		}
		if got := sortedKeys(c.Webhooks); !slices.Equal(got, w.webhooks) {
			t.Errorf("%s webhooks = %v, want %v", key, got, w.webhooks)
		}
		if got := sortedKeys(c.Events); !slices.Equal(got, w.events) {
			t.Errorf("%s events = %v, want %v", key, got, w.events)
		}
	}
	// The signing secret is what keeps strangers out: installing without it must fail.
	for _, p := range providers {
		c := set.Connectors[p.connector]
		if err := c.ValidateParameters(map[string]any{}); err == nil {
			t.Errorf("%s accepts connector parameters without %s", p.connector, p.secretParam)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// TestHandle runs every fixture through the connector's handle, then the refused variants
// of every signed fixture.
func TestHandle(t *testing.T) {
	for _, p := range providers {
		t.Run(p.connector, func(t *testing.T) {
			h := loadHandler(t, p)
			for _, f := range p.fixtures(t) {
				t.Run(f.name, func(t *testing.T) {
					secret, _ := f.params[p.secretParam].(string)
					got := h.run(t, f.build(t, p, time.Now(), secret, f.params), f.params)
					if *update {
						f.rewriteWant(t, wantFrom(t, got))
						return
					}
					f.want.check(t, got)
				})
				if !f.signed() {
					continue
				}
				for _, v := range refusals(p) {
					t.Run(f.name+"/"+v.name, func(t *testing.T) {
						secret, _ := f.params[p.secretParam].(string)
						r := v.build(t, f, secret)
						got := h.run(t, r, f.params)
						if got.status != http.StatusUnauthorized || len(got.events) != 0 {
							t.Errorf("status %d with %d events (body %q), want 401 and no events",
								got.status, len(got.events), got.body)
						}
					})
				}
			}
		})
	}
}

// refusal is a way of getting a signed request wrong.
type refusal struct {
	name  string
	build func(t testing.TB, f *fixture, secret string) *request
}

func refusals(p provider) []refusal {
	rs := []refusal{
		{"tampered body", func(t testing.TB, f *fixture, secret string) *request {
			r := f.build(t, p, time.Now(), secret, f.params)
			r.body = tamper(r.body)
			return r
		}},
		{"wrong secret", func(t testing.TB, f *fixture, secret string) *request {
			return f.build(t, p, time.Now(), secret+"-not-it", f.params)
		}},
		{"malformed signature", func(t testing.TB, f *fixture, secret string) *request {
			r := f.build(t, p, time.Now(), secret, f.params)
			r.header.Set(p.header, "sha256=not%20a%20signature,t=,v1=")
			return r
		}},
		{"missing signature", func(t testing.TB, f *fixture, secret string) *request {
			r := f.build(t, p, time.Now(), secret, f.params)
			r.header.Del(p.header)
			return r
		}},
	}
	if p.timestamped {
		rs = append(rs,
			refusal{"stale timestamp", func(t testing.TB, f *fixture, secret string) *request {
				return f.build(t, p, time.Now().Add(-10*time.Minute), secret, f.params)
			}},
			refusal{"future timestamp", func(t testing.TB, f *fixture, secret string) *request {
				return f.build(t, p, time.Now().Add(10*time.Minute), secret, f.params)
			}},
		)
	}
	return rs
}

// tamper changes one character of the body's content (the first digit, else the first
// letter), keeping it well-formed, as an attacker editing an amount or an id would.
func tamper(body []byte) []byte {
	out := bytes.Clone(body)
	for i, c := range out {
		if c >= '0' && c <= '8' {
			out[i] = c + 1
			return out
		}
	}
	for i, c := range out {
		if c >= 'a' && c < 'z' {
			out[i] = c + 1
			return out
		}
	}
	return append(out, ' ')
}

// TestEventSelectors runs every event's getEventSelector, scripts against a loopback
// stand-in for the provider's API (reached with the auth that connector.yml configures),
// and checks that it gives exactly the selector handle tags that kind of event with, and
// that no two events of a connector share one: a connection subscribed to two events
// must receive each delivery once.
func TestEventSelectors(t *testing.T) {
	tests := []struct {
		connector   string
		credentials map[string]any
		connParams  map[string]any
		api         map[string]string // "METHOD /path" -> JSON answer
		authHeader  [2]string         // header the API must be called with
		want        map[string]string // event key -> selector
		apiFail     map[string]string // answers that must make every script event fail
		wantErr     string            // ... with an error mentioning this
	}{
		{
			connector:   "slack",
			credentials: map[string]any{"accessToken": "xoxb-1"},
			api:         map[string]string{"GET /auth.test": `{"ok":true,"team_id":"T061EG9R6","user_id":"W1"}`},
			authHeader:  [2]string{"Authorization", "Bearer xoxb-1"},
			want: map[string]string{
				"message":        "team:T061EG9R6:event:message",
				"app-mention":    "team:T061EG9R6:event:app_mention",
				"reaction-added": "team:T061EG9R6:event:reaction_added",
			},
			apiFail: map[string]string{"GET /auth.test": `{"ok":false,"error":"invalid_auth"}`},
			wantErr: "invalid_auth",
		},
		{
			connector:   "github",
			credentials: map[string]any{"accessToken": "ghs_1"},
			connParams:  map[string]any{"installationId": float64(2311213)},
			want: map[string]string{
				"push":         "installation:2311213:event:push",
				"issues":       "installation:2311213:event:issues",
				"pull-request": "installation:2311213:event:pull_request",
			},
		},
		{
			connector:   "stripe",
			credentials: map[string]any{"accessToken": "rk_test_1"},
			api:         map[string]string{"GET /account": `{"id":"acct_1032D82eZvKYlo2C","object":"account"}`},
			authHeader:  [2]string{"Authorization", "Bearer rk_test_1"},
			want: map[string]string{
				"payment-intent-succeeded": "account:acct_1032D82eZvKYlo2C:type:payment_intent.succeeded",
				"charge-refunded":          "account:acct_1032D82eZvKYlo2C:type:charge.refunded",
				"customer-created":         "account:acct_1032D82eZvKYlo2C:type:customer.created",
			},
			apiFail: map[string]string{"GET /account": `{"object":"account"}`},
			wantErr: "without an account id",
		},
		{
			connector:   "shopify",
			credentials: map[string]any{"shop": "example.myshopify.com", "accessToken": "shpat_1"},
			want: map[string]string{
				"orders-create":    "shop:example.myshopify.com:topic:orders/create",
				"orders-paid":      "shop:example.myshopify.com:topic:orders/paid",
				"customers-create": "shop:example.myshopify.com:topic:customers/create",
				"app-uninstalled":  "shop:example.myshopify.com:topic:app/uninstalled",
			},
		},
		{
			connector:   "hubspot",
			credentials: map[string]any{"accessToken": "pat-1"},
			api:         map[string]string{"GET /account-info/v3/details": `{"portalId":62515,"accountType":"STANDARD"}`},
			authHeader:  [2]string{"Authorization", "Bearer pat-1"},
			want: map[string]string{
				"contact-creation":       "portal:62515:type:contact.creation",
				"contact-propertychange": "portal:62515:type:contact.propertyChange",
				"deal-creation":          "portal:62515:type:deal.creation",
				"deal-propertychange":    "portal:62515:type:deal.propertyChange",
			},
			apiFail: map[string]string{"GET /account-info/v3/details": `{"status":"ok"}`},
			wantErr: "without a portalId",
		},
	}
	for _, tt := range tests {
		t.Run(tt.connector, func(t *testing.T) {
			c, err := connector.LoadConnector(tt.connector)
			if err != nil {
				t.Fatal(err)
			}
			if got := sortedKeys(c.Events); !slices.Equal(got, sortedKeys(tt.want)) {
				t.Fatalf("events = %v, want selectors for %v", got, sortedKeys(tt.want))
			}
			selectors := map[string]string{}
			for key, want := range tt.want {
				t.Run(key, func(t *testing.T) {
					ev := c.Events[key]
					got, err := ev.Selector(t.Context(), selectorInput(t, c, tt.credentials, tt.connParams, tt.api, tt.authHeader))
					if err != nil {
						t.Fatalf("getEventSelector: %v", err)
					}
					wantWebhook := sortedKeys(c.Webhooks)
					if got.GlobalWebhookEventSelector != want || len(wantWebhook) != 1 || got.GlobalWebhookKey != wantWebhook[0] {
						t.Errorf("selection = %+v, want webhook %v selector %q", got, wantWebhook, want)
					}
					if other, dup := selectors[got.GlobalWebhookEventSelector]; dup {
						t.Errorf("events %s and %s share selector %q", other, key, want)
					}
					selectors[got.GlobalWebhookEventSelector] = key
					if ev.SelectorScript == nil || tt.apiFail == nil {
						return
					}
					_, err = ev.Selector(t.Context(), selectorInput(t, c, tt.credentials, tt.connParams, tt.apiFail, tt.authHeader))
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Errorf("with API answer %v: err = %v, want one mentioning %q", tt.apiFail, err, tt.wantErr)
					}
				})
			}
			// A mapping with what it reads missing fails, naming the field, rather than
			// subscribing to a selector no event will ever carry.
			for key, ev := range c.Events {
				if ev.Mapping == nil {
					continue
				}
				_, err := ev.Selector(t.Context(), connector.SelectorInput{Credentials: map[string]any{}, Connection: map[string]any{}})
				if err == nil || !strings.Contains(err.Error(), "missing") {
					t.Errorf("%s with no credentials or connection parameters: err = %v, want a missing field", key, err)
				}
			}
		})
	}
}

// selectorInput is what the server gives getEventSelector, with the connector's API (its
// auth as configured) moved to a loopback server answering api.
func selectorInput(t *testing.T, c *connector.Connector, creds, connParams map[string]any, api map[string]string, auth [2]string) connector.SelectorInput {
	t.Helper()
	in := connector.SelectorInput{
		Credentials: creds,
		Connection:  map[string]any{"id": "conn_1", "customerId": "cust_1", "parameters": connParams},
	}
	if api == nil {
		return in
	}
	srv := fakeAPI(t, func(r *http.Request) (string, bool) {
		if auth[0] != "" && r.Header.Get(auth[0]) != auth[1] {
			t.Errorf("%s %s: %s = %q, want %q", r.Method, r.URL.Path, auth[0], r.Header.Get(auth[0]), auth[1])
		}
		body, ok := api[r.Method+" "+r.URL.Path]
		return body, ok
	})
	resolved, err := c.ResolveAPI(creds, connParams, nil, srv.Client())
	if err != nil {
		t.Fatalf("ResolveAPI: %v", err)
	}
	base, _ := url.Parse(srv.URL + "/")
	resolved.BaseURL = base
	in.API = resolved
	return in
}

// fakeAPI answers JSON from answer, 404 for what it does not know.
func fakeAPI(t testing.TB, answer func(*http.Request) (string, bool)) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := answer(r)
		if !ok {
			http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}
