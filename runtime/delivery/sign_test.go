package delivery

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/egress"
	"github.com/switchboard-run/switchboard/runtime/store"
)

// The example of the Standard Webhooks specification (and of its reference libraries).
func TestSignStandardWebhooksExample(t *testing.T) {
	got, err := Sign([]store.Secret{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "msg_p5jXN8AQM9LWM0D4loKWxJek",
		1614265330, []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestSignSeveralSecrets(t *testing.T) {
	a, b := store.Secret("whsec_YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh"), store.Secret("whsec_YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJi")
	both, err := Sign([]store.Secret{a, b}, "msg_1", 1, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	one, _ := Sign([]store.Secret{a}, "msg_1", 1, []byte("{}"))
	two, _ := Sign([]store.Secret{b}, "msg_1", 1, []byte("{}"))
	if both != one+" "+two {
		t.Errorf("Sign with two secrets = %q, want %q", both, one+" "+two)
	}
	if _, err := Sign([]store.Secret{"nope"}, "msg_1", 1, nil); err == nil {
		t.Error("Sign accepted a secret without whsec_")
	}
}

func TestMessageID(t *testing.T) {
	id := MessageID("evt_1", "ep_1")
	if id != MessageID("evt_1", "ep_1") || !strings.HasPrefix(id, "msg_") || len(id) != 30 {
		t.Errorf("MessageID = %q", id)
	}
	if id == MessageID("evt_1", "ep_2") || id == MessageID("evt_2", "ep_1") {
		t.Error("MessageID repeats across events or endpoints")
	}
}

func TestSecretIsRedacted(t *testing.T) {
	s := store.Secret("whsec_c2VjcmV0")
	var b strings.Builder
	for _, out := range []string{s.String(), s.GoString(), s.LogValue().String()} {
		b.WriteString(out)
	}
	if strings.Contains(b.String(), "c2VjcmV0") {
		t.Errorf("secret printed: %s", b.String())
	}
}

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"https://example.com/hooks", false, true},
		{"http://93.184.215.14:8080/x?y=1", false, true},
		{"http://127.0.0.1:8080/", false, false},
		{"http://[::1]/", false, false},
		{"http://10.1.2.3/", false, false},
		{"http://169.254.169.254/latest/meta-data", false, false},
		{"http://localhost:9000/", false, false},
		{"http://127.0.0.1:8080/", true, true},
		{"http://localhost:9000/", true, true},
		{"ftp://example.com/", true, false},
		{"/relative", true, false},
		{"example.com/hooks", true, false},
		{"https:///nohost", true, false},
		{"https://example.com/#frag", true, false},
		{"::", true, false},
	} {
		t.Run(tt.url, func(t *testing.T) {
			err := CheckURL(ctx, tt.url, tt.allowPrivate)
			if (err == nil) != tt.ok {
				t.Errorf("CheckURL(%q, allowPrivate=%v) = %v, want ok=%v", tt.url, tt.allowPrivate, err, tt.ok)
			}
		})
	}
}

// The guard that matters runs where the address is dialled: a URL stored before (or
// resolving differently than) any check is still refused.
func TestSendRefusesPrivateAddresses(t *testing.T) {
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer srv.Close()
	s := &Service{cfg: Config{}.withDefaults(), client: egress.Client(false)}
	ep := store.Endpoint{ID: "ep_1", URL: srv.URL, Secret: "whsec_YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh"}
	res := s.send(context.Background(), ep, "msg_1", []byte("{}"), 10)
	if !errors.Is(res.err, egress.ErrPrivateAddress) || hit {
		t.Errorf("send to loopback with private networks refused: err %v, reached %v", res.err, hit)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"1", time.Second}, {" 120 ", 2 * time.Minute}, {"0", 0}, {"-5", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tt.v, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.v, got, tt.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	s := &Service{cfg: Config{Schedule: []time.Duration{0, 10 * time.Second, time.Minute}, MaxRetryAfter: time.Hour}.withDefaults()}
	for range 100 {
		if d := s.retryDelay(1, 0); d < 9*time.Second || d > 11*time.Second {
			t.Fatalf("retryDelay(1) = %s, want 10s ±10%%", d)
		}
	}
	if d := s.retryDelay(1, 30*time.Second); d != 30*time.Second {
		t.Errorf("retryDelay with a longer Retry-After = %s, want 30s", d)
	}
	if d := s.retryDelay(2, 48*time.Hour); d != time.Hour {
		t.Errorf("retryDelay with a huge Retry-After = %s, want the 1h cap", d)
	}
}
