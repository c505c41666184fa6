package sandbox

import (
	"context"
	"fmt"
	"net/http"
)

// NewRequest builds a request to path under the API's base URL, joined as apiClient joins
// it (no ".." segments, no other host), with the API's credentials attached (Header and
// Query). For Go callers that talk to a connector's API without a script: declarative
// channels polling a path or holding an SSE stream. Send it with a client whose redirects
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
