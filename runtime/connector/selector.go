package connector

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/switchboard-run/switchboard/sandbox"
)

// SelectorInput is what getEventSelector runs with for one subscription.
type SelectorInput struct {
	Parameters          map[string]any // the subscription's
	Credentials         map[string]any // the connection's
	ConnectorParameters map[string]any // the integration's
	Connection          map[string]any // the connection's record, for mappings ($var connection.x)
	API                 *sandbox.API   // what apiClient talks to; nil rejects every call
	Config              sandbox.Config // limits and logger of the script call
}

// Selection is where a subscription's events come from: the global webhook and the
// selector its handle tags them with.
type Selection struct {
	GlobalWebhookKey           string `json:"globalWebhookKey"`
	GlobalWebhookEventSelector string `json:"globalWebhookEventSelector"`
}

// Selector runs the event's getEventSelector: the script on a fresh runtime (it sees the
// connection's credentials, which must not outlive the call) with
// { apiClient, parameters, credentials, connectorParameters }, or the mapping. The result
// must name a global webhook of the connector and a non-empty selector; anything else is
// an error naming the script (or the event's spec for a mapping).
func (e *Event) Selector(ctx context.Context, in SelectorInput) (Selection, error) {
	var (
		out   any
		err   error
		where string
	)
	switch {
	case e.SelectorScript != nil:
		where = e.SelectorScript.Name()
		arg := map[string]any{
			"parameters":          asJSON(in.Parameters),
			"credentials":         asJSON(in.Credentials),
			"connectorParameters": asJSON(in.ConnectorParameters),
		}
		out, err = e.SelectorScript.CallOnce(ctx, in.Config, arg, sandbox.Env{API: in.API})
	case e.Mapping != nil:
		where = filepath.Join(e.Dir, "spec.yml")
		out, err = e.Mapping.Eval(map[string]any{
			"parameters":          asJSON(in.Parameters),
			"credentials":         asJSON(in.Credentials),
			"connectorParameters": asJSON(in.ConnectorParameters),
			"connection":          asJSON(in.Connection),
		})
	default:
		return Selection{}, fmt.Errorf("running getEventSelector of event %q: no script or mapping", e.Key)
	}
	if err != nil {
		return Selection{}, fmt.Errorf("running getEventSelector (%s): %w", where, err)
	}
	sel, err := e.parseSelection(out)
	if err != nil {
		return Selection{}, fmt.Errorf("checking the result of getEventSelector (%s): %w", where, err)
	}
	return sel, nil
}

func (e *Event) parseSelection(v any) (Selection, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Selection{}, fmt.Errorf("want an object with globalWebhookKey and globalWebhookEventSelector, got %s", typeName(v))
	}
	var sel Selection
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"globalWebhookKey", &sel.GlobalWebhookKey},
		{"globalWebhookEventSelector", &sel.GlobalWebhookEventSelector},
	} {
		s, ok := obj[f.name].(string)
		if !ok {
			return Selection{}, fmt.Errorf("%s must be a string, got %s", f.name, typeName(obj[f.name]))
		}
		if s == "" {
			return Selection{}, fmt.Errorf("%s must not be empty", f.name)
		}
		*f.dst = s
	}
	if e.connector != nil {
		if _, ok := e.connector.Webhooks[sel.GlobalWebhookKey]; !ok {
			return Selection{}, fmt.Errorf("globalWebhookKey %q names no global webhook of connector %q",
				sel.GlobalWebhookKey, e.connector.Key)
		}
	}
	return sel, nil
}

// typeName names a plain Go value's JSON type for error messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, float32, int, int64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
