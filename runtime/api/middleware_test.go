package api

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/channel"
)

const (
	logTestToken   = "tok_S3CRET_webhook_token"
	logTestChannel = "chan_S3CRET_channel_id"
)

// requestLines returns the "request" lines of a text log.
func requestLines(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, " msg=request ") {
			out = append(out, line)
		}
	}
	return out
}

// TestRequestLogLevels: successes of the ingest routes (global webhooks and channels) and of
// probes are logged at debug level, so an info-level logger drops them; 4xx stay at info
// level and 5xx at warn level, on every route; tokens and channel ids are never logged.
func TestRequestLogLevels(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		status int
		level  string // of the request line
		shown  string // path shown in it
	}{
		{"webhook 2xx", "POST", "/webhooks/" + logTestToken + "?sig=x", 202, "DEBUG", "/webhooks/[redacted]"},
		{"webhook GET 2xx", "GET", "/webhooks/" + logTestToken, 200, "DEBUG", "/webhooks/[redacted]"},
		{"webhook 4xx", "POST", "/webhooks/" + logTestToken, 404, "INFO", "/webhooks/[redacted]"},
		{"webhook 429", "POST", "/webhooks/" + logTestToken, 429, "INFO", "/webhooks/[redacted]"},
		{"webhook 5xx", "POST", "/webhooks/" + logTestToken, 503, "WARN", "/webhooks/[redacted]"},
		{"channel 2xx", "POST", "/hooks/" + logTestChannel, 200, "DEBUG", "/hooks/[redacted]"},
		{"channel 4xx", "POST", "/hooks/" + logTestChannel, 422, "INFO", "/hooks/[redacted]"},
		{"probe 2xx", "GET", "/healthz", 200, "DEBUG", "/healthz"},
		{"management 2xx", "GET", "/v1/integrations", 200, "INFO", "/v1/integrations"},
		{"management 4xx", "GET", "/v1/integrations", 400, "INFO", "/v1/integrations"},
	}
	for _, tt := range tests {
		for _, min := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
			t.Run(tt.name+"/logger at "+min.String(), func(t *testing.T) {
				var buf bytes.Buffer
				a := New(Config{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: min}))})
				// The API's middleware and error handler in front of handlers that answer
				// the status asked for, on the API's routes.
				e := echo.New()
				e.HTTPErrorHandler = a.handleError
				e.Use(a.logRequests)
				h := func(c echo.Context) error {
					status, _ := strconv.Atoi(c.Request().Header.Get("X-Test-Status"))
					if status >= 400 {
						return &Error{Status: status, Code: "test_code", Message: "test"}
					}
					c.Set(ctxIntegration, "shop")
					return c.NoContent(status)
				}
				e.Any(ingestRoute, h)
				e.POST("/hooks/:channelId", h)
				e.GET("/healthz", h)
				e.GET("/v1/integrations", h)

				req := httptest.NewRequest(tt.method, tt.path, nil)
				req.Header.Set("X-Test-Status", strconv.Itoa(tt.status))
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				if rec.Code != tt.status {
					t.Fatalf("status %d, want %d", rec.Code, tt.status)
				}

				log := buf.String()
				lines := requestLines(log)
				var want slog.Level
				if err := want.UnmarshalText([]byte(tt.level)); err != nil {
					t.Fatal(err)
				}
				if want < min {
					if len(lines) != 0 {
						t.Fatalf("a %s line was written by a %s logger: %q", tt.level, min, lines)
					}
					return
				}
				if len(lines) != 1 {
					t.Fatalf("want one request line, got %q", lines)
				}
				line := lines[0]
				for _, s := range []string{"level=" + tt.level + " ", "path=" + tt.shown + " ", "status=" + strconv.Itoa(tt.status) + " ", "duration="} {
					if !strings.Contains(line, s) {
						t.Errorf("request line lacks %q: %s", s, line)
					}
				}
				if tt.status >= 400 && !strings.Contains(line, "error=test_code") {
					t.Errorf("request line lacks the error code: %s", line)
				}
				if tt.status < 400 && strings.HasPrefix(tt.shown, "/webhooks/") && !strings.Contains(line, "integration=shop") {
					t.Errorf("request line lacks the integration: %s", line)
				}
				for _, secret := range []string{logTestToken, logTestChannel, "sig=x"} {
					if strings.Contains(log, secret) {
						t.Errorf("the log holds the secret %q:\n%s", secret, log)
					}
				}
			})
		}
	}
}

// TestChannelRequestLog goes through the API's own channel route: a published channel
// request is a debug line, an unknown channel id (404) an info line; the id is never logged.
func TestChannelRequestLog(t *testing.T) {
	for _, tt := range []struct {
		name   string
		min    slog.Level
		err    error
		status int
		want   string // level of the request line; "": none
	}{
		{"2xx, debug logger", slog.LevelDebug, nil, 200, "DEBUG"},
		{"2xx, info logger", slog.LevelInfo, nil, 200, ""},
		{"4xx, info logger", slog.LevelInfo, channel.ErrUnknownChannel, 404, "INFO"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			fake := &fakeChannels{receipt: channel.Receipt{ChannelKey: "orders"}, err: tt.err}
			a := New(Config{Channels: fake, Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.min}))})
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, httptest.NewRequest("POST", "/hooks/"+logTestChannel, strings.NewReader(`{}`)))
			if rec.Code != tt.status {
				t.Fatalf("status %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			log := buf.String()
			lines := requestLines(log)
			switch {
			case tt.want == "" && len(lines) != 0:
				t.Errorf("want no request line, got %q", lines)
			case tt.want != "" && (len(lines) != 1 || !strings.Contains(lines[0], "level="+tt.want+" ") ||
				!strings.Contains(lines[0], "path=/hooks/[redacted] ")):
				t.Errorf("want one %s request line with the redacted path, got %q", tt.want, lines)
			}
			if strings.Contains(log, logTestChannel) {
				t.Errorf("the log holds the channel id:\n%s", log)
			}
		})
	}
}
