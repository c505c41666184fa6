package connector

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-run/switchboard/sandbox"
)

// apiServer is a loopback stand-in for an app's API: GET /api/users/me answers
// {"id": "U1"} and records what it saw; GET /api/forbidden answers 403.
type apiServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newAPIServer(tb testing.TB) *apiServer {
	tb.Helper()
	s := &apiServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Clone(r.Context()))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/users/me":
			fmt.Fprint(w, `{"id": "U1"}`)
		default:
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"error": "missing_scope"}`)
		}
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *apiServer) last(tb testing.TB) *http.Request {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 {
		tb.Fatal("the API server saw no request")
	}
	return s.seen[len(s.seen)-1]
}

// selectorConnector writes a connector whose API is at baseURI with the given auth
// section and whose event "e" calls path with apiClient.get.
func selectorConnector(tb testing.TB, baseURI, auth, path string) *Connector {
	tb.Helper()
	dir := writeTree(tb, fmt.Sprintf(`
-- x/connector.yml --
name: X
api:
  baseUri: %s
  auth:
%s
-- x/global-webhooks/webhook-key/spec.yml --
name: W
methods:
  handle:
    implementationType: javascript
-- x/global-webhooks/webhook-key/handle.js --
export default async function handle({ data }) {
  return { events: [{ selector: `+"`user_id:${data.from_user_id}`"+`, payload: data }] }
}
-- x/events/e/spec.yml --
name: E
implementationType: global-webhook
methods:
  get-event-selector:
    implementationType: javascript
