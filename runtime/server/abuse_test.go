package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/server"
)

// TestSlowClients checks that a client trickling its request cannot hold a connection: the
// headers are bounded by ReadHeaderTimeout, the whole request by ReadTimeout; and that a
// hijacked connection (a WebSocket) outlives both.
func TestSlowClients(t *testing.T) {
	cfg := server.Config{
		ConnectorsDir:     connectorsDir(t, fakeAPI(t, nil)),
		ReadHeaderTimeout: 300 * time.Millisecond,
		ReadTimeout:       700 * time.Millisecond,
	}
	embeddedBackend(t)(&cfg)
	h := start(t, cfg, &syncBuffer{})
	// A test route that holds a WebSocket open for longer than both timeouts. It is added
	// before the first request.
	hold := 3 * cfg.ReadTimeout
	h.srv.API().Echo().GET("/test/ws", func(c echo.Context) error {
		conn, err := websocket.Accept(c.Response(), c.Request(), nil)
		if err != nil {
			return nil
		}
		defer conn.CloseNow()
		ctx := c.Request().Context()
		typ, msg, err := conn.Read(ctx)
		if err != nil {
			return nil
		}
		time.Sleep(hold)
		return conn.Write(ctx, typ, msg)
	})

	h.must(201, "POST", "/v1/integrations", map[string]any{"key": "ex1", "connectorKey": "example", "parameters": map[string]any{}})
	path := h.webhookPath("ex1", "webhook-key")

	dial := func(t *testing.T) net.Conn {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	// cutWithin reads until the server answers or closes, failing after limit.
	cutWithin := func(t *testing.T, conn net.Conn, limit time.Duration) string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(limit))
		b, err := io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %s (read %q)", limit, b)
		}
		return string(b)
	}

	t.Run("slow headers are cut", func(t *testing.T) {
		conn := dial(t)
		start := time.Now()
		io.WriteString(conn, "POST "+path+" HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		for range 3 {
			time.Sleep(100 * time.Millisecond)
			if _, err := io.WriteString(conn, "a"); err != nil {
				break
			}
		}
		got := cutWithin(t, conn, 5*time.Second)
		if strings.Contains(got, " 20") {
			t.Fatalf("a request with unfinished headers was answered: %q", got)
		}
		if d := time.Since(start); d < cfg.ReadHeaderTimeout {
			t.Fatalf("cut after %s, before ReadHeaderTimeout", d)
		}
	})

	t.Run("slow body is cut", func(t *testing.T) {
		conn := dial(t)
		io.WriteString(conn, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
		got := cutWithin(t, conn, 5*time.Second)
		if strings.HasPrefix(got, "HTTP/1.1 2") {
			t.Fatalf("a request with an unfinished body was answered: %q", got)
		}
	})

	t.Run("a prompt request on a fresh connection still works", func(t *testing.T) {
		if r := h.post(path, "application/json", []byte(`{"from_user_id":"U1"}`)); r.status != 201 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})

	t.Run("a websocket outlives the read timeouts", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.base, "http")+"/test/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		if err := conn.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		_, msg, err := conn.Read(ctx)
		if err != nil || string(msg) != "ping" {
			t.Fatalf("after %s: %q, %v", hold, msg, err)
		}
	})
}

// TestIngestRateLimit floods one global webhook URL past its bucket: it gets 429 with
// Retry-After, while another integration's URL keeps answering.
func TestIngestRateLimit(t *testing.T) {
	cfg := server.Config{
		ConnectorsDir: connectorsDir(t, fakeAPI(t, nil)),
		IngestRate:    0.5, // a token every 2s: none comes back during the test
		IngestBurst:   3,
	}
	embeddedBackend(t)(&cfg)
	h := start(t, cfg, &syncBuffer{})
	for _, key := range []string{"ex1", "ex2"} {
		h.must(201, "POST", "/v1/integrations", map[string]any{"key": key, "connectorKey": "example", "parameters": map[string]any{}})
	}
	flooded, other := h.webhookPath("ex1", "webhook-key"), h.webhookPath("ex2", "webhook-key")
	body := []byte(`{"from_user_id":"U1"}`)

	for i := range cfg.IngestBurst {
		if r := h.post(flooded, "application/json", body); r.status != 201 {
			t.Fatalf("request %d of the burst: %d %s", i+1, r.status, r.body)
		}
	}
	r := h.post(flooded, "application/json", body)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("past the burst: %d %s, want 429", r.status, r.body)
	}
	if ra := r.header.Get("Retry-After"); ra != "1" && ra != "2" {
		t.Errorf("Retry-After %q, want 1 or 2 (seconds until a token)", ra)
	}
	if code, _ := r.errorCode(t); code != "rate_limited" {
		t.Errorf("code %q, want rate_limited", code)
	}
	if r := h.post(other, "application/json", body); r.status != 201 {
		t.Fatalf("another integration's URL while the first is flooded: %d %s", r.status, r.body)
	}
	// Unknown tokens are not rate limited (nor remembered): they stay 404.
	if r := h.post("/webhooks/nope", "application/json", body); r.status != 404 {
		t.Fatalf("unknown token: %d", r.status)
	}
}
