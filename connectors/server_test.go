package connectors_test

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/bus/bustest"
	"github.com/switchboard-run/switchboard/runtime/server"
	"github.com/switchboard-run/switchboard/runtime/server/servertest"
)

// TestServer takes each provider's fixtures that carry a subscribe.json through a real
// server, in-process with its embedded store and NATS: install the connector as an
// integration over the HTTP API, create the connection, subscribe it to one event (its
// getEventSelector run by the server, against a loopback stand-in for the provider's API
// or through the event's mapping), post the signed fixture to the webhook URI and read
// back what JetStream stored. The reply must be handle's, exactly one envelope must land
// on the subscription's subject, a retry of the delivery must not publish it again, and a
// tampered delivery must get 401 and publish nothing.
//
// The connectors are this directory's, copied so that api.baseUri can point at the
// stand-in; nothing else in them changes.
func TestServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	api := newProviderAPI(t)
	h := startServer(t, connectorsFor(t, api.URL))
	events := bustest.Watch(t, h.srv.NATSURL(), "events.*.apps.app.event_received.>")

	for _, p := range providers {
		for _, f := range p.fixtures(t) {
			if f.subscribe == nil {
				continue
			}
			t.Run(p.connector+"/"+f.name, func(t *testing.T) {
				api.set(p.connector, f.subscribe.API, t)
				h := h.with(t)
				sub := f.subscribe
				integration := p.connector + "-prod"
				customer := "cust_" + p.connector
				connID := "conn_" + p.connector

				params := map[string]any{}
				for k, v := range f.params {
					params[k] = v
				}
				// HubSpot signs the URL it called, which is known only once the integration
				// exists: install without it, then set it, as an owner would.
				delete(params, "webhookUrl")
				h.must(201, "POST", "/v1/integrations", map[string]any{
					"key": integration, "connectorKey": p.connector, "parameters": params,
				})
				uri := h.webhookURI(integration, p.webhook)
				if q := f.query(); len(q) > 0 {
					uri += "?" + q.Encode()
				}
				if _, ok := f.params["webhookUrl"]; ok {
					params["webhookUrl"] = uri
					h.must(200, "PATCH", "/v1/integrations/"+integration, map[string]any{"parameters": params})
				}

				h.must(201, "POST", "/v1/connections", map[string]any{
					"id": connID, "integrationKey": integration, "customerId": customer,
					"credentials": sub.Credentials, "parameters": sub.ConnectionParameters,
				})
				var created struct {
					ID                         string
					GlobalWebhookKey           string
					GlobalWebhookEventSelector string
				}
				h.must(201, "POST", "/v1/connections/"+connID+"/event-subscriptions",
					map[string]any{"eventKey": sub.EventKey}).json(t, &created)
				var wantEvent *wantEvent
				for i := range f.want.Events {
					if f.want.Events[i].Selector == created.GlobalWebhookEventSelector {
						wantEvent = &f.want.Events[i]
					}
				}
				if created.GlobalWebhookKey != p.webhook || wantEvent == nil {
					t.Fatalf("subscription routes %s %q; handle tags %s", created.GlobalWebhookKey,
						created.GlobalWebhookEventSelector, mustJSON(t, f.want.Events))
				}

				secret, _ := params[p.secretParam].(string)
				delivery := func(now time.Time) *request { return f.build(t, p, now, secret, params) }

				got := h.ingest(uri, delivery(time.Now()))
				f.want.checkResponse(t, got)
				subject := "events." + customer + ".apps.app.event_received." + integration + "." + p.webhook + "." + sub.EventKey
				msgs := events.Collect(1, 500*time.Millisecond)
				if len(msgs) != 1 {
					t.Fatalf("got %d messages, want 1: %v", len(msgs), msgs)
				}
				if msgs[0].Subject != subject {
					t.Errorf("subject = %s, want %s", msgs[0].Subject, subject)
				}
				var env struct {
					OrganizationID string          `json:"organizationId"`
					ResourceID     string          `json:"resourceId"`
					EventName      string          `json:"eventName"`
					Payload        json.RawMessage `json:"payload"`
					Metadata       struct {
						ConnectionID, SubscriptionID, EventKey, GlobalWebhookKey, Selector, EventID string
					} `json:"metadata"`
				}
				if err := json.Unmarshal(msgs[0].Data, &env); err != nil {
					t.Fatalf("decoding the envelope %s: %v", msgs[0].Data, err)
				}
				md := env.Metadata
				if env.OrganizationID != customer || env.ResourceID != integration || env.EventName != "event_received" ||
					md.ConnectionID != connID || md.SubscriptionID != created.ID || md.EventKey != sub.EventKey ||
					md.GlobalWebhookKey != p.webhook || md.Selector != wantEvent.Selector || md.EventID != wantEvent.ID {
					t.Errorf("envelope = %s", msgs[0].Data)
				}
				if !jsonEqual(env.Payload, wantEvent.Payload) {
					t.Errorf("payload = %s\nwant %s", env.Payload, wantEvent.Payload)
				}

				// The provider retries (a lost reply, a timeout): signed anew, and for HubSpot
				// with the attempt counted in the body, so that only the event's id tells it
				// is the same event.
				again := *f
				again.raw = strings.ReplaceAll(f.raw, `"attemptNumber":0`, `"attemptNumber":1`)
				retry := h.ingest(uri, again.build(t, p, time.Now().Add(time.Second), secret, params))
				if retry.status != f.want.Status {
					t.Errorf("retry: status %d, want %d", retry.status, f.want.Status)
				}
				if msgs := events.Collect(0, 500*time.Millisecond); len(msgs) != 0 {
					t.Errorf("the retry published %d more messages: %v", len(msgs), msgs)
				}

				bad := delivery(time.Now())
				bad.body = tamper(bad.body)
				if got := h.ingest(uri, bad); got.status != http.StatusUnauthorized {
					t.Errorf("tampered delivery: status %d, want 401 (body %s)", got.status, got.body)
				}
				if msgs := events.Collect(0, 500*time.Millisecond); len(msgs) != 0 {
					t.Errorf("the tampered delivery published %d messages: %v", len(msgs), msgs)
				}
			})
		}
	}
}

