package api

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// maxRequestBody bounds the JSON bodies of /v1 routes.
const maxRequestBody = 1 << 20

// validID reports whether s can be an integration key, connection id or customer id: these
// become NATS subject tokens, so [A-Za-z0-9_-]{1,128}.
func validID(s string) bool { return store.ValidKey(s) }

// checkID is a 400 naming field when value is not a valid id.
func checkID(field, value string) error {
	if value == "" {
		return invalid(field, "required")
	}
	if !validID(value) {
		return invalid(field, "must match [A-Za-z0-9_-]{1,128}")
	}
	return nil
}

// newID returns prefix followed by 130 random bits in lower-case base32 (no padding).
func newID(prefix string) string {
	b := make([]byte, 17)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:26]
}

// decodeJSON reads the request body as one JSON object into v. A malformed body, a field of
// the wrong type or trailing data is a 400 naming the field when it can.
func decodeJSON(c echo.Context, v any) error {
	r := c.Request()
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: codeUnsupportedMedia, Message: "want Content-Type: application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, maxRequestBody))
	if err != nil {
		return fmt.Errorf("reading request body: %w", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("", "request body: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return invalid("", "request body: want a JSON object")
			}
			return invalid(te.Field, "want %s, got %s", jsonType(te.Type.Kind().String()), te.Value)
		}
		return invalid("", "request body: %v", err)
	}
	if dec.More() {
		return invalid("", "request body: unexpected data after the JSON object")
	}
	return nil
}

func jsonType(kind string) string {
	switch kind {
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	}
	return "a " + kind
}
