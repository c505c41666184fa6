package connector

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestResolveAPI(t *testing.T) {
	creds := map[string]any{"accessToken": "tok-1", "user": "ann", "pass": "s3cret", "key": "k-9", "shop": "acme", "n": 12.0}
	tests := []struct {
		name       string
		api        APIConfig
		wantURL    string
		wantHeader http.Header
		wantQuery  url.Values
	}{
		{
			name:       "bearer",
			api:        APIConfig{BaseURI: "https://slack.com/api/", Auth: Auth{Type: AuthBearer, Token: "accessToken"}},
			wantURL:    "https://slack.com/api/",
			wantHeader: http.Header{"Authorization": {"Bearer tok-1"}},
			wantQuery:  url.Values{},
		},
		{
			name:       "basic",
			api:        APIConfig{BaseURI: "https://api.example.com/", Auth: Auth{Type: AuthBasic, Username: "user", Password: "pass"}},
			wantURL:    "https://api.example.com/",
			wantHeader: http.Header{"Authorization": {"Basic YW5uOnMzY3JldA=="}},
			wantQuery:  url.Values{},
		},
		{
			name:       "header",
			api:        APIConfig{BaseURI: "https://api.example.com/", Auth: Auth{Type: AuthHeader, Name: "X-Api-Key", Value: "key"}},
			wantURL:    "https://api.example.com/",
			wantHeader: http.Header{"X-Api-Key": {"k-9"}},
			wantQuery:  url.Values{},
		},
		{
			name:       "query",
			api:        APIConfig{BaseURI: "https://api.example.com/", Auth: Auth{Type: AuthQuery, Name: "api_key", Value: "key"}},
			wantURL:    "https://api.example.com/",
			wantHeader: http.Header{},
			wantQuery:  url.Values{"api_key": {"k-9"}},
		},
		{
			name:       "none",
			api:        APIConfig{BaseURI: "https://api.example.com/", Auth: Auth{Type: AuthNone}},
			wantURL:    "https://api.example.com/",
			wantHeader: http.Header{},
			wantQuery:  url.Values{},
		},
		{
			name:       "placeholders, path-escaped",
			api:        APIConfig{BaseURI: "https://{credentials.shop}.example.com/{parameters.version}/{connectorParameters.region}/{credentials.n}/", Auth: Auth{Type: AuthNone}},
			wantURL:    "https://acme.example.com/v%201%2F..%3F/eu/12/",
			wantHeader: http.Header{},
			wantQuery:  url.Values{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Connector{Key: "x", API: tt.api}
			client := &http.Client{}
			api, err := c.ResolveAPI(creds, map[string]any{"version": "v 1/..?"}, map[string]any{"region": "eu"}, client)
			if err != nil {
				t.Fatal(err)
			}
			if got := api.BaseURL.String(); got != tt.wantURL {
				t.Errorf("base URL: got %s, want %s", got, tt.wantURL)
			}
			if !reflect.DeepEqual(api.Header, tt.wantHeader) {
				t.Errorf("header: got %v, want %v", api.Header, tt.wantHeader)
			}
			if !reflect.DeepEqual(api.Query, tt.wantQuery) {
				t.Errorf("query: got %v, want %v", api.Query, tt.wantQuery)
			}
			if api.Client != client {
				t.Errorf("client not passed through")
			}
		})
	}
}

func TestResolveAPIErrors(t *testing.T) {
	tests := []struct {
		name  string
		api   APIConfig
		creds map[string]any
		want  string
	}{
		{name: "bearer token missing", api: APIConfig{BaseURI: "https://a/", Auth: Auth{Type: AuthBearer, Token: "accessToken"}}, creds: map[string]any{"other": "s3cret"}, want: `credential "accessToken" is missing`},
		{name: "bearer token empty", api: APIConfig{BaseURI: "https://a/", Auth: Auth{Type: AuthBearer, Token: "accessToken"}}, creds: map[string]any{"accessToken": ""}, want: `credential "accessToken" is missing`},
		{name: "basic password missing", api: APIConfig{BaseURI: "https://a/", Auth: Auth{Type: AuthBasic, Username: "u", Password: "p"}}, creds: map[string]any{"u": "s3cret"}, want: `credential "p" is missing`},
		{name: "header value missing", api: APIConfig{BaseURI: "https://a/", Auth: Auth{Type: AuthHeader, Name: "X-Key", Value: "key"}}, creds: nil, want: `credential "key" is missing`},
		{name: "query value missing", api: APIConfig{BaseURI: "https://a/", Auth: Auth{Type: AuthQuery, Name: "k", Value: "key"}}, creds: nil, want: `credential "key" is missing`},
		{name: "value that breaks the host", api: APIConfig{BaseURI: "https://{credentials.shop}.example.com/", Auth: Auth{Type: AuthNone}}, creds: map[string]any{"shop": "evil.com/s3cret"}, want: "the filled-in URL does not parse"},
		{name: "placeholder missing", api: APIConfig{BaseURI: "https://{credentials.shop}.example.com/", Auth: Auth{Type: AuthNone}}, creds: map[string]any{"other": "s3cret"}, want: "credentials.shop is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Connector{Key: "x", API: tt.api}
			_, err := c.ResolveAPI(tt.creds, nil, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}

func TestResolveAPIWithoutAPI(t *testing.T) {
	api, err := (&Connector{Key: "x"}).ResolveAPI(nil, nil, nil, nil)
	if api != nil || err != nil {
		t.Errorf("got %v, %v; want nil, nil", api, err)
	}
}
