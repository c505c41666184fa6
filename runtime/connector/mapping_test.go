package connector

import (
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// compileFormula compiles a formula written in YAML, returning the mapping or the problems.
func compileFormula(tb testing.TB, src string) (*Mapping, []string) {
	tb.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		tb.Fatal(err)
	}
	l := &loader{}
	m := l.compileMapping("spec.yml", doc.Content[0])
	var ps []string
	for _, p := range l.problems {
		ps = append(ps, p.String())
	}
	return m, ps
}

func TestMappingEval(t *testing.T) {
	scope := map[string]any{
		"parameters":          map[string]any{"channel": "C1", "limit": 20.0},
		"credentials":         map[string]any{"teamId": "T1", "org": map[string]any{"id": 42.0}},
		"connectorParameters": map[string]any{"region": "eu", "ratio": 0.5, "on": true},
		"connection":          map[string]any{"id": "conn_1", "tags": []any{"a", "b"}, "none": nil},
	}
	tests := []struct {
		name string
		src  string
		want any
	}{
		{name: "string literal", src: `webhook-key`, want: "webhook-key"},
		{name: "number literal", src: `42`, want: int64(42)},
		{name: "null literal", src: `null`, want: nil},
		{name: "var", src: `{ $var: credentials.teamId }`, want: "T1"},
		{name: "nested var", src: `{ $var: credentials.org.id }`, want: 42.0},
		{name: "var into a list", src: `{ $var: connection.tags.1 }`, want: "b"},
		{name: "var of an object", src: `{ $var: credentials.org }`, want: map[string]any{"id": 42.0}},
		{name: "var of a present null", src: `{ $var: connection.none }`, want: nil},
		{
			name: "SPEC 2.3 template",
			src: `
$tpl:
  template: "team_id:{teamId}"
  values:
    teamId: { $var: credentials.teamId }`,
			want: "team_id:T1",
		},
		{
			name: "template stringifies",
			src: `
$tpl:
  template: "{org}/{limit}/{ratio}/{on}/{none}/{tags} {not a name} {missing-brace"
  values:
    org: { $var: credentials.org.id }
    limit: { $var: parameters.limit }
    ratio: { $var: connectorParameters.ratio }
    on: { $var: connectorParameters.on }
    none: { $var: connection.none }
    tags: { $var: connection.tags }`,
			want: `42/20/0.5/true/null/["a","b"] {not a name} {missing-brace`,
		},
		{name: "concat", src: `{ $concat: ["team:", { $var: credentials.teamId }, ":", 7] }`, want: "team:T1:7"},
		{name: "empty concat", src: `{ $concat: [] }`, want: ""},
		{
			name: "nested operators",
			src: `
$concat:
  - $tpl:
      template: "{region}-"
      values:
        region: { $concat: [{ $var: connectorParameters.region }, "1"] }
  - { $var: parameters.channel }`,
			want: "eu1-C1",
		},
		{
			name: "object of formulas",
			src: `
globalWebhookKey: events
globalWebhookEventSelector: { $concat: ["channel:", { $var: parameters.channel }] }
extra: [1, { $var: connection.id }]`,
			want: map[string]any{
				"globalWebhookKey":           "events",
				"globalWebhookEventSelector": "channel:C1",
				"extra":                      []any{int64(1), "conn_1"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ps := compileFormula(t, tt.src)
			if len(ps) > 0 {
				t.Fatalf("compiling: %v", ps)
			}
			got, err := m.Eval(scope)
			if err != nil {
				t.Fatalf("evaluating: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestMappingEvalMissing(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{name: "var", src: `{ $var: credentials.teamId }`, want: "credentials.teamId is missing"},
		{name: "deep var", src: `{ $var: credentials.org.id }`, want: "credentials.org.id is missing"},
		{name: "index out of range", src: `{ $var: connection.tags.5 }`, want: "connection.tags.5 is missing"},
		{
			name: "inside a template",
			src:  `{ $tpl: { template: "team_id:{teamId}", values: { teamId: { $var: credentials.teamId } } } }`,
			want: `evaluating $tpl value "teamId": evaluating $var: credentials.teamId is missing`,
		},
		{name: "inside concat", src: `{ $concat: [a, { $var: parameters.x }] }`, want: "evaluating $concat[1]: evaluating $var: parameters.x is missing"},
	}
	scope := map[string]any{
		"credentials": map[string]any{"org": "flat"},
		"connection":  map[string]any{"tags": []any{"a"}},
		"parameters":  map[string]any{},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ps := compileFormula(t, tt.src)
			if len(ps) > 0 {
				t.Fatalf("compiling: %v", ps)
			}
			_, err := m.Eval(scope)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestMappingCompileProblems(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{name: "unknown operator", src: `{ $lookup: credentials.teamId }`, want: []string{"spec.yml:1: mapping: unknown operator $lookup"}},
		{name: "operator with siblings", src: "$var: credentials.a\nother: 1", want: []string{"spec.yml:1: mapping: $var must be the only key"}},
		{name: "var root", src: `{ $var: secrets.token }`, want: []string{`spec.yml:1: mapping: $var path "secrets.token" must start with one of`}},
		{name: "var not a string", src: `{ $var: [credentials] }`, want: []string{"spec.yml:1: mapping: $var takes a dotted path"}},
		{name: "var empty segment", src: `{ $var: credentials..a }`, want: []string{`spec.yml:1: mapping: $var path "credentials..a" has an empty segment`}},
		{name: "tpl without template", src: `{ $tpl: { values: {} } }`, want: []string{"spec.yml:1: mapping: $tpl.template is required"}},
		{name: "tpl not an object", src: `{ $tpl: "team:{x}" }`, want: []string{"spec.yml:1: mapping: $tpl takes { template, values }"}},
		{name: "tpl placeholder without value", src: "$tpl:\n  template: '{a}{b}'\n  values:\n    a: 1", want: []string{"spec.yml:2: mapping: $tpl placeholder {b} has no value"}},
		{name: "concat not a list", src: `{ $concat: abc }`, want: []string{"spec.yml:1: mapping: $concat takes a list"}},
		{
			name: "every problem, nested",
			src:  "a: { $nope: 1 }\nb:\n  - { $concat: x }\n  - { $var: y.z }",
			want: []string{"spec.yml:1: mapping: unknown operator $nope", "spec.yml:3: mapping: $concat takes a list", `spec.yml:4: mapping: $var path "y.z"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ps := compileFormula(t, tt.src)
			if m != nil {
				t.Errorf("got a mapping, want problems")
			}
			if len(ps) != len(tt.want) {
				t.Fatalf("got problems %q, want %d", ps, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(ps[i], w) {
					t.Errorf("problem %d: got %q, want prefix %q", i, ps[i], w)
				}
			}
		})
	}
}
