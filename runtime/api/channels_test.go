package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-run/switchboard/runtime/channel"
	"github.com/switchboard-run/switchboard/runtime/router"
	"github.com/switchboard-run/switchboard/runtime/store"
)

// fakeChannels answers Receive with a fixed receipt and error. Like channel.Manager, it
// admits a request once the id is resolved: to refs[channelID] when the id is listed there.
type fakeChannels struct {
	receipt channel.Receipt
	err     error
	refs    map[string]store.ChannelRef
	gotID   string
	gotBody string
}

func (f *fakeChannels) Receive(ctx context.Context, channelID string, header http.Header, body []byte, admit func(store.ChannelRef) error) (channel.Receipt, error) {
	f.gotID, f.gotBody = channelID, string(body)
	if ref, ok := f.refs[channelID]; ok && admit != nil {
		if err := admit(ref); err != nil {
			return channel.Receipt{}, err
		}
	}
	return f.receipt, f.err
}

func (f *fakeChannels) ChannelID(ctx context.Context, connectionID, channelKey string) (string, error) {
	return "", errors.New("not used")
}

func (f *fakeChannels) Changed(connectionID, channelKey string) {}

// TestChannelIngestStatuses maps every outcome of channel.Manager.Receive to its status.
func TestChannelIngestStatuses(t *testing.T) {
	created := channel.Event{Type: "order.created", ID: "o_1"}
	rejected := &channel.RejectedError{Type: "order.created", ID: "o_2", Issues: []string{"/total: type: got string, want number"}}
	tests := []struct {
		name       string
		receipt    channel.Receipt
		err        error
		body       string
		status     int
		want       string
		retryAfter bool
	}{
		{"published", channel.Receipt{ChannelKey: "orders", Events: []channel.Event{created}, Published: 2}, nil, `{}`,
			200, `{"status":"published","channel":"orders","events":[{"type":"order.created","id":"o_1"}],"published":2,"unmatched":0}`, false},
		{"no subscribers", channel.Receipt{ChannelKey: "orders", Events: []channel.Event{created}}, nil, `{}`,
			200, `"status":"no_subscribers"`, false},
		{"no match", channel.Receipt{ChannelKey: "orders", Unmatched: 1}, nil, `{}`,
			200, `{"status":"ignored","channel":"orders","events":[],"published":0,"unmatched":1,"note":"no event definition of channel \"orders\" matched; nothing was published"}`, false},
		{"every event rejected", channel.Receipt{ChannelKey: "orders", Rejected: []*channel.RejectedError{rejected}}, nil, `{}`,
			422, `{"error":{"code":"payload_rejected","message":"payload of event type \"order.created\" fails its schema: /total: type: got string, want number"}}`, false},
		{"some events rejected", channel.Receipt{ChannelKey: "cloud", Events: []channel.Event{created}, Rejected: []*channel.RejectedError{rejected}, Published: 1}, nil, `{}`,
			200, `"rejected":[{"type":"order.created","id":"o_2","issues":["/total: type: got string, want number"]}]`, false},
		{"unknown channel", channel.Receipt{}, channel.ErrUnknownChannel, `{}`, 404, `"not_found"`, false},
		{"malformed", channel.Receipt{}, fmt.Errorf("%w: decoding JSON: unexpected EOF", channel.ErrMalformed), `{`, 400, `"invalid_request"`, false},
		{"connector missing", channel.Receipt{}, fmt.Errorf("resolving: %w", channel.ErrConnectorMissing), `{}`, 503, `"unavailable"`, true},
		{"bus or store down", channel.Receipt{}, errors.New("publishing 2 channel events: event bus unavailable"), `{}`, 503, `"unavailable"`, true},
		{"event type unfit for a subject", channel.Receipt{}, fmt.Errorf("publishing: %w", router.ErrInvalidSubjectToken), `{}`, 500, `"internal"`, false},
		{"over the limit", channel.Receipt{}, nil, strings.Repeat("x", 65), 413, `"payload_too_large"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeChannels{receipt: tt.receipt, err: tt.err}
			a := New(Config{Channels: fake, MaxBody: 64})
			for _, chunked := range []bool{false, true} {
				var body io.Reader = strings.NewReader(tt.body)
				if chunked {
					body = io.MultiReader(body) // no length known in advance
				}
				req := httptest.NewRequest("POST", "/hooks/chan-id-1", body)
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				a.ServeHTTP(rec, req)
				if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.want) {
					t.Errorf("chunked %v: %d %s, want %d with %s", chunked, rec.Code, rec.Body, tt.status, tt.want)
				}
				if got := rec.Header().Get("Retry-After") != ""; got != tt.retryAfter {
					t.Errorf("Retry-After set: %v, want %v", got, tt.retryAfter)
				}
				if tt.status != 413 && (fake.gotID != "chan-id-1" || fake.gotBody != tt.body) {
					t.Errorf("Receive got id %q and body %q", fake.gotID, fake.gotBody)
				}
			}
		})
	}
}

// TestChannelRoutesNeedChannels: without a channel runtime the routes do not exist.
func TestChannelRoutesNeedChannels(t *testing.T) {
	a := New(Config{})
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("POST", "/hooks/x", strings.NewReader(`{}`)))
	if rec.Code != 404 {
		t.Errorf("POST /hooks/x without channels: %d, want 404", rec.Code)
	}
}

// TestChannelIngestRateLimit: each channel URL has its own token bucket, like each global
// webhook URL: a flooded one answers 429 with Retry-After while another keeps answering.
func TestChannelIngestRateLimit(t *testing.T) {
	fake := &fakeChannels{
		receipt: channel.Receipt{ChannelKey: "orders"},
		refs: map[string]store.ChannelRef{
			"flooded": {IntegrationKey: "shop", ConnectionID: "conn_1", ChannelKey: "orders"},
			"other":   {IntegrationKey: "shop", ConnectionID: "conn_2", ChannelKey: "orders"},
		},
	}
	a := New(Config{Channels: fake, IngestRate: 0.5, IngestBurst: 2}) // a token every 2s
	post := func(id string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/hooks/"+id, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		return rec
	}
	for i := range 2 {
		if rec := post("flooded"); rec.Code != 200 {
			t.Fatalf("request %d of the burst: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	rec := post("flooded")
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), `"rate_limited"`) {
		t.Fatalf("past the burst: %d %s, want 429 rate_limited", rec.Code, rec.Body)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "1" && ra != "2" {
		t.Errorf("Retry-After %q, want 1 or 2 (seconds until a token)", ra)
	}
	if rec := post("other"); rec.Code != 200 {
		t.Fatalf("another connection's channel URL while the first is flooded: %d %s", rec.Code, rec.Body)
	}
}
