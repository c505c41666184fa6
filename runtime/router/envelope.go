package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Envelope values of routed events (SPEC 4).
const (
	SourceApps        = "apps"
	ResourceApp       = "app"
	EventNameReceived = "event_received"

	eventIDPrefix   = "evt_"
	timestampLayout = "2006-01-02T15:04:05.000Z" // applied to UTC times only
	crockfordBase32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	ulidLen         = 26
)

// Envelope is the body of every message on the bus. Its JSON form is SPEC 4's envelope:
// fields in that order, timestamp in UTC with milliseconds, payload embedded as is.
// Metadata is present on routed events and absent on state changes.
type Envelope struct {
	ID             string          `json:"id"` // "evt_" + a ULID
	OrganizationID string          `json:"organizationId"`
	Source         string          `json:"source"`
	Resource       string          `json:"resource"`
	ResourceID     string          `json:"resourceId"`
	EventName      string          `json:"eventName"`
	Timestamp      time.Time       `json:"timestamp"`
	Payload        json.RawMessage `json:"payload"` // must be valid JSON; empty encodes as null
	Metadata       *Metadata       `json:"metadata,omitempty"`
}

// Metadata tells which subscription a routed event is for and why.
type Metadata struct {
	ConnectionID     string  `json:"connectionId"`
	SubscriptionID   string  `json:"subscriptionId"`
	EventKey         string  `json:"eventKey"`
	GlobalWebhookKey string  `json:"globalWebhookKey"`
	Selector         string  `json:"selector"`
	Channel          *string `json:"channel"`           // null unless the event came from a channel
	EventType        *string `json:"eventType"`         // null unless the event came from a channel
	EventID          string  `json:"eventId,omitempty"` // the event's id at the external app, when known
}

// MarshalJSON encodes e as AppendJSON does. Note that json.Marshal compacts what it returns,
// payload included; publishers use AppendJSON, which keeps the payload's bytes.
func (e Envelope) MarshalJSON() ([]byte, error) {
	if len(e.Payload) > 0 && !json.Valid(e.Payload) {
		return nil, errors.New("encoding envelope: payload is not valid JSON")
	}
	return e.AppendJSON(nil), nil
}

