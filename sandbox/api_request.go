package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// NewRequest builds a request to path under the API's base URL, joined as apiClient joins
// it (no ".." segments, no other host), with the API's credentials attached (Header and
// Query). For Go callers that talk to a connector's API without a script: declarative
// channels polling a path or holding an SSE stream. Send it with HTTPClient, whose redirects
// stay on the base URL's host, since the credentials travel with it.
func (a *API) NewRequest(ctx context.Context, method, path string) (*http.Request, error) {
	if a == nil || a.BaseURL == nil {
		return nil, fmt.Errorf("building a request to %q: the connector has no API base URL", path)
	}
	u, err := apiURL(a.BaseURL, path)
	if err != nil {
		return nil, fmt.Errorf("building a request to %q: %w", path, err)
	}
	if len(a.Query) > 0 {
		q := u.Query()
		for k, vs := range a.Query {
			q[k] = append(q[k], vs...)
		}
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("building a request to %q: %w", path, err)
	}
	for k, vs := range a.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	return req, nil
}

// HTTPClient is a copy of API.Client (a zero http.Client when nil) whose redirects are held
// to the base URL's host, and to https when the base is https: the credentials in Header and
// Query must never reach another host. apiClient sends every request with it, and so should
// Go callers of NewRequest. The base client's own CheckRedirect, if any, still applies.
func (a *API) HTTPClient() *http.Client {
	base := a.Client
	if base == nil {
		base = &http.Client{}
	}
	client := *base
	host, scheme := a.BaseURL.Host, a.BaseURL.Scheme
	next := base.CheckRedirect
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != host || (scheme == "https" && req.URL.Scheme != "https") {
			return fmt.Errorf("refusing a redirect to %s://%s: requests go to %s://%s only", req.URL.Scheme, req.URL.Host, scheme, host)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &client
}
