package connector

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-run/switchboard/sandbox"
)

func TestHandleInput(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		wantData    any
	}{
		{name: "JSON", contentType: "application/json", body: `{"from_user_id": 42, "text": "hé", "tags": ["a"]}`,
			wantData: map[string]any{"from_user_id": 42.0, "text": "hé", "tags": []any{"a"}}},
		{name: "JSON with charset", contentType: "application/json; charset=utf-8", body: `[1, true, null]`, wantData: []any{1.0, true, nil}},
		{name: "+json type", contentType: "application/cloudevents+json", body: `{"type":"x"}`, wantData: map[string]any{"type": "x"}},
		{name: "invalid JSON stays a string", contentType: "application/json", body: `{"a":`, wantData: `{"a":`},
		{name: "form", contentType: "application/x-www-form-urlencoded", body: "payload=%7B%22a%22%3A1%7D&tag=a&tag=b&empty=",
			wantData: map[string]any{"payload": `{"a":1}`, "tag": []any{"a", "b"}, "empty": ""}},
		{name: "text", contentType: "text/plain", body: "line 1\r\nligne 2 é\n", wantData: "line 1\r\nligne 2 é\n"},
		{name: "no content type", contentType: "", body: `{"a":1}`, wantData: `{"a":1}`},
		{name: "empty body", contentType: "application/json", body: "", wantData: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := http.Header{}
			if tt.contentType != "" {
				header.Set("Content-Type", tt.contentType)
			}
			in := HandleInput(http.MethodPost, header, nil, []byte(tt.body), nil)
			if !reflect.DeepEqual(decodedData(t, in), tt.wantData) {
				t.Errorf("data: got %#v, want %#v", in["data"], tt.wantData)
			}
			if in["rawBody"] != tt.body {
				t.Errorf("rawBody: got %q, want %q", in["rawBody"], tt.body)
			}
		})
	}
}

