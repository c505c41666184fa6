package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestServeSettings(t *testing.T) {
	dir := t.TempDir()
	configFile := filepath.Join(dir, "switchboard.yml")
	if err := os.WriteFile(configFile, []byte(`# test settings
listen: ":7000"
public-url: https://hooks.example.com
max-body: 512KiB
allow-private-networks: true
script-timeout: 2s
redis-url: redis://config:6379/0
log-level: error
`), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, s serveSettings)
	}{
		{name: "defaults", check: func(t *testing.T, s serveSettings) {
			want := serveSettings{listen: ":8080", publicURL: "http://localhost:8080", connectors: "./connectors",
				dataDir: "./data", maxBody: 1 << 20, scriptTimeout: 5 * time.Second,
				reloadInterval: 2 * time.Second, ingestRate: 1000, ingestBurst: 2000, dedupTTL: 7 * 24 * time.Hour,
				deliveryTimeout: 15 * time.Second, deliveryRetries: defaultDeliveryRetries, logLevel: logLevel(slog.LevelInfo)}
			if s != want {
				t.Errorf("got %+v, want %+v", s, want)
			}
		}},
		{name: "config file", args: []string{"--config", configFile}, check: func(t *testing.T, s serveSettings) {
			if s.listen != ":7000" || s.publicURL != "https://hooks.example.com" || s.maxBody != 512<<10 ||
				!s.allowPrivateNetworks || s.scriptTimeout != 2*time.Second || s.redisURL != "redis://config:6379/0" {
				t.Errorf("got %+v", s)
			}
			if s.connectors != "./connectors" {
				t.Errorf("unset key: connectors = %q, want the default", s.connectors)
			}
			if s.logLevel != logLevel(slog.LevelError) {
				t.Errorf("log-level = %v, want error", &s.logLevel)
			}
		}},
		{name: "log level, any case", args: []string{"--log-level=DEBUG"}, check: func(t *testing.T, s serveSettings) {
			if s.logLevel != logLevel(slog.LevelDebug) || s.logLevel.String() != "debug" {
				t.Errorf("log-level = %v, want debug", &s.logLevel)
			}
		}},
		{name: "config file named by the environment", env: map[string]string{"SWITCHBOARD_CONFIG": configFile}, check: func(t *testing.T, s serveSettings) {
			if s.listen != ":7000" {
				t.Errorf("listen = %q, want :7000", s.listen)
			}
		}},
		{name: "environment beats config file", args: []string{"--config", configFile},
			env: map[string]string{"SWITCHBOARD_LISTEN": ":8000", "SWITCHBOARD_MAX_BODY": "1048576", "SWITCHBOARD_ALLOW_PRIVATE_NETWORKS": "false"},
			check: func(t *testing.T, s serveSettings) {
				if s.listen != ":8000" || s.maxBody != 1<<20 || s.allowPrivateNetworks {
					t.Errorf("got %+v", s)
				}
				if s.publicURL != "https://hooks.example.com" {
					t.Errorf("public-url = %q, want the config file's", s.publicURL)
				}
			}},
		{name: "flag beats environment and config file", args: []string{"--config", configFile, "--listen", ":9000", "--max-body=1MiB"},
			env: map[string]string{"SWITCHBOARD_LISTEN": ":8000", "SWITCHBOARD_API_TOKEN": "from-env"},
			check: func(t *testing.T, s serveSettings) {
				if s.listen != ":9000" || s.maxBody != 1<<20 || s.apiToken != "from-env" {
					t.Errorf("got %+v", s)
				}
			}},
		{name: "every flag", args: []string{
			"--listen", "127.0.0.1:1", "--public-url", "https://p", "--connectors", "c", "--data-dir", "d",
			"--redis-url", "redis://r", "--nats-url", "nats://n", "--embedded-nats-listen", "127.0.0.1:4222",
			"--api-token", "t", "--allow-private-networks", "--max-body", "2MB", "--script-timeout", "1500ms",
			"--reload-interval", "0", "--ingest-rate", "2.5", "--ingest-burst", "5", "--dedup-ttl", "72h",
			"--delivery-timeout", "3s", "--delivery-retries", "0s,1s", "--log-level", "debug",
		}, check: func(t *testing.T, s serveSettings) {
			want := serveSettings{listen: "127.0.0.1:1", publicURL: "https://p", connectors: "c", dataDir: "d",
				redisURL: "redis://r", natsURL: "nats://n", embeddedNATSListen: "127.0.0.1:4222", apiToken: "t",
				allowPrivateNetworks: true, maxBody: 2000000, scriptTimeout: 1500 * time.Millisecond,
				ingestRate: 2.5, ingestBurst: 5, dedupTTL: 72 * time.Hour,
				deliveryTimeout: 3 * time.Second, deliveryRetries: "0s,1s", logLevel: logLevel(slog.LevelDebug)}
			if s != want {
				t.Errorf("got %+v, want %+v", s, want)
			}
		}},
		{name: "every environment variable", env: map[string]string{
			"SWITCHBOARD_LISTEN": "127.0.0.1:1", "SWITCHBOARD_PUBLIC_URL": "https://p", "SWITCHBOARD_CONNECTORS": "c",
			"SWITCHBOARD_DATA_DIR": "d", "SWITCHBOARD_REDIS_URL": "redis://r", "SWITCHBOARD_NATS_URL": "nats://n",
			"SWITCHBOARD_EMBEDDED_NATS_LISTEN": "127.0.0.1:4222", "SWITCHBOARD_API_TOKEN": "t",
			"SWITCHBOARD_ALLOW_PRIVATE_NETWORKS": "true", "SWITCHBOARD_MAX_BODY": "64KiB", "SWITCHBOARD_SCRIPT_TIMEOUT": "1s",
			"SWITCHBOARD_RELOAD_INTERVAL": "500ms", "SWITCHBOARD_INGEST_RATE": "0", "SWITCHBOARD_INGEST_BURST": "7",
			"SWITCHBOARD_DEDUP_TTL": "1h", "SWITCHBOARD_DELIVERY_TIMEOUT": "4s", "SWITCHBOARD_DELIVERY_RETRIES": "0s",
			"SWITCHBOARD_LOG_LEVEL": "warn",
		}, check: func(t *testing.T, s serveSettings) {
			want := serveSettings{listen: "127.0.0.1:1", publicURL: "https://p", connectors: "c", dataDir: "d",
				redisURL: "redis://r", natsURL: "nats://n", embeddedNATSListen: "127.0.0.1:4222", apiToken: "t",
				allowPrivateNetworks: true, maxBody: 64 << 10, scriptTimeout: time.Second,
				reloadInterval: 500 * time.Millisecond, ingestBurst: 7, dedupTTL: time.Hour,
				deliveryTimeout: 4 * time.Second, deliveryRetries: "0s", logLevel: logLevel(slog.LevelWarn)}
			if s != want {
				t.Errorf("got %+v, want %+v", s, want)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseServeSettings(tt.args, mapEnv(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			s.config = ""
			tt.check(t, s)
		})
	}
}

func TestServeSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "unknown config key", args: []string{"--config", write("unknown.yml", "listen: :1\nlisten-addr: :2\n")}, want: `unknown.yml:2: unknown setting "listen-addr"`},
		{name: "bad size in config", args: []string{"--config", write("size.yml", "max-body: lots\n")}, want: "size.yml:1: max-body"},
		{name: "config not a mapping", args: []string{"--config", write("list.yml", "- a\n")}, want: "want a mapping"},
		{name: "missing config file", args: []string{"--config", filepath.Join(dir, "nope.yml")}, want: "reading config file"},
		{name: "bad environment value", env: map[string]string{"SWITCHBOARD_SCRIPT_TIMEOUT": "soon"}, want: "SWITCHBOARD_SCRIPT_TIMEOUT"},
		{name: "bad size flag", args: []string{"--max-body", "1XB"}, want: `unknown unit "XB"`},
		{name: "zero size", args: []string{"--max-body", "0"}, want: "must be positive"},
		{name: "positional argument", args: []string{"extra"}, want: "serve takes no arguments"},
		{name: "unknown flag", args: []string{"--listen-addr", ":1"}, want: "flag provided but not defined"},
		{name: "bad log level flag", args: []string{"--log-level", "verbose"}, want: `log-level "verbose": want debug, info, warn or error`},
		{name: "bad log level in environment", env: map[string]string{"SWITCHBOARD_LOG_LEVEL": "trace"}, want: `SWITCHBOARD_LOG_LEVEL: log-level "trace"`},
		{name: "bad log level in config", args: []string{"--config", write("level.yml", "log-level: loud\n")}, want: `level.yml:1: log-level`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseServeSettings(tt.args, mapEnv(tt.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1MiB": 1 << 20, "512KiB": 512 << 10, "1048576": 1 << 20, "1mib": 1 << 20, "2 MB": 2000000,
		"10kB": 10000, "1GiB": 1 << 30, "100B": 100,
	} {
		got, err := parseByteSize(in)
		if err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "1TiB", "99999999999999999999"} {
		if _, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q): want an error", in)
		}
	}
}

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// lockedBuffer is a bytes.Buffer written by the server's goroutines and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var (
	readyAddr = regexp.MustCompile(`msg="switchboard ready" addr=(\S+)`)
	debugAddr = regexp.MustCompile(`msg="pprof listening" addr=(\S+)`)
)

