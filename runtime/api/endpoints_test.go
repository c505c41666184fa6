package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/embedded"
)

// fakeDeliverer refuses URLs on "private.example" and records what it is asked.
type fakeDeliverer struct {
	replayed []string
}

func (f *fakeDeliverer) CheckURL(ctx context.Context, raw string) error {
	if strings.Contains(raw, "private.example") {
		return errors.New("private.example resolves to 10.0.0.1, which is not a public address")
	}
	if !strings.HasPrefix(raw, "https://") {
		return errors.New("must be an absolute http or https URL")
	}
	return nil
}

func (f *fakeDeliverer) Test(ctx context.Context, ep store.Endpoint) (store.Attempt, error) {
	return store.Attempt{EndpointID: ep.ID, Status: 204, DurationMs: 3, Response: "ok"}, nil
}

func (f *fakeDeliverer) Replay(ctx context.Context, ep store.Endpoint, dls []store.DeadLetter) (int, error) {
	for _, d := range dls {
		f.replayed = append(f.replayed, d.ID)
	}
	return len(dls), nil
}

type endpointsFixture struct {
	srv   *httptest.Server
	store *embedded.Store
	fake  *fakeDeliverer
}

func newEndpointsFixture(t *testing.T) *endpointsFixture {
	t.Helper()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "switchboard.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	if err := st.CreateIntegration(t.Context(), store.Integration{Key: "slack", ConnectorKey: "slack"}); err != nil {
		t.Fatal(err)
	}
	f := &endpointsFixture{store: st, fake: &fakeDeliverer{}}
	a := New(Config{Store: st, APIToken: "tok"})
	a.AddEndpointRoutes(EndpointsConfig{Store: st, Deliverer: f.fake})
	f.srv = httptest.NewServer(a)
	t.Cleanup(f.srv.Close)
	return f
}

// call makes an authorised request and returns the status and the raw body.
func (f *endpointsFixture) call(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestCreateEndpoint(t *testing.T) {
	f := newEndpointsFixture(t)
	status, body := f.call(t, "POST", "/v1/integrations/slack/endpoints", `{"url":"https://example.com/hook","eventKeys":["a","b","a"],"description":"mine"}`)
	if status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, body)
	}
	var ep map[string]any
	if err := json.Unmarshal([]byte(body), &ep); err != nil {
		t.Fatal(err)
	}
	secret, _ := ep["secret"].(string)
	id, _ := ep["id"].(string)
	if !strings.HasPrefix(secret, "whsec_") || len(secret) < len("whsec_")+32 {
		t.Errorf("secret = %q", secret)
	}
	if !strings.HasPrefix(id, "ep_") || ep["enabled"] != true || ep["url"] != "https://example.com/hook" ||
		ep["description"] != "mine" || ep["createdAt"] == nil || fmt.Sprint(ep["eventKeys"]) != "[a b]" {
		t.Errorf("created endpoint = %s", body)
	}

	// The secret is never shown again.
	for _, path := range []string{"/v1/integrations/slack/endpoints", "/v1/integrations/slack/endpoints/" + id} {
		status, body := f.call(t, "GET", path, "")
		if status != http.StatusOK || strings.Contains(body, secret) || strings.Contains(body, "whsec_") || strings.Contains(body, `"secret"`) {
			t.Errorf("GET %s: status %d, body %s", path, status, body)
		}
	}
	status, body = f.call(t, "PATCH", "/v1/integrations/slack/endpoints/"+id, `{"description":"other","eventKeys":[]}`)
	if status != http.StatusOK || strings.Contains(body, "whsec_") || !strings.Contains(body, `"eventKeys":[]`) {
		t.Errorf("PATCH without rotation: status %d, body %s", status, body)
	}
}

func TestEndpointValidation(t *testing.T) {
	f := newEndpointsFixture(t)
	for _, tt := range []struct {
		name, path, body string
		status           int
		field            string
	}{
		{"no url", "/v1/integrations/slack/endpoints", `{}`, 400, "url"},
		{"private url", "/v1/integrations/slack/endpoints", `{"url":"https://private.example/"}`, 400, "url"},
		{"not https", "/v1/integrations/slack/endpoints", `{"url":"ftp://example.com/"}`, 400, "url"},
		{"empty event key", "/v1/integrations/slack/endpoints", `{"url":"https://example.com/","eventKeys":[""]}`, 400, "eventKeys[0]"},
		{"event keys not a list", "/v1/integrations/slack/endpoints", `{"url":"https://example.com/","eventKeys":"a"}`, 400, "eventKeys"},
		{"long description", "/v1/integrations/slack/endpoints", `{"url":"https://example.com/","description":"` + strings.Repeat("x", 2000) + `"}`, 400, "description"},
		{"unknown integration", "/v1/integrations/nope/endpoints", `{"url":"https://example.com/"}`, 404, ""},
		{"bad integration key", "/v1/integrations/a.b/endpoints", `{"url":"https://example.com/"}`, 400, "key"},
		{"unknown endpoint", "/v1/integrations/slack/endpoints/ep_nope", ``, 404, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			method := "POST"
			if tt.body == "" {
				method = "GET"
			}
			status, body := f.call(t, method, tt.path, tt.body)
			if status != tt.status || !strings.Contains(body, `"message":"`+tt.field) {
				t.Errorf("status %d, body %s; want %d naming %q", status, body, tt.status, tt.field)
			}
		})
	}
}