-- x/events/e/get-event-selector.js --
export default async function getEventSelector({ apiClient, parameters, credentials, connectorParameters }) {
  const me = await apiClient.get('%s')
  return { globalWebhookKey: parameters.webhook ?? 'webhook-key', globalWebhookEventSelector: `+"`user_id:${me?.id}`"+` }
}
`, baseURI, auth, path))
	c, err := LoadConnector(filepath.Join(dir, "x"))
	if err != nil {
		tb.Fatalf("loading: %v", err)
	}
	return c
}

func TestSelectorJavaScript(t *testing.T) {
	srv := newAPIServer(t)
	creds := map[string]any{"accessToken": "tok-1", "user": "ann", "pass": "pw", "key": "k-9"}
	tests := []struct {
		name  string
		auth  string
		check func(t *testing.T, r *http.Request)
	}{
		{name: "bearer", auth: "    type: bearer\n    token: accessToken", check: func(t *testing.T, r *http.Request) {
			if got := r.Header.Get("Authorization"); got != "Bearer tok-1" {
				t.Errorf("Authorization: got %q", got)
			}
		}},
		{name: "basic", auth: "    type: basic\n    username: user\n    password: pass", check: func(t *testing.T, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "ann" || p != "pw" {
				t.Errorf("basic auth: got %q %q %v", u, p, ok)
			}
		}},
		{name: "header", auth: "    type: header\n    name: X-Api-Key\n    value: key", check: func(t *testing.T, r *http.Request) {
			if got := r.Header.Get("X-Api-Key"); got != "k-9" {
				t.Errorf("X-Api-Key: got %q", got)
			}
		}},
		{name: "query", auth: "    type: query\n    name: api_key\n    value: key", check: func(t *testing.T, r *http.Request) {
			if got := r.URL.Query().Get("api_key"); got != "k-9" {
				t.Errorf("api_key: got %q", got)
			}
		}},
		{name: "none", auth: "    type: none", check: func(t *testing.T, r *http.Request) {
			if got := r.Header.Get("Authorization"); got != "" {
				t.Errorf("Authorization: got %q, want none", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := selectorConnector(t, srv.URL+"/api/", tt.auth, "users/me")
			api, err := c.ResolveAPI(creds, nil, nil, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			sel, err := c.Events["e"].Selector(t.Context(), SelectorInput{Credentials: creds, API: api})
			if err != nil {
				t.Fatal(err)
			}
			want := Selection{GlobalWebhookKey: "webhook-key", GlobalWebhookEventSelector: "user_id:U1"}
			if sel != want {
				t.Errorf("got %+v, want %+v", sel, want)
			}
			r := srv.last(t)
			if r.URL.Path != "/api/users/me" || r.Method != http.MethodGet {
				t.Errorf("request: %s %s", r.Method, r.URL.Path)
			}
			tt.check(t, r)
		})
	}
}

func TestSelectorJavaScriptErrors(t *testing.T) {
	srv := newAPIServer(t)
	creds := map[string]any{"accessToken": "tok-1"}
	bearer := "    type: bearer\n    token: accessToken"

	t.Run("non-2xx answer carries the status", func(t *testing.T) {
		c := selectorConnector(t, srv.URL+"/api/", bearer, "forbidden")
		api, err := c.ResolveAPI(creds, nil, nil, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Events["e"].Selector(t.Context(), SelectorInput{Credentials: creds, API: api})
		var se *sandbox.ScriptError
		if !errors.As(err, &se) {
			t.Fatalf("got %T %v, want a *sandbox.ScriptError", err, err)
		}
		v, _ := se.Value.(map[string]any)
		if status, _ := v["status"].(float64); status != http.StatusForbidden {
			t.Errorf("status: got %v (value %#v)", v["status"], se.Value)
		}
		if !strings.Contains(err.Error(), "get-event-selector.js") {
			t.Errorf("error does not name the script: %v", err)
		}
	})
	t.Run("unknown webhook in the result", func(t *testing.T) {
		c := selectorConnector(t, srv.URL+"/api/", bearer, "users/me")
		api, err := c.ResolveAPI(creds, nil, nil, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Events["e"].Selector(t.Context(), SelectorInput{
			Credentials: creds, API: api, Parameters: map[string]any{"webhook": "nope"},
		})
		if err == nil || !strings.Contains(err.Error(), `globalWebhookKey "nope" names no global webhook`) ||
			!strings.Contains(err.Error(), "get-event-selector.js") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("no API", func(t *testing.T) {
		c := selectorConnector(t, srv.URL+"/api/", bearer, "users/me")
		if _, err := c.Events["e"].Selector(t.Context(), SelectorInput{Credentials: creds}); err == nil {
			t.Error("got no error with a nil API")
		}
	})
}

func TestSelectorMapping(t *testing.T) {
	c, err := LoadConnector(filepath.Join("..", "..", "connectors", "teamchat"))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Events["message-posted"]
	tests := []struct {
		name    string
		creds   map[string]any
		want    Selection
		wantErr string
	}{
		{name: "SPEC 2.3 mapping", creds: map[string]any{"teamId": "T1"}, want: Selection{GlobalWebhookKey: "webhook-key", GlobalWebhookEventSelector: "team_id:T1"}},
		{name: "numeric team id", creds: map[string]any{"teamId": 1234.0}, want: Selection{GlobalWebhookKey: "webhook-key", GlobalWebhookEventSelector: "team_id:1234"}},
		{name: "missing credential", creds: map[string]any{}, wantErr: "credentials.teamId is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Selector(t.Context(), SelectorInput{Credentials: tt.creds})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "spec.yml") {
					t.Fatalf("got %v, want an error containing %q and naming the spec", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSelectorResultChecks(t *testing.T) {
	c := &Connector{Key: "x", Webhooks: map[string]*Webhook{"events": {Key: "events"}}}
	tests := []struct {
		name string
		src  string
		want string
	}{
		{name: "not an object", src: `"events"`, want: "want an object"},
		{name: "key not a string", src: `{ globalWebhookKey: 1, globalWebhookEventSelector: s }`, want: "globalWebhookKey must be a string, got a number"},
		{name: "empty selector", src: `{ globalWebhookKey: events, globalWebhookEventSelector: "" }`, want: "globalWebhookEventSelector must not be empty"},
		{name: "unknown webhook", src: `{ globalWebhookKey: { $var: parameters.hook }, globalWebhookEventSelector: s }`, want: `globalWebhookKey "other" names no global webhook of connector "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ps := compileFormula(t, tt.src)
			if len(ps) > 0 {
				t.Fatal(ps)
			}
			e := &Event{Key: "e", Dir: "x/events/e", Mapping: m, connector: c}
			_, err := e.Selector(t.Context(), SelectorInput{Parameters: map[string]any{"hook": "other"}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// Selection is part of the API's JSON answers.
func TestSelectionJSON(t *testing.T) {
	b, err := json.Marshal(Selection{GlobalWebhookKey: "k", GlobalWebhookEventSelector: "s"})
	if err != nil || string(b) != `{"globalWebhookKey":"k","globalWebhookEventSelector":"s"}` {
		t.Errorf("got %s, %v", b, err)
	}
}
