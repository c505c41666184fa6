package connector

// Fuzz targets for what reaches this package from outside: request parsing (from external
// apps), spec loading and mappings (from connector authors), JSONPath expressions and the
// documents they run on. `go test` runs the seeds below and any corpus entries under
// testdata/fuzz/<FuzzName>; `go test -run XXX -fuzz FuzzName -fuzztime 60s ./runtime/connector`
// explores; add -fuzzminimizetime 3s, since the loading targets are slow enough (scripts
// compile in tens of milliseconds) for the default minute of minimizing each new input to
// stall them.

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-run/switchboard/sandbox"
)

// FuzzHandleInput: any method, Content-Type, query and body give a handle argument
// without panicking; rawBody is the body byte for byte; data is null exactly for an empty
// body, and JSON bodies parse as encoding/json parses them.
func FuzzHandleInput(f *testing.F) {
	for _, s := range []struct{ method, ct, query, body string }{
		{"POST", "application/json", "a=1&a=2&b=", `{"team_id":"T1","n":1.5e3}`},
		{"POST", "application/json; charset=utf-8", "", `[1,"x",null]`},
		{"POST", "application/vnd.api+json", "x=%zz", `{"broken":`},
		{"PUT", "application/x-www-form-urlencoded", "", "payload=%7B%22a%22%3A1%7D&x=1&x=2"},
		{"POST", "application/x-www-form-urlencoded", "", "%zz=1;2"},
		{"GET", "", "q=%E2%82%AC", ""},
		{"POST", "text/plain", "", "\xff\xfe not utf-8"},
		{"POST", "multipart/form-data; boundary=", "", "--x\r\n"},
		{"POST", ";;;", "", "{}"},
	} {
		f.Add(s.method, s.ct, s.query, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, contentType, rawQuery string, body []byte) {
		header := http.Header{}
		header.Set("Content-Type", contentType)
		header.Add("X-Repeated", "a")
		header.Add("X-Repeated", "b")
		query, _ := url.ParseQuery(rawQuery) // what net/http hands over, errors dropped
		in := HandleInput(method, header, query, body, nil)

		if got := in["rawBody"].(string); got != string(body) {
			t.Fatalf("rawBody %q, want %q", got, body)
		}
		if (in["data"] == nil) != (len(body) == 0) {
			t.Fatalf("data %#v for a body of %d bytes", in["data"], len(body))
		}
		if h := in["headers"].(map[string]any); h["x-repeated"] != "a, b" || h["content-type"] != contentType {
			t.Fatalf("headers %v", h)
		}
		q := in["query"].(map[string]any)
		for k, vs := range query {
			switch want := len(vs); {
			case want == 1 && q[k] != vs[0]:
				t.Fatalf("query[%q] = %#v, want %q", k, q[k], vs[0])
			case want > 1 && len(q[k].([]any)) != want:
				t.Fatalf("query[%q] = %#v, want %d values", k, q[k], want)
			}
		}
		if isJSONType(contentType) && len(body) > 0 {
			// Handed on as is: the sandbox decodes it, or passes it as text when invalid.
			if raw, ok := in["data"].(sandbox.JSONOrText); !ok || !bytes.Equal(raw, body) {
				t.Fatalf("data %#v, want the body %q as JSONOrText", in["data"], body)
			}
		} else if s, ok := in["data"].(string); ok && s != string(body) {
			t.Fatalf("data as text %q differs from the body %q", s, body)
		}
		// The argument crosses into the sandbox as JSON-like values.
		if _, err := json.Marshal(in); err != nil {
			t.Fatalf("handle argument does not marshal: %v", err)
		}
	})
}

// isJSONType tells a Content-Type whose body is parsed as JSON; one that does not parse as
// a media type (`"+json`, say) is not.
func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// fuzzHandle is a valid handle.js for the spec-loading fuzz tree.
const fuzzHandle = "export default async function handle({ data }) { return { events: [{ selector: 's', payload: data }] } }\n"

