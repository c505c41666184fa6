package connector

import (
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/switchboard-run/switchboard/sandbox"
)

// HandleInput builds the argument of a global webhook's handle (SPEC 2.2) from a request:
//
//   - method: the HTTP method (an addition to SPEC 2.2's list);
//   - query: an object of strings, a list of strings for a repeated key;
//   - data: the body by Content-Type: JSON (application/json or any +json type) as a
//     sandbox.JSONOrText of body (which the sandbox decodes as the script reads it, keys
//     in document order, or hands over as the string when it is not valid JSON; the
//     caller must not change body afterwards);
//     application/x-www-form-urlencoded to an object like query (an unparsable form is
//     kept as the string); anything else, or no Content-Type, the body as a string; an
//     empty body is null whatever the type;
//   - headers: names in lower case, repeated headers joined with ", ";
//   - parameters: the integration's connector parameters ({} when nil);
//   - rawBody: the body as a string, byte for byte.
func HandleInput(method string, header http.Header, query url.Values, body []byte, parameters map[string]any) map[string]any {
	headers := make(map[string]any, len(header))
	for name, values := range header {
		k := strings.ToLower(name)
		if prev, ok := headers[k].(string); ok {
			// Non-canonical keys in a hand-built header can collide once lower-cased.
			headers[k] = prev + ", " + strings.Join(values, ", ")
			continue
		}
		headers[k] = strings.Join(values, ", ")
	}
	return map[string]any{
		"method":     method,
		"query":      valuesObject(query),
		"data":       parseBody(header.Get("Content-Type"), body),
		"headers":    headers,
		"parameters": asJSON(parameters),
		"rawBody":    string(body),
	}
}

// valuesObject turns url.Values into an object of strings, lists for repeated keys.
func valuesObject(v url.Values) map[string]any {
	out := make(map[string]any, len(v))
	for k, vs := range v {
		switch len(vs) {
		case 0:
		case 1:
			out[k] = vs[0]
		default:
			list := make([]any, len(vs))
			for i, s := range vs {
				list[i] = s
			}
			out[k] = list
		}
	}
	return out
}

func parseBody(contentType string, body []byte) any {
	if len(body) == 0 {
		return nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return string(body)
	}
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		// Checked and decoded by the sandbox straight into JavaScript values as the script
		// reads them: no Go values in between.
		return sandbox.JSONOrText(body)
	case mt == "application/x-www-form-urlencoded":
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return string(body)
		}
		return valuesObject(q)
	}
	return string(body)
}

// HandleResult is what a handle call returned, checked and ready to route and answer.
type HandleResult struct {
	Events   []HandledEvent
	Response Response
}

// HandledEvent is one event tagged by handle.
type HandledEvent struct {
	Selector string `json:"selector"`
	Payload  any    `json:"payload"`
	ID       string `json:"id,omitempty"` // the event's id at the external app, for de-duplication
}

// Response is the HTTP answer handle asked for.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// ParseHandleResult checks handle's return value (plain Go values from the sandbox).
// Every field is optional: no events routes nothing, no response answers 200 with an empty
// body. events must be a list of objects with a non-empty string selector and, when given,
// a string (or integer) id; response.status must be an integer from 100 to 599 (default
// 200); response.headers values are stringified (a list gives repeated headers); a string
// response.data is sent as is (text/plain; charset=utf-8 unless the headers set a
// Content-Type), null or absent as an empty body, anything else as JSON
// (application/json unless set). Errors name the offending field, e.g. "events[2].selector".
func ParseHandleResult(v any) (HandleResult, error) {
	res := HandleResult{Response: Response{Status: http.StatusOK, Header: http.Header{}}}
	if v == nil {
		return res, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return HandleResult{}, fmt.Errorf("handle must return an object, got %s", typeName(v))
	}
	if evs, ok := obj["events"]; ok && evs != nil {
		list, ok := evs.([]any)
		if !ok {
			return HandleResult{}, fmt.Errorf("events must be a list, got %s", typeName(evs))
		}
		for i, item := range list {
			ev, err := parseHandledEvent(fmt.Sprintf("events[%d]", i), item)
			if err != nil {
				return HandleResult{}, err
			}
			res.Events = append(res.Events, ev)
		}
	}
	if r, ok := obj["response"]; ok && r != nil {
		resp, err := parseResponse(r)
		if err != nil {
			return HandleResult{}, err
		}
		res.Response = resp
	}
	return res, nil
}

func parseHandledEvent(where string, v any) (HandledEvent, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return HandledEvent{}, fmt.Errorf("%s must be an object, got %s", where, typeName(v))
	}
	sel, ok := obj["selector"].(string)
	if !ok {
		return HandledEvent{}, fmt.Errorf("%s.selector must be a string, got %s", where, typeName(obj["selector"]))
	}
	if sel == "" {
		return HandledEvent{}, fmt.Errorf("%s.selector must not be empty", where)
	}
	ev := HandledEvent{Selector: sel, Payload: obj["payload"]}
	switch id := obj["id"].(type) {
	case nil:
	case string:
		ev.ID = id
	case float64:
		if id != math.Trunc(id) {
			return HandledEvent{}, fmt.Errorf("%s.id must be a string or an integer, got %v", where, id)
		}
		ev.ID = stringify(id)
	default:
		return HandledEvent{}, fmt.Errorf("%s.id must be a string, got %s", where, typeName(id))
	}
	return ev, nil
}

func parseResponse(v any) (Response, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Response{}, fmt.Errorf("response must be an object, got %s", typeName(v))
	}
	resp := Response{Status: http.StatusOK, Header: http.Header{}}
	switch s := obj["status"].(type) {
	case nil:
	case float64:
		if s != math.Trunc(s) || s < 100 || s > 599 {
			return Response{}, fmt.Errorf("response.status must be an integer from 100 to 599, got %v", s)
		}
		resp.Status = int(s)
	default:
		return Response{}, fmt.Errorf("response.status must be a number, got %s", typeName(s))
	}
	if h, ok := obj["headers"]; ok && h != nil {
		hs, ok := h.(map[string]any)
		if !ok {
			return Response{}, fmt.Errorf("response.headers must be an object, got %s", typeName(h))
		}
		for name, val := range hs {
			if vals, ok := val.([]any); ok {
				for _, x := range vals {
					resp.Header.Add(name, stringify(x))
				}
				continue
			}
			if val != nil {
				resp.Header.Set(name, stringify(val))
			}
		}
	}
	switch d := obj["data"].(type) {
	case nil:
	case string:
		resp.Body = []byte(d)
		if resp.Header.Get("Content-Type") == "" {
			resp.Header.Set("Content-Type", "text/plain; charset=utf-8")
		}
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return Response{}, fmt.Errorf("encoding response.data as JSON: %w", err)
		}
		resp.Body = b
		if resp.Header.Get("Content-Type") == "" {
			resp.Header.Set("Content-Type", "application/json")
		}
	}
	return resp, nil
}
