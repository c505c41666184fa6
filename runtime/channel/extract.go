package channel

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/switchboard-run/switchboard/runtime/connector"
)

var (
	// ErrNoMatch: no event definition of the channel recognised the message.
	ErrNoMatch = errors.New("no event definition matched")
	// ErrUnknownChannel: no webhook or cloudevents channel has this id.
	ErrUnknownChannel = errors.New("unknown channel")
	// ErrMalformed: what arrived cannot be read (not JSON, not a CloudEvent).
	ErrMalformed = errors.New("malformed message")
	// ErrConnectorMissing: the channel's connector or the channel itself is not loaded (the
	// connector tree changed under an existing integration); senders should retry later.
	ErrConnectorMissing = errors.New("connector or channel not loaded")
)

// Event is one event extracted from what a channel received.
type Event struct {
	Type    string
	ID      string          // the event's id at the external app; "" when there is none
	Payload json.RawMessage // the extracted payload, as JSON

	// key identifies the event across resends, for the bus's de-duplication: its id, or a
	// hash of the message it came from.
	key string
}

// RejectedError reports a payload that fails its event definition's schema.
type RejectedError struct {
	Type   string
	ID     string
	Issues []string // schema issues: locations and keywords, never payload values
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("payload of event type %q fails its schema: %v", e.Type, e.Issues)
}

// decodeJSON parses one JSON value, numbers as json.Number so that ids and amounts keep
// every digit through extraction and schema validation.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: decoding JSON: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("%w: unexpected data after the JSON value", ErrMalformed)
	}
	return v, nil
}

// Extract recognises msg (a decoded JSON value) with ch's event definitions: the first whose
// typePath value equals its type wins (a definition without typePath matches anything), and
// its idPath and payloadPath give the event's id and payload. ErrNoMatch when none matches;
// a *RejectedError when the payload fails the definition's schema. raw, when not nil, is what
// arrived, hashed to identify an event without an id.
func Extract(ch *connector.Channel, msg any, raw []byte) (Event, error) {
	for i := range ch.Events {
		def := &ch.Events[i]
		if def.TypePath != nil {
			if t, ok := def.TypePath.First(msg).(string); !ok || t != def.Type {
				continue
			}
		}
		ev := Event{Type: def.Type}
		if def.IDPath != nil {
			ev.ID = scalar(def.IDPath.First(msg))
		}
		payload := msg
		if def.PayloadPath != nil {
			payload = def.PayloadPath.First(msg)
		}
		return finish(def, ev, payload, raw)
	}
	return Event{}, ErrNoMatch
}

// finish validates and encodes the payload of an event def recognised.
func finish(def *connector.ChannelEvent, ev Event, payload any, raw []byte) (Event, error) {
	if err := def.ValidatePayload(payload); err != nil {
		var ve *connector.ValidationError
		if errors.As(err, &ve) {
			return ev, &RejectedError{Type: ev.Type, ID: ev.ID, Issues: ve.Issues}
		}
		return ev, &RejectedError{Type: ev.Type, ID: ev.ID, Issues: []string{err.Error()}}
	}
	b, err := encodeJSON(payload)
	if err != nil {
		return ev, fmt.Errorf("encoding the payload of event type %q: %w", ev.Type, err)
	}
	ev.Payload = b
	switch {
	case ev.ID != "":
		ev.key = "id\x00" + ev.ID
	case raw != nil:
		ev.key = "sha256\x00" + hashOf(raw)
	default:
		ev.key = "sha256\x00" + hashOf(b)
	}
	return ev, nil
}

// scalar renders an id found by idPath: strings as they are, numbers with every digit,
// booleans as true/false; anything else (absent, null, objects) gives "".
func scalar(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(t, 10)
	case bool:
		return strconv.FormatBool(t)
	}
	return ""
}

// encodeJSON encodes v as the router encodes payloads: no HTML escaping, no newline.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
