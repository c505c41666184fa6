package connector

import (
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"
)

// describe renders what a jsonschema error kind says, in English.
func describe(k jsonschema.ErrorKind) string {
	return k.LocalizedString(message.NewPrinter(language.English))
}

// refusingLoader keeps schema compilation off the network and the file system: a $ref
// may point inside its own schema, never at an external document.
type refusingLoader struct{}

func (refusingLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external $ref %q is not allowed", url)
}

// describeWithoutValue describes a validation failure without repeating the value that
// failed: parameters hold secrets, and a 400 must not echo one back (or into a log).
func describeWithoutValue(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Pattern:
		return fmt.Sprintf("does not match pattern %q", k.Want)
	case *kind.Const:
		return "is not the expected constant"
	case *kind.Enum:
		return "is not one of the allowed values"
	case *kind.Format:
		return fmt.Sprintf("is not a valid %s", k.Want)
	case *kind.InvalidJsonValue:
		return "is not a valid JSON value"
	case *kind.ContentMediaType:
		return fmt.Sprintf("is not %s", k.Want)
	case *kind.Minimum:
		return fmt.Sprintf("must be >= %s", k.Want.RatString())
	case *kind.Maximum:
		return fmt.Sprintf("must be <= %s", k.Want.RatString())
	case *kind.ExclusiveMinimum:
		return fmt.Sprintf("must be > %s", k.Want.RatString())
	case *kind.ExclusiveMaximum:
		return fmt.Sprintf("must be < %s", k.Want.RatString())
	case *kind.MultipleOf:
		return fmt.Sprintf("must be a multiple of %s", k.Want.RatString())
	}
	return describe(k)
}

// compileSchema compiles the JSON Schema held by YAML node n. Problems are reported at the
// line of the offending keyword when the metaschema says which one it is.
func (l *loader) compileSchema(file, what string, n *yaml.Node) *jsonschema.Schema {
	if n == nil {
		return nil
	}
	doc, err := jsonValue(n)
	if err != nil {
		l.add(file, n.Line, fmt.Sprintf("%s: %v", what, err))
		return nil
	}
	// The URL only names the schema in jsonschema's own messages; nothing is fetched.
	const url = "mem:///schema.json"
	c := jsonschema.NewCompiler()
	c.UseLoader(refusingLoader{})
	if err := c.AddResource(url, doc); err != nil {
		l.add(file, n.Line, fmt.Sprintf("%s: %v", what, err))
		return nil
	}
	sch, err := c.Compile(url)
	if err == nil {
		return sch
	}
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
		for _, leaf := range leaves(ve) {
			at := nodeAt(n, leaf.InstanceLocation)
			l.add(file, at.Line, fmt.Sprintf("%s is not a valid JSON Schema: at %s: %s",
				what, pointer(leaf.InstanceLocation), describe(leaf.ErrorKind)))
		}
		return nil
	}
	l.add(file, n.Line, fmt.Sprintf("%s is not a valid JSON Schema: %v", what, err))
	return nil
}

// leaves returns the innermost causes of a validation error, the first one per instance
// location: an anyOf failure lists one cause per alternative, and one is enough to read.
func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	var out []*jsonschema.ValidationError
	seen := map[string]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := pointer(e.InstanceLocation)
			if !seen[loc] {
				seen[loc] = true
				out = append(out, e)
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out
}

func pointer(tokens []string) string {
	if len(tokens) == 0 {
		return "/"
	}
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return sb.String()
}

// ValidationError reports a value that does not satisfy a JSON Schema of the connector:
// connector parameters, subscription parameters or an event payload. Each issue names the
// failing location and keyword, e.g. "/signingSecret: type: got number, want string".
// The HTTP API answers it with 400.
type ValidationError struct {
	What   string // "parameters", "payload"
	Issues []string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.What, strings.Join(e.Issues, "; "))
}

// validate checks v against sch; a nil schema accepts anything.
func validate(sch *jsonschema.Schema, what string, v any) error {
	if sch == nil {
		return nil
	}
	err := sch.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validating %s: %w", what, err)
	}
	out := &ValidationError{What: what}
	for _, leaf := range leaves(ve) {
		kw := strings.Join(leaf.ErrorKind.KeywordPath(), "/")
		issue := pointer(leaf.InstanceLocation) + ": "
		if kw != "" {
			issue += kw + ": "
		}
		out.Issues = append(out.Issues, issue+describeWithoutValue(leaf.ErrorKind))
	}
	return out
}