// FuzzLoad: random connector.yml, webhook, event and channel specs never make Load
// panic; a tree that does not load is a *LoadError whose every problem is one line of the
// form path:line: message, with a path inside the tree and a line inside the file; Load
// and LoadConnector agree on the problems of a one-connector tree.
func FuzzLoad(f *testing.F) {
	f.Add("key: c\nname: C\napi:\n  baseUri: https://{credentials.shop}.example.com/\n  auth:\n    type: bearer\n    token: t\n",
		"name: W\nkey: w\nmethods:\n  handle:\n    implementationType: javascript\n",
		"name: E\nimplementationType: global-webhook\nmethods:\n  get-event-selector:\n    implementationType: mapping\n    mapping:\n      globalWebhookKey: w\n      globalWebhookEventSelector:\n        $tpl:\n          template: \"team:{t}\"\n          values:\n            t: { $var: credentials.teamId }\n",
		"key: orders\nname: Orders\nkind: polling\nevents:\n  - type: order.created\n    typePath: $.event.type\n    idPath: $.event.id\n    schema: { type: object, required: [id] }\npolling:\n  path: /orders\n  interval: 60s\n  itemsPath: $.items[*]\n  discriminator: { path: $.updated_at, kind: timestamp }\n")
	f.Add("name: [unclosed\n", "methods: &a { handle: *a }\n", "schema: { type: strnig }\nparametersSchema: 7\n", "kind: sse\nevents: []\n")
	f.Add("key: Bad Key\nname: 1\napi: { baseUri: 'ftp://x/{nope}', auth: { type: oauth } }\n", "", "methods:\n  get-event-selector:\n    implementationType: mapping\n    mapping: { $concat: 3 }\n",
		"events:\n  - type: x\n    typePath: '$[?(@.a ==]'\n  - 7\n")
	f.Add("name: C\nparametersSchema: &s { type: object, properties: { a: *s } }\n", "name: W\nmethods: { handle: { implementationType: javascript } }\nx: &a [*b]\ny: &b [1]\n",
		"name: E\nmethods:\n  get-event-selector:\n    implementationType: mapping\n    mapping: &m { globalWebhookKey: w, globalWebhookEventSelector: { $concat: [*m] } }\n", "l0: &l0 [x, x, x]\nl1: &l1 [*l0, *l0, *l0]\nevents: [*l1]\n")
	f.Add("--- \n...\n", "\t", "a: b: c", "key: k\nkind: cloudevents\nevents:\n  - { type: t, payloadPath: '' }\n")
	f.Fuzz(func(t *testing.T, connectorYML, webhookYML, eventYML, channelYML string) {
		dir := t.TempDir()
		files := map[string]string{
			"c/connector.yml":                  connectorYML,
			"c/global-webhooks/w/spec.yml":     webhookYML,
			"c/global-webhooks/w/handle.js":    fuzzHandle,
			"c/events/e/spec.yml":              eventYML,
			"c/events/e/get-event-selector.js": "export default async function s() { return { globalWebhookKey: 'w', globalWebhookEventSelector: 'x' } }\n",
			"c/channels/ch/spec.yml":           channelYML,
		}
		for rel, body := range files {
			p := filepath.Join(dir, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}

		var (
			set         *Set
			one         *Connector
			err, oneErr error
		)
		within(t, 20*time.Second, func() {
			set, err = Load(dir)
			one, oneErr = LoadConnector(filepath.Join(dir, "c"))
		})
		if err == nil {
			if oneErr != nil {
				t.Fatalf("Load succeeded, LoadConnector failed: %v", oneErr)
			}
			if len(set.Connectors) != 1 || one == nil {
				t.Fatalf("loaded %d connectors", len(set.Connectors))
			}
			return
		}
		le, ok := err.(*LoadError)
		if !ok {
			t.Fatalf("Load: %T %v, want a *LoadError", err, err)
		}
		if len(le.Problems) == 0 {
			t.Fatal("a LoadError without problems")
		}
		checkProblems(t, dir, le.Problems)
		ole, ok := oneErr.(*LoadError)
		if !ok {
			t.Fatalf("Load failed, LoadConnector: %T %v", oneErr, oneErr)
		}
		if !slices.Equal(le.Problems, ole.Problems) {
			t.Fatalf("Load and LoadConnector disagree:\n%v\n---\n%v", le, ole)
		}
	})
}

// FuzzLoadSpecs is FuzzLoad without scripts, which cost tens of milliseconds each to
// compile: connector.yml, an event and a channel, so that the YAML, schema, mapping and
// JSONPath checks see thousands of inputs a second instead of a few.
func FuzzLoadSpecs(f *testing.F) {
	f.Add("key: c\nname: C\nparametersSchema: { type: object, properties: { s: { type: string, minLength: 8 } } }\napi: { baseUri: 'https://{parameters.sub}.example.com/', auth: { type: basic, username: u, password: p } }\n",
		"name: E\nimplementationType: global-webhook\nmethods:\n  get-event-selector:\n    implementationType: mapping\n    mapping:\n      globalWebhookKey: { $var: parameters.hook }\n      globalWebhookEventSelector: { $concat: [a, { $var: credentials.id }] }\n",
		"name: S\nkind: sse\nevents: [{ type: t, typePath: $.type, payloadPath: $.data }]\nsse: { path: /stream }\n")
	f.Add("name: C\nparametersSchema: &s { type: object, properties: { a: *s } }\n", "schema: { $ref: '#/nope' }\n", "kind: polling\npolling: { interval: -1s, itemsPath: '$.items[', discriminator: { kind: etag } }\n")
	f.Add("name: C\n", "name: E\nschema: { type: object, properties: { a: { pattern: '(' } } }\n", "name: X\nkind: cloudevents\nevents: [{ type: t, schema: { type: [string, 7] } }]\n")
	f.Fuzz(func(t *testing.T, connectorYML, eventYML, channelYML string) {
		dir := t.TempDir()
		files := map[string]string{
			"c/connector.yml":        connectorYML,
			"c/events/e/spec.yml":    eventYML,
			"c/channels/ch/spec.yml": channelYML,
		}
		for rel, body := range files {
			p := filepath.Join(dir, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		within(t, 10*time.Second, func() { _, err = LoadConnector(filepath.Join(dir, "c")) })
		if err == nil {
			return
		}
		le, ok := err.(*LoadError)
		if !ok {
			t.Fatalf("LoadConnector: %T %v, want a *LoadError", err, err)
		}
		if len(le.Problems) == 0 {
			t.Fatal("a LoadError without problems")
		}
		checkProblems(t, dir, le.Problems)
	})
}

// within runs f, failing the test if it has not returned after d: the fuzzer then keeps the
// input that hangs, where otherwise it would wait on it until -fuzztime ends.
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("still running after %s", d)
	}
}

// checkProblems asserts that every problem reads as one "path:line: message" line about a
// file of the tree, at a line the file has.
func checkProblems(t *testing.T, dir string, ps []Problem) {
	t.Helper()
	for _, p := range ps {
		s := p.String()
		if strings.ContainsAny(s, "\n\r") {
			t.Fatalf("problem spans lines: %q", s)
		}
		if p.Message == "" {
			t.Fatalf("problem without a message: %q", s)
		}
		if !strings.HasPrefix(p.File, dir+string(filepath.Separator)) {
			t.Fatalf("problem outside the tree %s: %q", dir, s)
		}
		if p.Line < 0 {
			t.Fatalf("negative line: %q", s)
		}
		if src, err := os.ReadFile(p.File); err == nil && p.Line > bytes.Count(src, []byte("\n"))+1 {
			t.Fatalf("line %d past the end of %s (%d bytes): %q", p.Line, p.File, len(src), s)
		}
	}
}

// FuzzMapping: a mapping formula of any YAML either compiles or is refused with problems
// at lines of the document; a compiled one evaluates against any scope without panicking,
// and the same way twice.
func FuzzMapping(f *testing.F) {
	for _, s := range []struct{ mapping, scope string }{
		{"globalWebhookKey: w\nglobalWebhookEventSelector:\n  $tpl:\n    template: \"team:{t}/{u}\"\n    values:\n      t: { $var: credentials.teamId }\n      u: { $concat: [a, 1, 2.5, true, null, { $var: parameters.x.y }] }\n",
			`{"credentials":{"teamId":"T1"},"parameters":{"x":{"y":[1,{"z":2}]}}}`},
		{"{ $var: connection.id }", `{"connection":{"id":7}}`},
		{"&m [ { $concat: [*m] } ]", `{}`},
		{"[ { $var: connectorParameters.a }, &x { k: v }, *x ]", `{"connectorParameters":{}}`},
		{"$tpl: { template: '{a}{b}{{c}}', values: { a: 1 } }", `{}`},
		{"{ $concat: [ { $var: parameters } ], other: 1 }", `null`},
		{"a: .nan\nb: !!binary aGk=\nc: 2001-12-14t21:59:43.10-05:00\nd: 18446744073709551616\n", `{}`},
	} {
		f.Add(s.mapping, []byte(s.scope))
	}
	f.Fuzz(func(t *testing.T, src string, scopeJSON []byte) {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil || len(doc.Content) == 0 {
			return
		}
		if checkAliases(&doc) != "" {
			return // refused by readYAML before any mapping is compiled
		}
		l := &loader{}
		m := l.compileMapping("spec.yml", doc.Content[0])
		if m == nil {
			if len(l.problems) == 0 {
				t.Fatal("mapping refused without a problem")
			}
			lines := strings.Count(src, "\n") + 1
			for _, p := range l.problems {
				if p.Line < 1 || p.Line > lines || strings.ContainsAny(p.String(), "\n\r") {
					t.Fatalf("problem %q: want one line at a line of the %d-line document", p.String(), lines)
				}
			}
			return
		}
		var scope map[string]any
		_ = json.Unmarshal(scopeJSON, &scope) // nil on anything but an object: Eval must cope
		v1, err1 := m.Eval(scope)
		v2, err2 := m.Eval(scope)
		if (err1 == nil) != (err2 == nil) || !reflect.DeepEqual(v1, v2) {
			t.Fatalf("two evaluations differ: %#v, %v / %#v, %v", v1, err1, v2, err2)
		}
	})
}

// FuzzChannelJSONPath: any string as a channel event's typePath either loads or is
// refused at its spec line; a loaded expression runs on any JSON document without
// panicking.
func FuzzChannelJSONPath(f *testing.F) {
	for _, s := range []struct{ expr, doc string }{
		{"$.event.type", `{"event":{"type":"order.created"}}`},
		{"$..type", `[{"type":1},{"a":{"type":[2]}}]`},
		{"$.items[*].id", `{"items":[{"id":1},{"id":"2"},null]}`},
		{"$.a[-1:0:-1]", `{"a":[1,2,3]}`},
		{"$[?(@.a > 1 && @.b == 'x')].c", `[{"a":2,"b":"x","c":3}]`},
		{"$['a b'][\"c\"]", `{"a b":{"c":true}}`},
		{"$.x[?(@ =~ /^a.*$/)]", `{"x":["ab","b"]}`},
		{"@.x", `{}`},
		{"$[", `{}`},
	} {
		f.Add(s.expr, []byte(s.doc))
	}
	f.Fuzz(func(t *testing.T, expr string, docJSON []byte) {
		quoted, err := yaml.Marshal(expr) // the expression as one YAML scalar, whatever it holds
		if err != nil {
			return
		}
		dir := t.TempDir()
		spec := "name: C\nkind: webhook\nevents:\n  - type: t\n    typePath: " + strings.TrimSuffix(string(quoted), "\n") + "\n"
		files := map[string]string{
			"connector.yml":        "key: c\nname: C\n",
			"channels/ch/spec.yml": spec,
		}
		for rel, body := range files {
			p := filepath.Join(dir, filepath.FromSlash(rel))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c, err := LoadConnector(dir)
		if err != nil {
			le, ok := err.(*LoadError)
			if !ok {
				t.Fatalf("LoadConnector: %T %v", err, err)
			}
			checkProblems(t, dir, le.Problems)
			for _, p := range le.Problems {
				if p.Line < 5 {
					t.Fatalf("problem %q before the typePath line", p.String())
				}
			}
			return
		}
		x := c.Channels["ch"].Events[0].TypePath
		if expr != "" && x == nil {
			t.Fatalf("typePath %q loaded as nothing", expr)
		}
		var doc any
		if json.Unmarshal(docJSON, &doc) != nil {
			return
		}
		_ = x.Get(doc)
		_ = x.First(doc)
	})
}
