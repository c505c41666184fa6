package channel

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/switchboard-run/switchboard/runtime/connector"
)

// readCloudEvents reads the CloudEvents of one HTTP request: structured mode
// (application/cloudevents+json), binary mode (ce-* headers, the body as data) or a batch
// (application/cloudevents-batch+json). Anything else, or an event missing a required
// attribute, is ErrMalformed.
func readCloudEvents(header http.Header, body []byte) ([]cloudevents.Event, error) {
	// The SDK reads from an *http.Request; this one never leaves the function.
	req, err := http.NewRequest(http.MethodPost, "/", io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		return nil, fmt.Errorf("reading cloudevents: %w", err)
	}
	req.Header = header
	var events []cloudevents.Event
	if cehttp.IsHTTPBatch(header) {
		events, err = cehttp.NewEventsFromHTTPRequest(req)
	} else {
		var ev *cloudevents.Event
		if ev, err = cehttp.NewEventFromHTTPRequest(req); err == nil {
			events = []cloudevents.Event{*ev}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading cloudevents: %w", ErrMalformed, err)
	}
	for i := range events {
		if err := events[i].Validate(); err != nil {
			return nil, fmt.Errorf("%w: cloudevent %d: %w", ErrMalformed, i, err)
		}
	}
	return events, nil
}

// extractCloudEvent recognises ce with the channel's event definitions: the first whose type
// equals the event's type wins; the id is the event's id and the payload its data (decoded
// when its content type is JSON or absent and it parses, else a string). The
// de-duplication key is the event's source and id, which CloudEvents makes unique.
func extractCloudEvent(ch *connector.Channel, ce *cloudevents.Event) (Event, error) {
	for i := range ch.Events {
		def := &ch.Events[i]
		if def.Type != ce.Type() {
			continue
		}
		payload, err := cloudEventData(ce)
		if err != nil {
			return Event{}, err
		}
		ev, err := finish(def, Event{Type: def.Type, ID: ce.ID()}, payload, nil)
		ev.key = "ce\x00" + ce.Source() + "\x00" + ce.ID()
		return ev, err
	}
	return Event{}, ErrNoMatch
}

func cloudEventData(ce *cloudevents.Event) (any, error) {
	data := ce.Data()
	if len(data) == 0 {
		return nil, nil
	}
	if isJSON(ce.DataContentType()) {
		v, err := decodeJSON(data)
		if err != nil {
			return nil, fmt.Errorf("cloudevent %q: data: %w", ce.ID(), err)
		}
		return v, nil
	}
	return string(data), nil
}

// isJSON reports whether a data content type says JSON; an absent one means JSON too (the
// CloudEvents JSON format's default).
func isJSON(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}
