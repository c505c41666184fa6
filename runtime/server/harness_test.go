package server_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-run/switchboard/runtime/server"
	"github.com/switchboard-run/switchboard/runtime/server/servertest"
)

// The secrets every test hands to switchboard; none may appear in a response (other than
// the webhook URIs, which carry the tokens by design) or in a log line.
const (
	secretParam = "sekret-signing-7f3a9c"
	aliceToken  = "tok-alice-8b1e77d2"
	bobToken    = "tok-bob-c4d90a11"
)

const redisURL = "redis://127.0.0.1:6379/0"

// backend is where a server keeps its records and publishes its events.
type backend struct {
	name string
	// configure fills in the store and bus settings of cfg; calling it twice for one test
	// (a restart) must give the same store and bus.
	configure func(t *testing.T) func(cfg *server.Config)
}

var backends = []backend{
	{name: "embedded", configure: embeddedBackend},
	{name: "redis", configure: redisBackend},
}

// embeddedBackend: the defaults, an embedded store and an in-process NATS under one data
// directory, the NATS also listening on a random loopback port so that the test can watch.
func embeddedBackend(t *testing.T) func(cfg *server.Config) {
	dir := t.TempDir()
	return func(cfg *server.Config) {
		cfg.DataDir = dir
		cfg.EmbeddedNATSListen = "127.0.0.1:0"
	}
}

// redisBackend: the real Redis under a fresh key prefix (deleted afterwards) and a NATS
// server of the test's own, in-process on a random port, reached by URL like an external one.
func redisBackend(t *testing.T) func(cfg *server.Config) {
	return redisBackendAt(t, redisURL)
}

// redisBackendAt is redisBackend with the server reaching Redis at url (a proxy, say).
func redisBackendAt(t *testing.T, url string) func(cfg *server.Config) {
	prefix := servertest.RedisPrefix(t, "127.0.0.1:6379")
	natsURL := servertest.StartNATS(t).ClientURL()
	return func(cfg *server.Config) {
		cfg.DataDir = t.TempDir()
		cfg.RedisURL = url
		cfg.RedisPrefix = prefix
		cfg.NATSURL = natsURL
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// fakeAPI is the external app's API: GET /users/me answers who the bearer token belongs to.
func fakeAPI(t *testing.T, users map[string]string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/users/me" {
			http.NotFound(w, r)
			return
		}
		id, ok := users[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_auth"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"id": id, "name": "user " + id})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

var baseURIRe = regexp.MustCompile(`(?m)^(\s*baseUri:\s*)\S+`)

// connectorsDir copies the shipped example connector and the test connectors of
// testdata/e2e into a temporary tree, pointing their api.baseUri at apiURL.
func connectorsDir(t *testing.T, apiURL string) string {
	t.Helper()
	dst := t.TempDir()
	copyTree(t, "../../connectors/example", filepath.Join(dst, "example"))
	copyTree(t, "../../testdata/e2e/connectors/faulty", filepath.Join(dst, "faulty"))
	for _, key := range []string{"example", "faulty"} {
		p := filepath.Join(dst, key, "connector.yml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b = baseURIRe.ReplaceAll(b, []byte("${1}"+apiURL+"/"))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is a running server and what the test saw of it.
type harness struct {
	t        *testing.T
	srv      *server.Server
	base     string // http://127.0.0.1:port
	apiToken string
	logs     *syncBuffer
	stop     func()
	rec      *recorder
}

// recorder keeps every response body, except webhook listings (they carry tokens).
type recorder struct {
	mu        sync.Mutex
	responses []string
}

// with returns the harness reporting to t (a subtest).
func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

const publicURL = "https://switchboard.test"

// start runs a server with cfg until stop is called or the test ends. Logs go, at debug
// level, to logs (shared across restarts).
func start(t *testing.T, cfg server.Config, logs *syncBuffer) *harness {
	t.Helper()
	cfg.AllowPrivateNetworks = true // the fake API is on loopback
	return startStrict(t, cfg, logs)
}

// startStrict is start without allowing private networks.
func startStrict(t *testing.T, cfg server.Config, logs *syncBuffer) *harness {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.PublicURL = publicURL
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("starting the server: %v", err)
	}
	return &harness{t: t, srv: srv, base: srv.URL(), apiToken: cfg.APIToken, logs: logs, rec: &recorder{},
		stop: servertest.Run(t, srv)}
}

// rawBody is a request body sent as is.
type rawBody string

type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into v.
func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// errorCode returns the code of an {"error":{"code","message"}} body.
func (r response) errorCode(t *testing.T) (code, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	r.json(t, &e)
	if e.Error.Code == "" {
		t.Fatalf("want an error body, got %s", r.body)
	}
	return e.Error.Code, e.Error.Message
}

// do sends a request with the API token (when the harness has one) and a JSON body.
func (h *harness) do(method, path string, body any) response {
	h.t.Helper()
	var rd io.Reader
	if raw, ok := body.(rawBody); ok {
		rd = strings.NewReader(string(raw))
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if h.apiToken != "" {
		req.Header.Set("Authorization", "Bearer "+h.apiToken)
	}
	return h.send(req, !strings.HasSuffix(path, "/webhooks"))
}

func (h *harness) send(req *http.Request, record bool) response {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	if record {
		h.rec.mu.Lock()
		h.rec.responses = append(h.rec.responses, string(b))
		h.rec.mu.Unlock()
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// must sends a request and fails the test unless the status is want.
func (h *harness) must(want int, method, path string, body any) response {
	h.t.Helper()
	r := h.do(method, path, body)
	if r.status != want {
		h.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, want, r.body)
	}
	return r
}

// webhookPath returns the path of the integration's global webhook, checking that its URI
// is under the public URL.
func (h *harness) webhookPath(integration, webhook string) string {
	h.t.Helper()
	var hooks []struct{ Key, Name, URI string }
	h.must(200, "GET", "/v1/integrations/"+integration+"/webhooks", nil).json(h.t, &hooks)
	for _, wh := range hooks {
		if wh.Key == webhook {
			if !strings.HasPrefix(wh.URI, publicURL+"/webhooks/") {
				h.t.Fatalf("webhook uri %q is not under the public url %s", wh.URI, publicURL)
			}
			return strings.TrimPrefix(wh.URI, publicURL)
		}
	}
	h.t.Fatalf("integration %s has no webhook %s: %+v", integration, webhook, hooks)
	return ""
}

// post sends a request to an ingest path (no API token).
func (h *harness) post(path, contentType string, body []byte) response {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.t.Context(), "POST", h.base+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return h.send(req, true)
}

// assertNoSecrets fails when a secret shows in a recorded response or in the log.
func (h *harness) assertNoSecrets(secrets ...string) {
	h.t.Helper()
	logs := h.logs.String()
	h.rec.mu.Lock()
	responses := strings.Join(h.rec.responses, "\n")
	h.rec.mu.Unlock()
	for _, s := range secrets {
		if strings.Contains(responses, s) {
			h.t.Errorf("secret %q appears in an API response", s)
		}
		if strings.Contains(logs, s) {
			h.t.Errorf("secret %q appears in the log", s)
		}
	}
	if logs == "" {
		h.t.Errorf("no log captured")
	}
}
