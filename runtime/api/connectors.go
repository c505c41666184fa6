package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/connector"
)

// Catalog is the connector tree the API serves. A hot-reloading implementation may return
// a newer connector on every call; callers look a connector up once per request.
type Catalog interface {
	// Connector returns the loaded connector with that key.
	Connector(key string) (*connector.Connector, bool)
	// Connectors returns every loaded connector, sorted by key.
	Connectors() []*connector.Connector
	// Problems lists what failed to load, as "path:line: message"; none at start-up.
	Problems() []string
}

// SetCatalog serves a connector set loaded once.
type SetCatalog struct {
	Set *connector.Set
}

func (s SetCatalog) Connector(key string) (*connector.Connector, bool) {
	if s.Set == nil {
		return nil, false
	}
	c, ok := s.Set.Connectors[key]
	return c, ok
}

func (s SetCatalog) Connectors() []*connector.Connector {
	if s.Set == nil {
		return nil
	}
	out := make([]*connector.Connector, 0, len(s.Set.Connectors))
	for _, c := range s.Set.Connectors {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *connector.Connector) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func (SetCatalog) Problems() []string { return nil }

type connectorsView struct {
	Connectors []connectorView `json:"connectors"`
	Errors     []string        `json:"errors"`
}

type connectorView struct {
	Key      string        `json:"key"`
	Name     string        `json:"name"`
	Webhooks []keyName     `json:"webhooks"`
	Events   []eventView   `json:"events"`
	Channels []channelView `json:"channels"`
}

type keyName struct {
	Key  string `json:"key"`
	Name string `json:"name"`
}

type eventView struct {
	Key                string `json:"key"`
	Name               string `json:"name"`
	ImplementationType string `json:"implementationType"`
}

type channelView struct {
	Key    string   `json:"key"`
	Name   string   `json:"name"`
	Kind   string   `json:"kind"`
	Events []string `json:"events"`
}

func (a *API) listConnectors(c echo.Context) error {
	out := connectorsView{Connectors: []connectorView{}, Errors: a.cfg.Connectors.Problems()}
	if out.Errors == nil {
		out.Errors = []string{}
	}
	for _, cn := range a.cfg.Connectors.Connectors() {
		v := connectorView{Key: cn.Key, Name: cn.Name, Webhooks: []keyName{}, Events: []eventView{}, Channels: []channelView{}}
		for _, k := range sortedKeys(cn.Webhooks) {
			v.Webhooks = append(v.Webhooks, keyName{Key: k, Name: cn.Webhooks[k].Name})
		}
		for _, k := range sortedKeys(cn.Events) {
			ev := cn.Events[k]
			impl := connector.ImplementationJavaScript
			if ev.Mapping != nil {
				impl = connector.ImplementationMapping
			}
			v.Events = append(v.Events, eventView{Key: k, Name: ev.Name, ImplementationType: impl})
		}
		for _, k := range sortedKeys(cn.Channels) {
			ch := cn.Channels[k]
			types := make([]string, 0, len(ch.Events))
			for _, e := range ch.Events {
				types = append(types, e.Type)
			}
			v.Channels = append(v.Channels, channelView{Key: k, Name: ch.Name, Kind: ch.Kind, Events: types})
		}
		out.Connectors = append(out.Connectors, v)
	}
	return c.JSON(http.StatusOK, out)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