// TestServeCommand runs `switchboard serve` in-process on the embedded defaults, reads the
// bound address from its log (written at --log-level debug), and stops it by cancelling its
// context.
func TestServeCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr lockedBuffer
	done := make(chan error, 1)
	args := []string{"serve", "--listen", "127.0.0.1:0", "--connectors", "../../connectors", "--data-dir", t.TempDir(),
		"--debug-listen", "127.0.0.1:0", "--log-level", "debug"}
	go func() { done <- run(ctx, args, mapEnv(nil), io.Discard, &stderr) }()

	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == "" && time.Now().Before(deadline); {
		select {
		case err := <-done:
			t.Fatalf("serve returned early: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if m := readyAddr.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("no ready line in the log:\n%s", stderr.String())
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("healthz: %d %s", resp.StatusCode, body)
	}
	// pprof is served on --debug-listen, and only there.
	m := debugAddr.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no pprof line in the log:\n%s", stderr.String())
	}
	for url, want := range map[string]int{"http://" + m[1] + "/debug/pprof/": 200, "http://" + addr + "/debug/pprof/": 404} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", url, resp.StatusCode, want)
		}
	}
	// --log-level debug reaches the logger: the probe's success is a debug line.
	if !regexp.MustCompile(`level=DEBUG msg=request .*path=/healthz status=200 `).MatchString(stderr.String()) {
		t.Errorf("no debug request line for /healthz with --log-level debug:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "no API token configured") {
		t.Errorf("no warning about the missing API token:\n%s", stderr.String())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s of its context ending")
	}
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Errorf("no shutdown line in the log")
	}
}

// TestServeRefusesBrokenConnectors: a tree that does not load stops serve before it listens,
// with every problem reported.
func TestServeRefusesBrokenConnectors(t *testing.T) {
	dir := t.TempDir()
	hook := filepath.Join(dir, "broken", "global-webhooks", "hook")
	if err := os.MkdirAll(hook, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		filepath.Join(dir, "broken", "connector.yml"): "key: broken\nname: Broken\nparametersSchema: { type: 12 }\n",
		filepath.Join(hook, "spec.yml"):               "name: Hook\nmethods:\n  handle:\n    implementationType: javascript\n",
		filepath.Join(hook, "handle.js"):              "export default function handle( {\n",
	} {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err := run(t.Context(), []string{"serve", "--listen", "127.0.0.1:0", "--connectors", dir, "--data-dir", t.TempDir()},
		mapEnv(nil), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("serve started with a broken connector tree")
	}
	var ue *usageError
	if errors.As(err, &ue) {
		t.Errorf("a broken tree is not a usage error: %v", err)
	}
	for _, want := range []string{"broken/connector.yml:3:", "hook/handle.js:2:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %s:\n%v", want, err)
		}
	}
}
