package connector

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Mapping is a compiled formula (SPEC 2.3): the declarative alternative to a script.
//
//   - a literal (string, number, boolean, null) evaluates to itself;
//   - { $var: dotted.path } reads a value from the scope (parameters, credentials,
//     connectorParameters, connection); a missing value is an error naming the path;
//   - { $tpl: { template, values } } replaces each {name} in template by the string form of
//     values.name, itself a formula; braces around anything that is not a name are kept;
//   - { $concat: [a, b, ...] } joins the string forms of its formulas;
//   - an object or a list of formulas evaluates to the object or list of their values.
//
// String forms follow JavaScript's template literals, so that selectors computed here and
// in handle.js agree: integers without ".0", true/false, null as "null", objects and lists
// as JSON. A Mapping is immutable and safe for concurrent use.
type Mapping struct {
	root formula
}

// Eval evaluates the mapping against scope.
func (m *Mapping) Eval(scope map[string]any) (any, error) {
	return m.root.eval(scope)
}

type formula interface {
	eval(scope map[string]any) (any, error)
}

type literal struct{ v any }

type variable struct {
	path []string
	raw  string
}

type template struct {
	parts  []tplPart
	values map[string]formula
}

// tplPart is either fixed text or, when name is set, a placeholder.
type tplPart struct {
	text string
	name string
}

type concat struct{ items []formula }

type object struct {
	keys   []string
	fields map[string]formula
}

type list struct{ items []formula }

// scopeRoots lists the names a $var path may start with.
const scopeRoots = "parameters, credentials, connectorParameters, connection"

func isScopeRoot(s string) bool {
	switch s {
	case "parameters", "credentials", "connectorParameters", "connection":
		return true
	}
	return false
}

// placeholder is a {name} in a $tpl template.
var placeholder = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func (f literal) eval(map[string]any) (any, error) { return f.v, nil }

func (f variable) eval(scope map[string]any) (any, error) {
	v, ok := lookup(scope, f.path)
	if !ok {
		return nil, fmt.Errorf("evaluating $var: %s is missing", f.raw)
	}
	return v, nil
}

func (f template) eval(scope map[string]any) (any, error) {
	var sb strings.Builder
	for _, p := range f.parts {
		if p.name == "" {
			sb.WriteString(p.text)
			continue
		}
		v, err := f.values[p.name].eval(scope)
		if err != nil {
			return nil, fmt.Errorf("evaluating $tpl value %q: %w", p.name, err)
		}
		sb.WriteString(stringify(v))
	}
	return sb.String(), nil
}

func (f concat) eval(scope map[string]any) (any, error) {
	var sb strings.Builder
	for i, item := range f.items {
		v, err := item.eval(scope)
		if err != nil {
			return nil, fmt.Errorf("evaluating $concat[%d]: %w", i, err)
		}
		sb.WriteString(stringify(v))
	}
	return sb.String(), nil
}

