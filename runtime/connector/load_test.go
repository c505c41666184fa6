package connector

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/txtar"
)

func TestLoadShipped(t *testing.T) {
	set, err := Load(filepath.Join("..", "..", "connectors"))
	if err != nil {
		t.Fatalf("loading the shipped connectors: %v", err)
	}
	tests := []struct {
		key, name, event string
		auth             string
		mapping          bool
	}{
		{key: "example", name: "Example", event: "message-posted", auth: AuthBearer},
		{key: "teamchat", name: "Team Chat", event: "message-posted", auth: AuthBearer, mapping: true},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			c := set.Connectors[tt.key]
			if c == nil {
				t.Fatalf("connector %q not loaded; have %v", tt.key, keys(set.Connectors))
			}
			if c.Name != tt.name || c.API.Auth.Type != tt.auth || c.API.Auth.Token != "accessToken" {
				t.Errorf("got name %q auth %+v", c.Name, c.API.Auth)
			}
			w := c.Webhooks["webhook-key"]
			if w == nil || w.Handle == nil || w.Name == "" {
				t.Fatalf("webhook-key not loaded: %+v", w)
			}
			e := c.Events[tt.event]
			if e == nil {
				t.Fatalf("event %q not loaded", tt.event)
			}
			if tt.mapping != (e.Mapping != nil) || tt.mapping == (e.SelectorScript != nil) {
				t.Errorf("event %q: mapping %v, script %v", tt.event, e.Mapping, e.SelectorScript)
			}
			if err := c.ValidateParameters(map[string]any{}); err != nil {
				t.Errorf("empty parameters refused: %v", err)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestLoadBroken loads a tree with many broken files and compares every problem, in
// order, with the golden file.
func TestLoadBroken(t *testing.T) {
	ar, err := txtar.ParseFile(filepath.Join("..", "..", "testdata", "connector", "broken.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	dir := writeArchive(t, ar)
	set, err := Load(dir)
	got := problems(t, err, dir)
	golden(t, filepath.Join("..", "..", "testdata", "connector", "broken.golden"), strings.Join(got, "\n")+"\n")

	if got := keys(set.Connectors); !slices.Equal(got, []string{"good"}) {
		t.Errorf("clean connectors: got %v, want [good]", got)
	}
	// The golden file pins the wording; these pin that each kind of problem is there.
	for _, want := range []string{
		`DIR/badkey/connector.yml:1: key "Bad Key" must match`,
		`DIR/broken/connector.yml:2: name is required`,
		`DIR/broken/connector.yml:6: parametersSchema is not a valid JSON Schema`,
		`DIR/broken/connector.yml:8: api.baseUri placeholder {secrets.x} must start with`,
		`DIR/broken/connector.yml:10: api.auth.type "oauth" must be one of`,
		`DIR/broken/global-webhooks/nohandle/spec.yml:4: handle.js is missing`,
		`DIR/broken/global-webhooks/syntax/handle.js:2: `,
		`DIR/broken/global-webhooks/imports/handle.js:1: `,
		`DIR/broken/global-webhooks/python/spec.yml:4: methods.handle.implementationType "python" must be javascript`,
		`DIR/broken/events/badmap/spec.yml:5: schema is not a valid JSON Schema`,
		`DIR/broken/events/badmap/spec.yml:10: globalWebhookKey "nope" names no global webhook`,
		`DIR/broken/events/badmap/spec.yml:13: mapping: $tpl placeholder {userId} has no value`,
		`DIR/broken/events/badmap/spec.yml:15: mapping: unknown operator $lookup`,
		`DIR/broken/events/noscript/spec.yml:1: key "NoScript" must match`,
		`DIR/broken/events/noscript/spec.yml:1: name is required`,
		`DIR/broken/events/noscript/spec.yml:2: implementationType "webhook" must be global-webhook`,
		`DIR/broken/events/noscript/spec.yml:5: get-event-selector.js is missing`,
		`DIR/broken/channels/orders/spec.yml:5: events[0].typePath "$.event[" is not a valid JSONPath`,
		`DIR/broken/channels/orders/spec.yml:7: events[1].type is required`,
		`DIR/broken/channels/orders/spec.yml:10: polling.interval "-5s" must be greater than zero`,
		`DIR/broken/channels/orders/spec.yml:14: polling.discriminator.kind "version" must be timestamp or id`,
		`DIR/broken/channels/stream/spec.yml:1: sse.path is required`,
		`DIR/broken/channels/weird/spec.yml:2: kind "carrier-pigeon" must be one of`,
		`DIR/broken/channels/weird/spec.yml:3: events must be a non-empty list`,
	} {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.HasPrefix(p, want) }) {
			t.Errorf("missing problem %q", want)
		}
	}
}

func TestLoadProblems(t *testing.T) {
	tests := []struct {
		name    string
		archive string
		want    []string // prefixes of problems, DIR standing for the connector directory
	}{
		{
			name: "missing connector.yml",
			archive: `
-- x/global-webhooks/a/spec.yml --
name: A
`,
			want: []string{"DIR/x/connector.yml: file is missing"},
		},
		{
			name: "YAML syntax error",
			archive: `
-- x/connector.yml --
name: X
api: [
`,
			want: []string{"DIR/x/connector.yml:2: parsing YAML: "},
		},
		{
			name: "duplicate connector key",
			archive: `
-- a/connector.yml --
key: same
name: A
-- b/connector.yml --
key: same
name: B
`,
			want: []string{`DIR/b/connector.yml: connector key "same" is already used by DIR/a`},
		},
		{
			name: "duplicate webhook, event and channel keys",
			archive: `
-- x/connector.yml --
name: X
-- x/global-webhooks/a/spec.yml --
key: hook
name: A
methods: { handle: { implementationType: javascript } }
-- x/global-webhooks/a/handle.js --
export default () => ({})
-- x/global-webhooks/b/spec.yml --
key: hook
name: B
methods: { handle: { implementationType: javascript } }
-- x/global-webhooks/b/handle.js --
export default () => ({})
-- x/events/a/spec.yml --
key: ev
name: A
implementationType: global-webhook
methods: { get-event-selector: { implementationType: mapping, mapping: { globalWebhookKey: hook, globalWebhookEventSelector: s } } }
-- x/events/b/spec.yml --
key: ev
name: B
implementationType: global-webhook
methods: { get-event-selector: { implementationType: mapping, mapping: { globalWebhookKey: hook, globalWebhookEventSelector: s } } }
-- x/channels/a/spec.yml --
key: ch
name: A
kind: webhook
events: [{ type: t, typePath: $.type, idPath: $.id, payloadPath: $ }]
-- x/channels/b/spec.yml --
key: ch
name: B
kind: webhook
events: [{ type: t, typePath: $.type, idPath: $.id, payloadPath: $ }]
`,
			want: []string{
				`DIR/x/global-webhooks/b/spec.yml: webhook key "hook" is already used by DIR/x/global-webhooks/a`,
				`DIR/x/events/b/spec.yml: event key "ev" is already used by DIR/x/events/a`,
				`DIR/x/channels/b/spec.yml: channel key "ch" is already used by DIR/x/channels/a`,
			},
		},
		{
			name: "auth fields",
			archive: `
-- x/connector.yml --
name: X
api:
  baseUri: not a url
  auth:
    type: basic
    username: user
`,
			want: []string{
				`DIR/x/connector.yml:3: api.baseUri "not a url" must be an absolute http or https URL`,
				`DIR/x/connector.yml:4: api.auth.password is required`,
			},
		},
		{
			name: "external schema reference",
			archive: `
-- x/connector.yml --
name: X
parametersSchema:
  $ref: file:///etc/passwd
`,
			want: []string{`DIR/x/connector.yml:3: parametersSchema is not a valid JSON Schema: `},
		},
		{
			name: "mapping without mapping",
			archive: `
-- x/connector.yml --
name: X
-- x/events/e/spec.yml --
name: E
implementationType: global-webhook
methods:
  get-event-selector:
    implementationType: mapping
`,
			want: []string{`DIR/x/events/e/spec.yml:5: methods.get-event-selector.mapping is required`},
		},
		{
			name: "polling without its fields",
			archive: `
-- x/connector.yml --
name: X
api:
  baseUri: https://api.example.com/
-- x/channels/c/spec.yml --
name: C
kind: polling
events:
  - type: t
polling:
  interval: soon
`,
			want: []string{
				`DIR/x/channels/c/spec.yml:5: polling.path is required`,
				`DIR/x/channels/c/spec.yml:6: polling.interval "soon" must be a duration`,
				`DIR/x/channels/c/spec.yml:5: polling.itemsPath is required`,
				`DIR/x/channels/c/spec.yml:5: polling.discriminator.path is required`,
			},
		},
		{
			name: "polling channel without api",
			archive: `
-- x/connector.yml --
name: X
-- x/channels/c/spec.yml --
name: C
kind: sse
events:
  - type: t
sse:
  path: /stream
`,
			want: []string{`DIR/x/channels/c/spec.yml:2: a sse channel needs api.baseUri in connector.yml`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTree(t, tt.archive)
			_, err := Load(dir)
			got := problems(t, err, dir)
			for _, want := range tt.want {
				if !slices.ContainsFunc(got, func(p string) bool { return strings.HasPrefix(p, want) }) {
					t.Errorf("missing problem %q in:\n%s", want, strings.Join(got, "\n"))
				}
			}
		})
	}
}

func TestLoadChannel(t *testing.T) {
	dir := writeTree(t, `
-- x/connector.yml --
name: X
api:
  baseUri: https://api.example.com/
-- x/channels/orders/spec.yml --
key: orders
name: Orders
kind: polling
notes: unknown fields are ignored
events:
  - type: order.created
    typePath: $.event.type
    idPath: $.event.id
    payloadPath: $.event.data
    schema: { type: object, required: [id] }
polling:
  path: /orders
  interval: 90s
  itemsPath: $.items
  discriminator:
    path: $.updated_at
    kind: timestamp
`)
	c, err := LoadConnector(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	ch := c.Channels["orders"]
	if ch == nil || ch.Kind != ChannelPolling || ch.Polling == nil {
		t.Fatalf("got %+v", ch)
	}
	if ch.Polling.Interval != 90*time.Second || ch.Polling.Discriminator.Kind != DiscriminatorTimestamp {
		t.Errorf("polling: %+v", ch.Polling)
	}
	body := map[string]any{"event": map[string]any{"type": "order.created", "id": "o1", "data": map[string]any{"id": 1.0}}}
	ev := ch.Events[0]
	if got := ev.TypePath.First(body); got != "order.created" {
		t.Errorf("typePath: got %v", got)
	}
	if got := ev.IDPath.First(body); got != "o1" {
		t.Errorf("idPath: got %v", got)
	}
	if err := ev.ValidatePayload(ev.PayloadPath.First(body)); err != nil {
		t.Errorf("payload refused: %v", err)
	}
	if err := ev.ValidatePayload(map[string]any{}); err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("payload without id: got %v, want a required error", err)
	}
}

func TestValidateParameters(t *testing.T) {
	dir := writeTree(t, `
-- x/connector.yml --
name: X
parametersSchema:
  type: object
  properties:
    signingSecret: { type: string, minLength: 8 }
    retries: { type: integer }
    apiKey: { type: string, pattern: "^sk_" }
    region: { enum: [eu, us] }
    mode: { const: live }
  required: [signingSecret]
`)
	c, err := LoadConnector(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		params  map[string]any
		want    []string // substrings of the error; none: valid
		notWant []string // substrings the error must not contain
	}{
		{name: "valid", params: map[string]any{"signingSecret": "12345678", "retries": 3.0}},
		{name: "nil is an empty object", params: nil, want: []string{"/: required: missing property 'signingSecret'"}},
		{name: "wrong type", params: map[string]any{"signingSecret": 12.0}, want: []string{"/signingSecret: type: got number, want string"}},
		{name: "two problems", params: map[string]any{"signingSecret": "short", "retries": 1.5}, want: []string{"/signingSecret: minLength", "/retries: type"}},
		{
			name:    "values are not echoed",
			params:  map[string]any{"signingSecret": "12345678", "apiKey": "pk_SECRET1", "region": "SECRET2", "mode": "SECRET3"},
			want:    []string{`/apiKey: pattern: does not match pattern "^sk_"`, "/region: enum: is not one of the allowed values", "/mode: const: is not the expected constant"},
			notWant: []string{"SECRET"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.ValidateParameters(tt.params)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			var ve *ValidationError
			if !errorsAs(err, &ve) {
				t.Fatalf("got %T %v, want a *ValidationError", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q contains %q", err, w)
				}
			}
		})
	}
}