// AppendJSON appends e's JSON encoding to dst. e.Payload is copied byte for byte and is not
// checked: it must be valid JSON.
func (e *Envelope) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"organizationId":`...)
	dst = appendString(dst, e.OrganizationID)
	dst = append(dst, `,"source":`...)
	dst = appendString(dst, e.Source)
	dst = append(dst, `,"resource":`...)
	dst = appendString(dst, e.Resource)
	dst = append(dst, `,"resourceId":`...)
	dst = appendString(dst, e.ResourceID)
	dst = append(dst, `,"eventName":`...)
	dst = appendString(dst, e.EventName)
	dst = append(dst, `,"timestamp":"`...)
	dst = e.Timestamp.UTC().AppendFormat(dst, timestampLayout)
	dst = append(dst, `","payload":`...)
	if len(e.Payload) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, e.Payload...)
	}
	if m := e.Metadata; m != nil {
		dst = append(dst, `,"metadata":{"connectionId":`...)
		dst = appendString(dst, m.ConnectionID)
		dst = append(dst, `,"subscriptionId":`...)
		dst = appendString(dst, m.SubscriptionID)
		dst = append(dst, `,"eventKey":`...)
		dst = appendString(dst, m.EventKey)
		dst = append(dst, `,"globalWebhookKey":`...)
		dst = appendString(dst, m.GlobalWebhookKey)
		dst = append(dst, `,"selector":`...)
		dst = appendString(dst, m.Selector)
		dst = append(dst, `,"channel":`...)
		dst = appendNullableString(dst, m.Channel)
		dst = append(dst, `,"eventType":`...)
		dst = appendNullableString(dst, m.EventType)
		if m.EventID != "" {
			dst = append(dst, `,"eventId":`...)
			dst = appendString(dst, m.EventID)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func appendNullableString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return appendString(dst, *s)
}

// appendString appends s as a JSON string. Keys, ids and most selectors are plain ASCII and
// are copied as they are; anything that needs escaping goes through encoding/json, so both
// paths give encoding/json's output.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// encodePayload returns the JSON of an event's payload: raw when given (checked, never
// re-encoded); v itself when it is a json.RawMessage, which its maker vouches for (the
// sandbox hands back the checked JSON of a request body that way: checking it again cost
// ~5% of an ingest request); else v encoded without HTML escaping.
func encodePayload(v any, raw []byte) (json.RawMessage, error) {
	if rm, ok := v.(json.RawMessage); ok && raw == nil && len(rm) > 0 {
		return rm, nil
	}
	if raw != nil {
		if !json.Valid(raw) {
			return nil, errors.New("encoding payload: raw payload is not valid JSON")
		}
		return raw, nil
	}
	if v == nil {
		return json.RawMessage("null"), nil
	}
	if b, ok := appendPlain(nil, v, 0); ok {
		return b, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding payload: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// appendPlain appends the JSON of v when v is made of the plain values a handle returns
// (map[string]any, []any, string, float64, bool, nil), byte for byte what encodePayload's
// encoding/json gives (keys sorted, no HTML escaping); ok is false for anything else
// (NaN and infinities included), which the caller then encodes with encoding/json.
func appendPlain(dst []byte, v any, depth int) (_ []byte, ok bool) {
	if depth > 1000 {
		return dst, false // encoding/json reports the cycle or the depth
	}
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case bool:
		return strconv.AppendBool(dst, v), true
	case string:
		return appendPlainString(dst, v), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return dst, false
		}
		// encoding/json's float format: %f, or %e outside [1e-6, 1e21) with a one-digit
		// negative exponent's leading zero dropped.
		format := byte('f')
		if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
			format = 'e'
		}
		dst = strconv.AppendFloat(dst, v, format, -1, 64)
		if format == 'e' {
			if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
				dst[n-2] = dst[n-1]
				dst = dst[:n-1]
			}
		}
		return dst, true
	case []any:
		if v == nil {
			return append(dst, "null"...), true
		}
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, ok = appendPlain(dst, e, depth+1); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	case map[string]any:
		if v == nil {
			return append(dst, "null"...), true
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendPlainString(dst, k)
			dst = append(dst, ':')
			if dst, ok = appendPlain(dst, v[k], depth+1); !ok {
				return dst, false
			}
		}
		return append(dst, '}'), true
	}
	return dst, false
}

// appendPlainString appends s as encoding/json writes it without HTML escaping: printable
// ASCII as is, anything else through an Encoder.
func appendPlainString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.Encode(s) // a string always encodes
			return append(dst, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// NewEventID returns a new envelope id for time t, as the router gives its envelopes:
// "evt_" and a ULID. For packages that publish envelopes of their own (channels).
func NewEventID(t time.Time) string { return newEventID(t) }

// newEventID returns "evt_" and a ULID for time t: 48 bits of Unix milliseconds then 80
// random bits, in Crockford base32, so ids sort by millisecond. The randomness comes from
// math/rand/v2's ChaCha8 source, seeded by the OS; ids need to be unique, not secret.
func newEventID(t time.Time) string {
	ms := uint64(t.UnixMilli()) & (1<<48 - 1)
	var b [len(eventIDPrefix) + ulidLen]byte
	return string(appendULID(append(b[:0], eventIDPrefix...), ms, rand.Uint64(), rand.Uint64()))
}

// appendULID encodes the 128 bits ms(48) | r1 low 16 bits | r2(64) as 26 base32 digits.
func appendULID(dst []byte, ms, r1, r2 uint64) []byte {
	hi := ms<<16 | r1&0xffff
	lo := r2
	var out [ulidLen]byte
	for i := ulidLen - 1; i >= 0; i-- {
		out[i] = crockfordBase32[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return append(dst, out[:]...)
}