func TestEndpointLimit(t *testing.T) {
	f := newEndpointsFixture(t)
	for i := range 5 {
		if status, body := f.call(t, "POST", "/v1/integrations/slack/endpoints", fmt.Sprintf(`{"url":"https://example.com/%d"}`, i)); status != http.StatusCreated {
			t.Fatalf("endpoint %d: status %d: %s", i+1, status, body)
		}
	}
	status, body := f.call(t, "POST", "/v1/integrations/slack/endpoints", `{"url":"https://example.com/6"}`)
	if status != http.StatusConflict || !strings.Contains(body, `"code":"conflict"`) || !strings.Contains(body, "5 endpoints") {
		t.Errorf("6th endpoint: status %d, body %s; want 409 saying why", status, body)
	}
}

func TestRotateSecret(t *testing.T) {
	f := newEndpointsFixture(t)
	_, body := f.call(t, "POST", "/v1/integrations/slack/endpoints", `{"url":"https://example.com/"}`)
	var created struct{ ID, Secret string }
	json.Unmarshal([]byte(body), &created)

	status, body := f.call(t, "PATCH", "/v1/integrations/slack/endpoints/"+created.ID, `{"rotateSecret":true}`)
	var rotated struct {
		Secret                  string
		PreviousSecretExpiresAt time.Time
	}
	json.Unmarshal([]byte(body), &rotated)
	if status != http.StatusOK || !strings.HasPrefix(rotated.Secret, "whsec_") || rotated.Secret == created.Secret {
		t.Fatalf("rotation: status %d, body %s", status, body)
	}
	if d := time.Until(rotated.PreviousSecretExpiresAt); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("previous secret expires in %s, want 24h", d)
	}
	ep, err := f.store.GetEndpoint(t.Context(), "slack", created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(ep.Secret) != rotated.Secret || string(ep.PreviousSecret) != created.Secret || len(ep.SigningSecrets(time.Now())) != 2 {
		t.Errorf("stored secrets after rotation do not match")
	}
}

func TestEndpointLifecycle(t *testing.T) {
	f := newEndpointsFixture(t)
	_, body := f.call(t, "POST", "/v1/integrations/slack/endpoints", `{"url":"https://example.com/"}`)
	var created struct{ ID string }
	json.Unmarshal([]byte(body), &created)
	path := "/v1/integrations/slack/endpoints/" + created.ID

	if status, body := f.call(t, "POST", path+"/test", ""); status != 200 || body != `{"status":204,"durationMs":3,"body":"ok"}`+"\n" {
		t.Errorf("test: status %d, body %q", status, body)
	}
	if status, body := f.call(t, "GET", path+"/attempts", ""); status != 200 || body != "[]\n" {
		t.Errorf("attempts: status %d, body %q", status, body)
	}

	// Dead letters, replayed one by one and by range; a disabled endpoint refuses replays.
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i, id := range []string{"dl_1", "dl_2", "dl_3"} {
		d := store.DeadLetter{ID: id, IntegrationKey: "slack", EndpointID: created.ID, MessageID: "msg_" + id,
			Envelope: json.RawMessage(`{}`), CreatedAt: at.Add(time.Duration(i) * time.Hour)}
		if err := f.store.PutDeadLetter(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	if status, body := f.call(t, "GET", path+"/dead-letters", ""); status != 200 || strings.Index(body, "dl_3") > strings.Index(body, "dl_1") {
		t.Errorf("dead letters: status %d, body %s; want newest first", status, body)
	}
	if status, body := f.call(t, "POST", path+"/dead-letters/dl_1/replay", ""); status != 202 || body != `{"replayed":1}`+"\n" {
		t.Errorf("replay one: status %d, body %s", status, body)
	}
	if status, _ := f.call(t, "POST", path+"/dead-letters/dl_9/replay", ""); status != 404 {
		t.Errorf("replay of an unknown dead letter: status %d", status)
	}
	if status, body := f.call(t, "POST", path+"/replay", `{"since":"2026-11-22T10:30:00Z","until":"2026-11-22T11:30:00Z"}`); status != 202 || body != `{"replayed":1}`+"\n" {
		t.Errorf("replay range: status %d, body %s", status, body)
	}
	if status, _ := f.call(t, "POST", path+"/replay", `{"since":"yesterday"}`); status != 400 {
		t.Errorf("replay with a bad time: status %d", status)
	}
	if got := fmt.Sprint(f.fake.replayed); got != "[dl_1 dl_2]" {
		t.Errorf("replayed %s, want [dl_1 dl_2]", got)
	}
	if status, body := f.call(t, "PATCH", path, `{"enabled":false}`); status != 200 || !strings.Contains(body, `"enabled":false`) {
		t.Errorf("disable: status %d, body %s", status, body)
	}
	if status, _ := f.call(t, "POST", path+"/replay", ``); status != 409 {
		t.Errorf("replay at a disabled endpoint: status %d, want 409", status)
	}

	if status, _ := f.call(t, "DELETE", path, ""); status != 204 {
		t.Errorf("delete: status %d", status)
	}
	if status, _ := f.call(t, "GET", path, ""); status != 404 {
		t.Errorf("get after delete: status %d", status)
	}
	// Behind the token like every /v1 route.
	req, _ := http.NewRequest("GET", f.srv.URL+"/v1/integrations/slack/endpoints", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("without the token: status %d", resp.StatusCode)
	}
}
