package connector

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/ohler55/ojg/jp"
	"gopkg.in/yaml.v3"
)

func (l *loader) channel(dir string, c *Connector) *Channel {
	file := filepath.Join(dir, "spec.yml")
	root := l.readYAML(file)
	if root == nil {
		return nil
	}
	ch := &Channel{Dir: dir}
	ch.Key = l.key(file, root, dir)
	ch.Name, _ = l.requiredStr(file, root, "name")
	kind, kn := l.requiredStr(file, root, "kind")
	ch.Kind = kind
	switch kind {
	case ChannelWebhook, ChannelCloudEvents, "":
	case ChannelSSE, ChannelPolling:
		if c.API.BaseURI == "" {
			l.add(file, kn.Line, fmt.Sprintf("a %s channel needs api.baseUri in connector.yml", kind))
		}
	default:
		l.add(file, kn.Line, fmt.Sprintf("kind %q must be one of webhook, sse, polling, cloudevents", kind))
	}

	en := field(root, "events")
	switch {
	case en == nil:
		l.add(file, root.Line, "events is required")
	case en.Kind != yaml.SequenceNode || len(en.Content) == 0:
		l.add(file, en.Line, "events must be a non-empty list")
	default:
		for i, item := range en.Content {
			ch.Events = append(ch.Events, l.channelEvent(file, i, resolve(item)))
		}
	}

	switch kind {
	case ChannelSSE:
		path, _ := l.requiredStr(file, root, "sse", "path")
		ch.SSE = &SSE{Path: path}
	case ChannelPolling:
		ch.Polling = l.polling(file, root)
	}
	return ch
}

func (l *loader) channelEvent(file string, i int, n *yaml.Node) ChannelEvent {
	var ev ChannelEvent
	if n.Kind != yaml.MappingNode {
		l.add(file, n.Line, fmt.Sprintf("events[%d] must be an object", i))
		return ev
	}
	name := func(k string) string { return fmt.Sprintf("events[%d].%s", i, k) }
	if t, tn := l.str(file, n, "type"); tn == nil || t == "" {
		l.add(file, n.Line, name("type")+" is required")
	} else {
		ev.Type = t
	}
	ev.TypePath = l.jsonPath(file, name("typePath"), field(n, "typePath"))
	ev.IDPath = l.jsonPath(file, name("idPath"), field(n, "idPath"))
	ev.PayloadPath = l.jsonPath(file, name("payloadPath"), field(n, "payloadPath"))
	ev.Schema = l.compileSchema(file, name("schema"), field(n, "schema"))
	return ev
}

func (l *loader) polling(file string, root *yaml.Node) *Polling {
	p := &Polling{}
	p.Path, _ = l.requiredStr(file, root, "polling", "path")
	if s, n := l.requiredStr(file, root, "polling", "interval"); n != nil && s != "" {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			l.add(file, n.Line, fmt.Sprintf("polling.interval %q must be a duration such as 60s or 5m", s))
		case d <= 0:
			l.add(file, n.Line, fmt.Sprintf("polling.interval %q must be greater than zero", s))
		default:
			p.Interval = d
		}
	}
	p.ItemsPath = l.requiredJSONPath(file, root, "polling", "itemsPath")
	p.Discriminator.Path = l.requiredJSONPath(file, root, "polling", "discriminator", "path")
	kind, kn := l.requiredStr(file, root, "polling", "discriminator", "kind")
	switch kind {
	case DiscriminatorTimestamp, DiscriminatorID, "":
		p.Discriminator.Kind = kind
	default:
		l.add(file, kn.Line, fmt.Sprintf("polling.discriminator.kind %q must be timestamp or id", kind))
	}
	return p
}

func (l *loader) requiredJSONPath(file string, root *yaml.Node, keys ...string) jp.Expr {
	n, deepest := child(root, keys...)
	what := keys[0]
	for _, k := range keys[1:] {
		what += "." + k
	}
	if n == nil {
		l.add(file, deepest.Line, what+" is required")
		return nil
	}
	return l.jsonPath(file, what, n)
}

// jsonPath compiles an optional JSONPath expression; nil when absent or broken.
func (l *loader) jsonPath(file, what string, n *yaml.Node) jp.Expr {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.ScalarNode || n.Value == "" {
		l.add(file, n.Line, what+" must be a JSONPath expression such as $.event.type")
		return nil
	}
	x, err := jp.ParseString(n.Value)
	if err != nil {
		l.add(file, n.Line, fmt.Sprintf("%s %q is not a valid JSONPath: %v", what, n.Value, err))
		return nil
	}
	return x
}