func (f object) eval(scope map[string]any) (any, error) {
	out := make(map[string]any, len(f.keys))
	for _, k := range f.keys {
		v, err := f.fields[k].eval(scope)
		if err != nil {
			return nil, fmt.Errorf("evaluating %s: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

func (f list) eval(scope map[string]any) (any, error) {
	out := make([]any, len(f.items))
	for i, item := range f.items {
		v, err := item.eval(scope)
		if err != nil {
			return nil, fmt.Errorf("evaluating [%d]: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// lookup walks a dotted path through maps (by key) and lists (by index).
func lookup(v any, path []string) (any, bool) {
	for _, seg := range path {
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[seg]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// stringify gives a value's string form as a JavaScript template literal would.
func stringify(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case json.Number:
		return v.String()
	case fmt.Stringer:
		return v.String()
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
}

// compileMapping compiles the formula held by n, reporting every malformed part.
func (l *loader) compileMapping(file string, n *yaml.Node) *Mapping {
	before := len(l.problems)
	f := l.formula(file, n)
	if len(l.problems) > before {
		return nil
	}
	return &Mapping{root: f}
}

func (l *loader) formula(file string, n *yaml.Node) formula {
	n = resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		v, err := jsonValue(n)
		if err != nil {
			l.add(file, n.Line, fmt.Sprintf("mapping: %v", err))
		}
		return literal{v}
	case yaml.SequenceNode:
		f := list{}
		for _, c := range n.Content {
			f.items = append(f.items, l.formula(file, c))
		}
		return f
	case yaml.MappingNode:
		return l.mappingFormula(file, n)
	}
	l.add(file, n.Line, "mapping: unsupported YAML node")
	return literal{}
}

// mappingFormula compiles a YAML mapping: an operator when its only key starts with "$",
// otherwise an object of formulas.
func (l *loader) mappingFormula(file string, n *yaml.Node) formula {
	var ops []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if strings.HasPrefix(n.Content[i].Value, "$") {
			ops = append(ops, n.Content[i])
		}
	}
	if len(ops) == 0 {
		f := object{fields: map[string]formula{}}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if _, dup := f.fields[k]; !dup {
				f.keys = append(f.keys, k)
			}
			f.fields[k] = l.formula(file, n.Content[i+1])
		}
		return f
	}
	op := ops[0]
	if len(n.Content) != 2 {
		l.add(file, op.Line, fmt.Sprintf("mapping: %s must be the only key of its object", op.Value))
		return literal{}
	}
	arg := resolve(n.Content[1])
	switch op.Value {
	case "$var":
		return l.variable(file, "$var", arg)
	case "$tpl":
		return l.template(file, arg)
	case "$concat":
		if arg.Kind != yaml.SequenceNode {
			l.add(file, arg.Line, "mapping: $concat takes a list of formulas")
			return literal{}
		}
		f := concat{}
		for _, c := range arg.Content {
			f.items = append(f.items, l.formula(file, c))
		}
		return f
	}
	l.add(file, op.Line, fmt.Sprintf("mapping: unknown operator %s (want $var, $tpl or $concat)", op.Value))
	return literal{}
}

func (l *loader) variable(file, what string, arg *yaml.Node) formula {
	if arg.Kind != yaml.ScalarNode || arg.Tag != "!!str" || arg.Value == "" {
		l.add(file, arg.Line, fmt.Sprintf("mapping: %s takes a dotted path such as credentials.teamId", what))
		return literal{}
	}
	path := strings.Split(arg.Value, ".")
	if !isScopeRoot(path[0]) {
		l.add(file, arg.Line, fmt.Sprintf("mapping: %s path %q must start with one of %s",
			what, arg.Value, scopeRoots))
		return literal{}
	}
	for _, seg := range path {
		if seg == "" {
			l.add(file, arg.Line, fmt.Sprintf("mapping: %s path %q has an empty segment", what, arg.Value))
			return literal{}
		}
	}
	return variable{path: path, raw: arg.Value}
}

func (l *loader) template(file string, arg *yaml.Node) formula {
	if arg.Kind != yaml.MappingNode {
		l.add(file, arg.Line, "mapping: $tpl takes { template, values }")
		return literal{}
	}
	tn := field(arg, "template")
	if tn == nil || tn.Kind != yaml.ScalarNode {
		l.add(file, arg.Line, "mapping: $tpl.template is required and must be a string")
		return literal{}
	}
	f := template{values: map[string]formula{}}
	if vn := field(arg, "values"); vn != nil {
		if vn.Kind != yaml.MappingNode {
			l.add(file, vn.Line, "mapping: $tpl.values must be an object of formulas")
			return literal{}
		}
		for i := 0; i+1 < len(vn.Content); i += 2 {
			f.values[vn.Content[i].Value] = l.formula(file, vn.Content[i+1])
		}
	}
	s := tn.Value
	last := 0
	for _, m := range placeholder.FindAllStringSubmatchIndex(s, -1) {
		name := s[m[2]:m[3]]
		if _, ok := f.values[name]; !ok {
			l.add(file, tn.Line, fmt.Sprintf("mapping: $tpl placeholder {%s} has no value in $tpl.values", name))
			continue
		}
		f.parts = append(f.parts, tplPart{text: s[last:m[0]]}, tplPart{name: name})
		last = m[1]
	}
	f.parts = append(f.parts, tplPart{text: s[last:]})
	return f
}
