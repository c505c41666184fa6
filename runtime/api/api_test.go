package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/store"
)

func TestValidID(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{"conn_1", true}, {"A-z_09", true}, {strings.Repeat("a", 128), true},
		{"", false}, {strings.Repeat("a", 129), false}, {"a.b", false}, {"a b", false},
		{"a*", false}, {"a>", false}, {"é", false}, {"a/b", false},
	} {
		if got := validID(tt.id); got != tt.want {
			t.Errorf("validID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := newID("conn_")
		if !validID(id) || !strings.HasPrefix(id, "conn_") || len(id) != len("conn_")+26 {
			t.Fatalf("newID = %q", id)
		}
		if seen[id] {
			t.Fatalf("newID repeated %q", id)
		}
		seen[id] = true
	}
}

func TestRedact(t *testing.T) {
	secrets := map[string]any{
		"token":  "abcd1234",
		"nested": map[string]any{"list": []any{"longer-abcd1234-value"}},
		"short":  "ab",
		"n":      42.0,
	}
	got := redact("failed with abcd1234 and longer-abcd1234-value; ab stays", secrets)
	want := "failed with [redacted] and [redacted]; ab stays"
	if got != want {
		t.Errorf("redact = %q, want %q", got, want)
	}
}

func TestBearer(t *testing.T) {
	for _, tt := range []struct {
		header, token string
		ok            bool
	}{
		{"Bearer abc", "abc", true}, {"bearer  abc ", "abc", true},
		{"", "", false}, {"Bearer", "", false}, {"Bearer ", "", false}, {"Basic abc", "", false}, {"abc", "", false},
	} {
		token, ok := bearer(tt.header)
		if token != tt.token || ok != tt.ok {
			t.Errorf("bearer(%q) = %q, %v; want %q, %v", tt.header, token, ok, tt.token, tt.ok)
		}
	}
}

func TestDeliveryKey(t *testing.T) {
	key := func(method, target, body string) string {
		return deliveryKey(httptest.NewRequest(method, target, nil), []byte(body))
	}
	a := key("POST", "/webhooks/t1?x=1", `{"a":1}`)
	if a != key("POST", "/webhooks/t1?x=1", `{"a":1}`) {
		t.Error("the same request gave two keys")
	}
	for name, other := range map[string]string{
		"method": key("PUT", "/webhooks/t1?x=1", `{"a":1}`),
		"path":   key("POST", "/webhooks/t2?x=1", `{"a":1}`),
		"query":  key("POST", "/webhooks/t1?x=2", `{"a":1}`),
		"body":   key("POST", "/webhooks/t1?x=1", `{"a":2}`),
	} {
		if other == a {
			t.Errorf("a different %s gave the same key", name)
		}
	}
}

func TestAPIError(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"api error", invalid("key", "bad"), 400, "invalid_request"},
		{"wrapped api error", fmt.Errorf("x: %w", notFound("gone")), 404, "not_found"},
		{"store not found", fmt.Errorf("getting: %w", store.ErrNotFound), 404, "not_found"},
		{"store exists", fromStore(store.ErrExists, "integration \"a\""), 409, "conflict"},
		{"store down", fromStore(errors.New("dial tcp: connection refused"), "integration \"a\""), 503, "unavailable"},
		{"body too large", &http.MaxBytesError{Limit: 10}, 413, "payload_too_large"},
		{"echo not found", echo.ErrNotFound, 404, "not_found"},
		{"echo method not allowed", echo.ErrMethodNotAllowed, 405, "method_not_allowed"},
		{"anything else", errors.New("boom"), 500, "internal"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := apiError(tt.err)
			if e.Status != tt.status || e.Code != tt.code {
				t.Errorf("apiError = %d %s, want %d %s", e.Status, e.Code, tt.status, tt.code)
			}
			if e.Status == 500 && strings.Contains(e.Message, "boom") {
				t.Errorf("an internal error's cause reached the message: %q", e.Message)
			}
		})
	}
}

func TestInvalidNamesField(t *testing.T) {
	if got := invalid("customerId", "must match %s", "x").Message; got != "customerId: must match x" {
		t.Errorf("message = %q", got)
	}
}
