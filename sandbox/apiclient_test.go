package sandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// apiServer is the external app's API: it wants a bearer token and an api_key query
// parameter on every request, as a connector's api.auth would attach them.
func apiServer(t *testing.T, elsewhere string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" || r.URL.Query().Get("api_key") != "k1" {
				http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /api/users/me", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": "U1", "query": r.URL.Query(), "x-trace": r.Header.Get("X-Trace")})
	}))
	mux.HandleFunc("/api/items", auth(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var data any
		_ = json.Unmarshal(body, &data)
		writeJSON(w, 201, map[string]any{"method": r.Method, "contentType": r.Header.Get("Content-Type"), "data": data})
	}))
	mux.HandleFunc("GET /api/missing", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 404, map[string]any{"error": "no such thing"})
	}))
	mux.HandleFunc("GET /api/text", auth(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello")
	}))
	mux.HandleFunc("GET /api/json-as-text", auth(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	mux.HandleFunc("DELETE /api/items/1", auth(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /api/slow", auth(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	mux.HandleFunc("GET /api/big", auth(func(w http.ResponseWriter, r *http.Request) {
		chunk := strings.Repeat("x", 1<<20)
		for range 11 {
			_, _ = io.WriteString(w, chunk)
		}
	}))
	mux.HandleFunc("GET /api/away", auth(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere+"/steal", http.StatusFound)
	}))
	mux.HandleFunc("GET /api/home", auth(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/api/users/me?api_key=k1", http.StatusFound)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestAPIClient(t *testing.T) {
	var stolen atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
	}))
	t.Cleanup(thief.Close)
	srv := apiServer(t, thief.URL)
	base, _ := url.Parse(srv.URL + "/api/")
	env := Env{API: &API{
		BaseURL: base,
		Header:  http.Header{"Authorization": {"Bearer tok"}},
		Query:   url.Values{"api_key": {"k1"}},
		Client:  srv.Client(),
	}}

	tests := []struct {
		name    string
		body    string // the body of an async function given { apiClient, parameters }
		want    any
		wantErr string
	}{
		{
			name: "get with query and options",
			body: "const me = await apiClient.get('users/me', { limit: 10, tags: ['a', 'b'], skip: null }, { headers: { 'X-Trace': 't1' }, query: { extra: true } })\nreturn me",
			want: map[string]any{"id": "U1", "x-trace": "t1", "query": map[string]any{
				"api_key": []any{"k1"}, "limit": []any{"10"}, "tags": []any{"a", "b"}, "extra": []any{"true"},
			}},
		},
		{
			name: "leading slash stays under the base path",
			body: "return (await apiClient.get('/users/me')).id",
			want: "U1",
		},
		{
			name: "post json",
			body: "return await apiClient.post('items', { name: 'n', n: [1, 2] })",
			want: map[string]any{"method": "POST", "contentType": "application/json", "data": map[string]any{"name": "n", "n": []any{1.0, 2.0}}},
		},
		{
			name: "put and patch",
			body: "const a = await apiClient.put('items', { a: 1 })\nconst b = await apiClient.patch('items', { b: 2 })\nreturn [a.method, b.method, b.data]",
			want: []any{"PUT", "PATCH", map[string]any{"b": 2.0}},
		},
		{
			name: "delete with an empty response",
			body: "return await apiClient.delete('items/1')",
			want: nil,
		},
		{
			name: "text response",
			body: "return await apiClient.get('text')",
			want: "hello",
		},
		{
			name: "json sent as text",
			body: "return await apiClient.get('json-as-text')",
			want: map[string]any{"ok": true},
		},
		{
			name: "non-2xx rejects with status and data",
			body: `try {
  await apiClient.get('missing')
  return 'resolved'
} catch (e) {
  return { isError: e instanceof Error, message: e.message, status: e.status, data: e.data }
}`,
			want: map[string]any{"isError": true, "message": "GET missing: status 404 Not Found", "status": 404.0, "data": map[string]any{"error": "no such thing"}},
		},
		{
			name: "concurrent requests",
			body: "const [a, b, c] = await Promise.all([apiClient.get('users/me'), apiClient.get('text'), apiClient.post('items', [1])])\nreturn [a.id, b, c.data]",
			want: []any{"U1", "hello", []any{1.0}},
		},
		{
			name:    "uncaught rejection fails the call",
			body:    "await apiClient.get('missing')",
			wantErr: testName + ":2: exception: Error: GET missing: status 404 Not Found",
		},
		{
			name: "redirect to another host is refused",
			body: "try { await apiClient.get('away') } catch (e) { return e.message }",
			want: "GET away: refusing a redirect to " + strings.Replace(thief.URL, "://", "://", 1) + ": requests go to " + srv.URL + " only",
		},
		{
			name: "redirect on the same host is followed",
			body: "return (await apiClient.get('home')).id",
			want: "U1",
		},
		{
			name: "absolute URL to another host is refused",
			body: "try { await apiClient.get('" + thief.URL + "/x') } catch (e) { return e.message }",
			want: "GET " + thief.URL + "/x: refusing a URL outside the API at " + srv.URL,
		},
		{
			name: "climbing out of the base path is refused",
			body: "try { await apiClient.get('../admin') } catch (e) { return e.message }",
			want: `GET ../admin: refusing a path with ".." segments`,
		},
		{
			name: "response too large",
			body: "try { await apiClient.get('big') } catch (e) { return e.message }",
			want: "GET big: response body larger than 10 MiB",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustCompile(t, "export default async function getEventSelector({ apiClient, parameters }) {\n"+tt.body+"\n}")
			got, err := s.CallOnce(t.Context(), Config{}, map[string]any{"parameters": map[string]any{}}, env)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
				se := asScriptError(t, err)
				if v, ok := se.Value.(map[string]any); !ok || v["status"] != 404.0 {
					t.Errorf("Value = %#v, want status 404", se.Value)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}
}

func TestAPIClientDeadline(t *testing.T) {
	srv := apiServer(t, "")
	base, _ := url.Parse(srv.URL + "/api")
	env := Env{API: &API{BaseURL: base, Header: http.Header{"Authorization": {"Bearer tok"}}, Query: url.Values{"api_key": {"k1"}}, Client: srv.Client()}}
	s := mustCompile(t, "export default async ({ apiClient }) => {\n  await apiClient.get('slow')\n}")
	start := time.Now()
	_, err := NewPool(s, Config{Limits: Limits{Timeout: 150 * time.Millisecond}}).Call(t.Context(), map[string]any{}, env)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("call took %v", d)
	}
	if se := asScriptError(t, err); se.Reason != ReasonTimeout {
		t.Errorf("error = %v, want a timeout", err)
	}
}