// providerAPI stands in for every provider's API at /<connector>/..., answering what the
// running fixture's subscribe.json says.
type providerAPI struct {
	URL string

	mu      sync.Mutex
	prefix  string                 // the connector whose fixture runs
	answers map[string]apiResponse // by "METHOD /path" under the prefix
	t       *testing.T
}

func newProviderAPI(t *testing.T) *providerAPI {
	a := &providerAPI{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		prefix, answers, tt := a.prefix, a.answers, a.t
		a.mu.Unlock()
		ans, ok := answers[r.Method+" "+strings.TrimPrefix(r.URL.Path, "/"+prefix)]
		if !ok {
			http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
			return
		}
		for k, v := range ans.Header {
			if got := r.Header.Get(k); got != v {
				tt.Errorf("%s %s: %s = %q, want %q", r.Method, r.URL.Path, k, got, v)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(ans.Response)
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

func (a *providerAPI) set(prefix string, answers map[string]apiResponse, t *testing.T) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.prefix, a.answers, a.t = prefix, answers, t
}

var baseURIRe = regexp.MustCompile(`(?m)^(\s*baseUri:\s*)\S+`)

// connectorsFor copies this directory's connectors to a temporary tree, pointing the
// api.baseUri of those whose getEventSelector calls the provider's API at apiURL/<key>/.
func connectorsFor(t *testing.T, apiURL string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, path), 0o755)
		}
		if strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		key := strings.Split(filepath.ToSlash(path), "/")[0]
		if filepath.Base(path) == "connector.yml" && (key == "slack" || key == "stripe" || key == "hubspot") {
			b = baseURIRe.ReplaceAll(b, []byte("${1}"+apiURL+"/"+key+"/"))
		}
		return os.WriteFile(filepath.Join(dst, path), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying the connectors: %v", err)
	}
	return dst
}

const publicURL = "https://switchboard.example.com"

// serverHarness is a running server.
type serverHarness struct {
	t    *testing.T
	srv  *server.Server
	base string
}

func (h *serverHarness) with(t *testing.T) *serverHarness { c := *h; c.t = t; return &c }

func startServer(t *testing.T, connectorsDir string) *serverHarness {
	t.Helper()
	srv, err := server.New(t.Context(), server.Config{
		Listen:               "127.0.0.1:0",
		PublicURL:            publicURL,
		ConnectorsDir:        connectorsDir,
		DataDir:              t.TempDir(),
		EmbeddedNATSListen:   "127.0.0.1:0",
		AllowPrivateNetworks: true, // the provider API stand-in is on loopback
	})
	if err != nil {
		t.Fatalf("starting the server: %v", err)
	}
	servertest.Run(t, srv)
	return &serverHarness{t: t, srv: srv, base: srv.URL()}
}

type apiReply struct {
	status int
	body   []byte
}

func (r apiReply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// must calls the HTTP API and fails the test unless it answers want.
func (h *serverHarness) must(want int, method, path string, body any) apiReply {
	h.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		h.t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.base+path, bytes.NewReader(b))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		h.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, want, rb)
	}
	return apiReply{status: resp.StatusCode, body: rb}
}

// webhookURI is the public URI of the integration's global webhook, as handed to the
// provider.
func (h *serverHarness) webhookURI(integration, webhook string) string {
	h.t.Helper()
	var hooks []struct{ Key, URI string }
	h.must(200, "GET", "/v1/integrations/"+integration+"/webhooks", nil).json(h.t, &hooks)
	for _, wh := range hooks {
		if wh.Key == webhook && strings.HasPrefix(wh.URI, publicURL+"/webhooks/") {
			return wh.URI
		}
	}
	h.t.Fatalf("integration %s has no webhook %s under %s: %+v", integration, webhook, publicURL, hooks)
	return ""
}

// ingest posts r to the public URI uri, reached at the server's own address as a reverse
// proxy in front of it would.
func (h *serverHarness) ingest(uri string, r *request) result {
	h.t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		h.t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(h.t.Context(), r.method, h.base+u.RequestURI(), bytes.NewReader(r.body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header = r.header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("posting to the webhook: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: body}
}
