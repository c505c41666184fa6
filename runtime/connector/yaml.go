package connector

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// yamlSyntaxError matches yaml.v3's "yaml: line N: message" syntax errors.
var yamlSyntaxError = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// readYAML parses one spec file into its top-level mapping node. It reports a missing
// file, a syntax error or a non-mapping document as a problem and returns nil. An empty
// file is an empty mapping, so that the usual "x is required" problems follow.
func (l *loader) readYAML(path string) *yaml.Node {
	src, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			l.add(path, 0, "file is missing")
		} else {
			l.add(path, 0, fmt.Sprintf("reading file: %v", err))
		}
		return nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 0
		if m := yamlSyntaxError.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		l.add(path, line, "parsing YAML: "+msg)
		return nil
	}
	if len(doc.Content) == 0 {
		return &yaml.Node{Kind: yaml.MappingNode, Line: 1}
	}
	if msg := checkAliases(&doc); msg != "" {
		l.add(path, 1, msg)
		return nil
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		l.add(path, root.Line, "the document must be a mapping")
		return nil
	}
	return root
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// field returns the value of key in mapping m, or nil when m is not a mapping, the key
// is absent or its value is null (so "name:" reads as a missing name).
func field(m *yaml.Node, key string) *yaml.Node {
	_, v := entry(m, key)
	return v
}

// entry is field that also returns the key's node, whose line is where the key is written.
func entry(m *yaml.Node, key string) (k, v *yaml.Node) {
	m = resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := resolve(m.Content[i+1])
			if isNull(v) {
				return nil, nil
			}
			return m.Content[i], v
		}
	}
	return nil, nil
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// child walks a dotted chain of keys from m. It returns the value found (nil when any
// step is missing) and the node that locates a "missing" problem: the key of the deepest
// step that exists, or m itself.
func child(m *yaml.Node, keys ...string) (found, deepest *yaml.Node) {
	deepest = m
	n := m
	for _, k := range keys {
		kn, next := entry(n, k)
		if next == nil {
			return nil, deepest
		}
		n, deepest = next, kn
	}
	return n, deepest
}

// str reads an optional scalar field as a string. A non-scalar value is a problem.
func (l *loader) str(file string, m *yaml.Node, keys ...string) (string, *yaml.Node) {
	n, _ := child(m, keys...)
	if n == nil {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		l.add(file, n.Line, fmt.Sprintf("%s must be a string", strings.Join(keys, ".")))
		return "", nil
	}
	return n.Value, n
}

// requiredStr reads a required scalar field; a missing or empty value is a problem
// located at the deepest enclosing node that exists.
func (l *loader) requiredStr(file string, m *yaml.Node, keys ...string) (string, *yaml.Node) {
	n, deepest := child(m, keys...)
	if n == nil {
		l.add(file, line(deepest), fmt.Sprintf("%s is required", strings.Join(keys, ".")))
		return "", nil
	}
	s, n := l.str(file, m, keys...)
	if n != nil && s == "" {
		l.add(file, n.Line, fmt.Sprintf("%s must not be empty", strings.Join(keys, ".")))
	}
	return s, n
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// jsonValue converts a YAML node into the values encoding/json would produce for the same
// document (map[string]any, []any, string, float64, bool, nil), which is what JSON Schema
// compilation and mapping literals expect. Integers that fit stay exact as int64.
func jsonValue(n *yaml.Node) (any, error) {
	n = resolve(n)
	if n == nil {
		return nil, nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		obj := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: keys must be scalars", k.Line)
			}
			v, err := jsonValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			obj[k.Value] = v
		}
		return obj, nil
	case yaml.SequenceNode:
		arr := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := jsonValue(c)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		return arr, nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		switch v := v.(type) {
		case int:
			return int64(v), nil
		case uint64:
			if v > math.MaxInt64 {
				return float64(v), nil
			}
			return int64(v), nil
		case float64:
			if math.IsInf(v, 0) || math.IsNaN(v) {
				return nil, fmt.Errorf("line %d: %s is not a JSON number", n.Line, n.Value)
			}
			return v, nil
		case nil, bool, string, int64:
			return v, nil
		default:
			// Timestamps and binary scalars: keep the text, as JSON would carry them.
			return n.Value, nil
		}
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// nodeAt follows a JSON pointer's tokens (as jsonschema reports them) into a YAML node,
// returning the deepest node reached so a problem points as close to the fault as possible.
func nodeAt(n *yaml.Node, tokens []string) *yaml.Node {
	for _, tok := range tokens {
		n = resolve(n)
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == tok {
					next = n.Content[i+1]
					break
				}
			}
			if next == nil {
				return n
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n.Content) {
				return n
			}
			n = n.Content[i]
		default:
			return n
		}
	}
	return n
}
