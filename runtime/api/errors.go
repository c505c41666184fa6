package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// Error codes of the {"error":{"code"}} body. They are part of the public contract.
const (
	codeInvalidRequest   = "invalid_request"
	codeUnauthorized     = "unauthorized"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeConflict         = "conflict"
	codePayloadTooLarge  = "payload_too_large"
	codeUnsupportedMedia = "unsupported_media_type"
	codeSelectorFailed   = "selector_failed"
	codeUnprocessable    = "unprocessable"
	codeHandleFailed     = "handle_failed"
	codeInternal         = "internal"
	codeUnavailable      = "unavailable"
)

// retryAfter is what a 503 asks the client to wait before trying again.
const retryAfter = 5 * time.Second

// Error is a failed request as the client sees it: a status, a stable code and a message
// that is safe to show (no secrets). Cause, when set, is logged and never sent.
type Error struct {
	Status  int
	Code    string
	Message string
	Cause   error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// invalid is a 400 naming the offending field.
func invalid(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	return &Error{Status: http.StatusBadRequest, Code: codeInvalidRequest, Message: msg}
}

func notFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: fmt.Sprintf(format, args...)}
}

func unprocessable(code, message string, cause error) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: code, Message: message, Cause: cause}
}

// unavailable is a 503: a dependency (store, bus) cannot be reached; the client retries.
func unavailable(what string, cause error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: what + " unavailable, retry later", Cause: cause}
}

// fromStore maps a store error about the record described by what (e.g. `connection
// "conn_1"`): not found is a 404, already exists a 409, anything else means the store is
// unreachable (503).
func fromStore(err error, what string) *Error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: what + " not found"}
	case errors.Is(err, store.ErrExists):
		return &Error{Status: http.StatusConflict, Code: codeConflict, Message: what + " already exists"}
	}
	return unavailable("store", err)
}

// apiError turns any error a handler returned into the Error sent to the client. It is the
// one place where errors become statuses.
func apiError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if s, ok := he.Message.(string); ok && s != "" {
			msg = s
		}
		return &Error{Status: he.Code, Code: codeForStatus(he.Code), Message: lowerFirst(msg)}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: codePayloadTooLarge,
			Message: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: "not found"}
	case errors.Is(err, store.ErrExists):
		return &Error{Status: http.StatusConflict, Code: codeConflict, Message: "already exists"}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return unavailable("server", err)
	}
	return &Error{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error", Cause: err}
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return codeInvalidRequest
	case http.StatusUnauthorized:
		return codeUnauthorized
	case http.StatusNotFound:
		return codeNotFound
	case http.StatusMethodNotAllowed:
		return codeMethodNotAllowed
	case http.StatusConflict:
		return codeConflict
	case http.StatusRequestEntityTooLarge:
		return codePayloadTooLarge
	case http.StatusUnsupportedMediaType:
		return codeUnsupportedMedia
	case http.StatusUnprocessableEntity:
		return codeUnprocessable
	case http.StatusServiceUnavailable:
		return codeUnavailable
	}
	if status >= 500 {
		return codeInternal
	}
	return codeInvalidRequest
}

func lowerFirst(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return s
	}
	return string(s[0]+'a'-'A') + s[1:]
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// handleError is echo's HTTPErrorHandler: every error reply goes through it.
func (a *API) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	e := apiError(err)
	if e.Status >= 500 {
		a.log.LogAttrs(c.Request().Context(), levelFor(e.Status), "request failed",
			routeAttrs(c, e.Status, e.Error())...)
	}
	h := c.Response().Header()
	if e.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	}
	if e.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="switchboard"`)
	}
	c.Set(ctxErrorCode, e.Code)
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(e.Status)
		return
	}
	_ = c.JSON(e.Status, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}})
}