// TestAPIClientWithoutAPI: a call without an Env.API still gets an apiClient (a script
// destructuring it does not fail with a TypeError), whose every request rejects saying why.
// It is not enumerable, so a script returning its argument does not carry it.
func TestAPIClientWithoutAPI(t *testing.T) {
	src := `export default async (arg) => {
  const { apiClient } = arg
  let message
  try {
    await apiClient.get('users/me')
  } catch (e) {
    message = e instanceof Error && e.message
  }
  return { type: typeof apiClient, keys: Object.keys(arg), message }
}`
	got, err := callOnPool(t, src, Config{}, map[string]any{"parameters": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type":    "object",
		"keys":    []any{"parameters"},
		"message": "GET users/me: " + errNoAPI.Error(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
}

func TestAPIURL(t *testing.T) {
	tests := []struct {
		base, path, want string // want "" : refused
	}{
		{"https://x.test/api/", "users/me", "https://x.test/api/users/me"},
		{"https://x.test/api/", "/users/me", "https://x.test/api/users/me"},
		{"https://x.test/api", "users/me", "https://x.test/api/users/me"},
		{"https://x.test/api", "/users/me/", "https://x.test/api/users/me/"},
		{"https://x.test", "users", "https://x.test/users"},
		{"https://x.test/api/", "", "https://x.test/api/"},
		{"https://x.test/api/?v=2", "users?limit=1", "https://x.test/api/users?limit=1&v=2"},
		{"https://x.test/api/", "a%2Fb/c", "https://x.test/api/a%2Fb/c"},
		{"https://x.test/api/", "https://x.test/api/users?page=2", "https://x.test/api/users?page=2"},
		{"https://x.test/api/", "https://evil.test/api/users", ""},
		{"https://x.test/api/", "http://x.test/api/users", ""},
		{"https://x.test/api/", "//evil.test/x", ""},
		{"https://x.test/api/", "../admin", ""},
		{"https://x.test/api/", "users/../../admin", ""},
	}
	for _, tt := range tests {
		t.Run(tt.base+" "+tt.path, func(t *testing.T) {
			base, err := url.Parse(tt.base)
			if err != nil {
				t.Fatal(err)
			}
			u, err := apiURL(base, tt.path)
			switch {
			case tt.want == "" && err == nil:
				t.Errorf("apiURL = %s, want it refused", u)
			case tt.want != "" && err != nil:
				t.Errorf("apiURL: %v", err)
			case tt.want != "" && u.String() != tt.want:
				t.Errorf("apiURL = %s, want %s", u, tt.want)
			}
		})
	}
}
