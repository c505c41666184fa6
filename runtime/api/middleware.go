package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Keys of values handlers leave on the echo context for the request log.
const (
	ctxIntegration = "switchboard.integration"
	ctxWebhook     = "switchboard.webhook"
	ctxErrorCode   = "switchboard.error"
)

// isProbe tells the routes polled by machines; their successes are logged at debug level.
func isProbe(route string) bool {
	switch route {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	return false
}

// ingestRoute is the route whose path carries a secret token: it is never logged as is.
const ingestRoute = "/webhooks/:token"

// requireToken checks the bearer token of /v1 routes when one is configured. Both sides are
// hashed first so that the comparison takes the same time whatever the lengths.
func (a *API) requireToken(next echo.HandlerFunc) echo.HandlerFunc {
	if a.cfg.APIToken == "" {
		return next
	}
	want := sha256.Sum256([]byte(a.cfg.APIToken))
	return func(c echo.Context) error {
		got, ok := bearer(c.Request().Header.Get("Authorization"))
		if !ok {
			return &Error{Status: http.StatusUnauthorized, Code: codeUnauthorized, Message: "missing bearer token in the Authorization header"}
		}
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			return &Error{Status: http.StatusUnauthorized, Code: codeUnauthorized, Message: "invalid API token"}
		}
		return next(c)
	}
}

func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// isIngest tells the routes external apps send webhooks to: the global webhook route and
// the channel routes. Like probes, their successes are logged at debug level: at firehose
// rates the line would cost more CPU than the request, and the metrics count them anyway
// (channels: their events).
func isIngest(route string) bool {
	return route == ingestRoute || strings.HasPrefix(route, "/hooks/")
}

// logRequests writes one log line per request: at debug level for the successes (status
// below 400) of probes and ingest routes, at warn level for 5xx, else at info level. The
// level is checked first, so that a line the logger would drop costs no attributes. The path
// of an ingest request holds its token, so ingest lines show the route and the integration
// and webhook keys instead; query strings are never logged, since senders put secrets there
// too.
func (a *API) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err) // writes the reply, so the status below is the one sent
		}
		status := c.Response().Status
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelWarn
		case status < 400 && (isProbe(c.Path()) || isIngest(c.Path())):
			level = slog.LevelDebug // probes: polled every few seconds; ingest: the firehose
		}
		ctx := c.Request().Context()
		if !a.log.Enabled(ctx, level) {
			return nil
		}
		attrs := routeAttrs(c, status, "")
		attrs = append(attrs, slog.Duration("duration", time.Since(start)))
		if code, ok := c.Get(ctxErrorCode).(string); ok {
			attrs = append(attrs, slog.String("error", code))
		}
		a.log.LogAttrs(ctx, level, "request", attrs...)
		return nil
	}
}

// routeAttrs describes the request without anything secret.
func routeAttrs(c echo.Context, status int, reason string) []slog.Attr {
	r := c.Request()
	path := r.URL.Path
	switch {
	case c.Path() == ingestRoute || strings.HasPrefix(path, "/webhooks/"):
		path = "/webhooks/[redacted]"
	case strings.HasPrefix(path, "/hooks/"):
		path = "/hooks/[redacted]" // a channel id is as secret as a webhook token
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", path),
		slog.Int("status", status),
	}
	if v, ok := c.Get(ctxIntegration).(string); ok {
		attrs = append(attrs, slog.String("integration", v))
	}
	if v, ok := c.Get(ctxWebhook).(string); ok {
		attrs = append(attrs, slog.String("webhook", v))
	}
	if reason != "" {
		attrs = append(attrs, slog.String("reason", reason))
	}
	return attrs
}

func levelFor(status int) slog.Level {
	if status >= 500 && status != http.StatusServiceUnavailable {
		return slog.LevelError
	}
	return slog.LevelWarn
}

// recoverPanics turns a panicking handler into a 500, logged with its value.
func (a *API) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				err = &Error{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error", Cause: fmt.Errorf("panic: %v", v)}
			}
		}()
		return next(c)
	}
}
