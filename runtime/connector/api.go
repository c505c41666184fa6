package connector

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/switchboard-run/switchboard/sandbox"
)

// ResolveAPI prepares what apiClient talks to for one connection: api.baseUri with its
// {credentials.x}, {parameters.x} and {connectorParameters.x} placeholders filled in
// (path-escaped, so a value cannot change the URL's structure) and the credentials
// attached as api.auth says. parameters are the connection's, connectorParameters the
// integration's; client is used as is (the caller decides timeouts and reachable
// addresses). A connector without an api section gives a nil API and no error: apiClient
// then rejects every call. A missing credential or placeholder value is an error naming
// the field, never showing a value.
func (c *Connector) ResolveAPI(credentials, parameters, connectorParameters map[string]any, client *http.Client) (*sandbox.API, error) {
	if c.API.BaseURI == "" {
		return nil, nil
	}
	scope := map[string]any{
		"credentials":         asJSON(credentials),
		"parameters":          asJSON(parameters),
		"connectorParameters": asJSON(connectorParameters),
	}
	var missing error
	base := baseURIPlaceholder.ReplaceAllStringFunc(c.API.BaseURI, func(m string) string {
		ref := m[1 : len(m)-1]
		v, ok := lookup(scope, strings.Split(ref, "."))
		s := ""
		if ok && v != nil {
			s = stringify(v)
		}
		if s == "" {
			if missing == nil {
				missing = fmt.Errorf("resolving api.baseUri of connector %q: %s is missing", c.Key, ref)
			}
			return ""
		}
		return url.PathEscape(s)
	})
	if missing != nil {
		return nil, missing
	}
	u, err := url.Parse(base)
	if err != nil {
		// The error would quote the URL, which may hold a credential: keep it out.
		return nil, fmt.Errorf("resolving api.baseUri of connector %q: the filled-in URL does not parse", c.Key)
	}
	api := &sandbox.API{BaseURL: u, Header: http.Header{}, Query: url.Values{}, Client: client}

	credential := func(field string) (string, error) {
		v, ok := credentials[field]
		s := ""
		if ok && v != nil {
			s = stringify(v)
		}
		if s == "" {
			return "", fmt.Errorf("resolving api.auth of connector %q: credential %q is missing", c.Key, field)
		}
		return s, nil
	}
	a := c.API.Auth
	switch a.Type {
	case AuthBearer:
		tok, err := credential(a.Token)
		if err != nil {
			return nil, err
		}
		api.Header.Set("Authorization", "Bearer "+tok)
	case AuthBasic:
		user, err := credential(a.Username)
		if err != nil {
			return nil, err
		}
		pass, err := credential(a.Password)
		if err != nil {
			return nil, err
		}
		api.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	case AuthHeader:
		v, err := credential(a.Value)
		if err != nil {
			return nil, err
		}
		api.Header.Set(a.Name, v)
	case AuthQuery:
		v, err := credential(a.Value)
		if err != nil {
			return nil, err
		}
		api.Query.Set(a.Name, v)
	case AuthNone, "":
	default:
		return nil, fmt.Errorf("resolving api.auth of connector %q: unknown auth type %q", c.Key, a.Type)
	}
	return api, nil
}