// decodedData is handle's data as a script sees it: in handle's argument, through the
// sandbox, and back as plain Go values.
func decodedData(t testing.TB, in map[string]any) any {
	t.Helper()
	s, err := sandbox.Compile("data.js", []byte("export default ({ data }) => ({ data })"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.CallOnce(t.Context(), sandbox.Config{}, map[string]any{"data": in["data"]}, sandbox.Env{})
	if err != nil {
		t.Fatalf("calling a handle with data %#v: %v", in["data"], err)
	}
	data := out.(map[string]any)["data"]
	if raw, ok := data.(json.RawMessage); ok { // JSON returned as received
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("data is not JSON: %v", err)
		}
		return v
	}
	return data
}

func TestHandleInputRequest(t *testing.T) {
	body := []byte("{\"text\":\"caf\xc3\xa9 \xe2\x9c\x93\"}\r\n")
	header := http.Header{
		"Content-Type":         {"application/json"},
		"X-Signature":          {"v1=abc"},
		"X-Forwarded-For":      {"10.0.0.1", "10.0.0.2"},
		"x-lower-noncanonical": {"kept"},
	}
	query := url.Values{"token": {"t1"}, "tag": {"a", "b"}}
	in := HandleInput(http.MethodPut, header, query, body, map[string]any{"signingSecret": "s"})

	wantHeaders := map[string]any{
		"content-type":         "application/json",
		"x-signature":          "v1=abc",
		"x-forwarded-for":      "10.0.0.1, 10.0.0.2",
		"x-lower-noncanonical": "kept",
	}
	if !reflect.DeepEqual(in["headers"], wantHeaders) {
		t.Errorf("headers: got %v, want %v", in["headers"], wantHeaders)
	}
	wantQuery := map[string]any{"token": "t1", "tag": []any{"a", "b"}}
	if !reflect.DeepEqual(in["query"], wantQuery) {
		t.Errorf("query: got %v, want %v", in["query"], wantQuery)
	}
	if in["rawBody"] != string(body) {
		t.Errorf("rawBody is not byte-exact: got %q", in["rawBody"])
	}
	if !reflect.DeepEqual(decodedData(t, in), map[string]any{"text": "café ✓"}) {
		t.Errorf("data: got %#v", in["data"])
	}
	if in["method"] != http.MethodPut || !reflect.DeepEqual(in["parameters"], map[string]any{"signingSecret": "s"}) {
		t.Errorf("method %v, parameters %v", in["method"], in["parameters"])
	}
	if empty := HandleInput(http.MethodPost, http.Header{}, nil, nil, nil); !reflect.DeepEqual(empty["parameters"], map[string]any{}) || !reflect.DeepEqual(empty["query"], map[string]any{}) {
		t.Errorf("nil parameters and query should be {}: %v", empty)
	}
}

func TestParseHandleResult(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want HandleResult
	}{
		{
			name: "nothing returned",
			in:   nil,
			want: HandleResult{Response: Response{Status: 200, Header: http.Header{}}},
		},
		{
			name: "events without response",
			in: map[string]any{"events": []any{
				map[string]any{"selector": "user_id:1", "payload": map[string]any{"a": 1.0}},
				map[string]any{"selector": "user_id:2", "payload": "p", "id": "evt_2"},
				map[string]any{"selector": "user_id:3", "id": 123.0},
			}},
			want: HandleResult{
				Events: []HandledEvent{
					{Selector: "user_id:1", Payload: map[string]any{"a": 1.0}},
					{Selector: "user_id:2", Payload: "p", ID: "evt_2"},
					{Selector: "user_id:3", ID: "123"},
				},
				Response: Response{Status: 200, Header: http.Header{}},
			},
		},
		{
			name: "SPEC 2.2 response with string data",
			in: map[string]any{
				"events":   []any{map[string]any{"selector": "user_id:7", "payload": map[string]any{}}},
				"response": map[string]any{"status": 201.0, "headers": map[string]any{"x-handled": "yes"}, "data": "Webhook received"},
			},
			want: HandleResult{
				Events: []HandledEvent{{Selector: "user_id:7", Payload: map[string]any{}}},
				Response: Response{Status: 201, Body: []byte("Webhook received"), Header: http.Header{
					"X-Handled": {"yes"}, "Content-Type": {"text/plain; charset=utf-8"},
				}},
			},
		},
		{
			name: "object data as JSON, header values stringified",
			in: map[string]any{"response": map[string]any{
				"data":    map[string]any{"challenge": "abc"},
				"headers": map[string]any{"x-count": 3.0, "x-flag": true, "set-cookie": []any{"a=1", "b=2"}},
			}},
			want: HandleResult{Response: Response{Status: 200, Body: []byte(`{"challenge":"abc"}`), Header: http.Header{
				"X-Count": {"3"}, "X-Flag": {"true"}, "Set-Cookie": {"a=1", "b=2"}, "Content-Type": {"application/json"},
			}}},
		},
		{
			name: "the script's content type wins",
			in: map[string]any{"response": map[string]any{
				"data": "<ok/>", "headers": map[string]any{"Content-Type": "application/xml"}, "status": 202.0,
			}},
			want: HandleResult{Response: Response{Status: 202, Body: []byte("<ok/>"), Header: http.Header{"Content-Type": {"application/xml"}}}},
		},
		{
			name: "status only",
			in:   map[string]any{"events": []any{}, "response": map[string]any{"status": 204.0}},
			want: HandleResult{Response: Response{Status: 204, Header: http.Header{}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHandleResult(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestParseHandleResultErrors(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{name: "not an object", in: "ok", want: "handle must return an object, got a string"},
		{name: "events not a list", in: map[string]any{"events": map[string]any{}}, want: "events must be a list"},
		{name: "event not an object", in: map[string]any{"events": []any{"x"}}, want: "events[0] must be an object"},
		{name: "selector not a string", in: map[string]any{"events": []any{
			map[string]any{"selector": "ok"}, map[string]any{"selector": 42.0},
		}}, want: "events[1].selector must be a string, got a number"},
		{name: "selector missing", in: map[string]any{"events": []any{map[string]any{"payload": 1.0}}}, want: "events[0].selector must be a string, got null"},
		{name: "selector empty", in: map[string]any{"events": []any{map[string]any{"selector": ""}}}, want: "events[0].selector must not be empty"},
		{name: "id not a string", in: map[string]any{"events": []any{map[string]any{"selector": "s", "id": true}}}, want: "events[0].id must be a string"},
		{name: "status out of range", in: map[string]any{"response": map[string]any{"status": 600.0}}, want: "response.status must be an integer from 100 to 599"},
		{name: "status not an integer", in: map[string]any{"response": map[string]any{"status": 200.5}}, want: "response.status must be an integer"},
		{name: "status a string", in: map[string]any{"response": map[string]any{"status": "200"}}, want: "response.status must be a number"},
		{name: "headers not an object", in: map[string]any{"response": map[string]any{"headers": "x"}}, want: "response.headers must be an object"},
		{name: "response not an object", in: map[string]any{"response": "ok"}, want: "response must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHandleResult(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
