package channel

import (
	"errors"
	"testing"

	"github.com/switchboard-run/switchboard/runtime/connector"
)

// loadShop loads the test connector of testdata/channel.
func loadShop(t testing.TB) *connector.Connector {
	t.Helper()
	set, err := connector.Load("../../testdata/channel/connectors")
	if err != nil {
		t.Fatalf("loading the test connectors: %v", err)
	}
	return set.Connectors["shop"]
}

func TestExtract(t *testing.T) {
	orders := loadShop(t).Channels["orders"]
	tests := []struct {
		name        string
		body        string
		wantType    string
		wantID      string
		wantPayload string
		wantErr     error // ErrNoMatch, or a *RejectedError when rejected is set
		rejected    bool
	}{
		{"first definition", `{"event":{"type":"order.created","id":"o_1","data":{"total":12.5,"note":"<b>&"}}}`,
			"order.created", "o_1", `{"note":"<b>&","total":12.5}`, nil, false},
		{"second definition", `{"event":{"type":"order.updated","id":"o_1","data":{"status":"paid"}}}`,
			"order.updated", "o_1", `{"status":"paid"}`, nil, false},
		{"first match wins over a later definition of the same body", `{"kind":"order.created","id":7,"event":{"type":"order.created","id":"o_2","data":{"total":1}}}`,
			"order.created", "o_2", `{"total":1}`, nil, false},
		{"a later definition by another path", `{"kind":"order.created","id":12345678901234567890}`,
			"order.created", "12345678901234567890", `{"id":12345678901234567890,"kind":"order.created"}`, nil, false},
		{"no match", `{"event":{"type":"order.deleted","id":"o_1"}}`, "", "", "", ErrNoMatch, false},
		{"type not a string", `{"event":{"type":5}}`, "", "", "", ErrNoMatch, false},
		{"not an object", `[1,2]`, "", "", "", ErrNoMatch, false},
		{"schema failure", `{"event":{"type":"order.created","id":"o_3","data":{"total":"12"}}}`,
			"order.created", "o_3", "", nil, true},
		{"missing payload fails its schema", `{"event":{"type":"order.created","id":"o_4"}}`,
			"order.created", "o_4", "", nil, true},
		{"missing id", `{"refund":{"kind":"refund","amount":3}}`, "refund", "", `{"amount":3,"kind":"refund"}`, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := decodeJSON([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := Extract(orders, msg, []byte(tt.body))
			if tt.rejected {
				var re *RejectedError
				if !errors.As(err, &re) || re.Type != tt.wantType || re.ID != tt.wantID || len(re.Issues) == 0 {
					t.Fatalf("Extract: err = %v, want a rejection of %s %s", err, tt.wantType, tt.wantID)
				}
				return
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Extract: err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if ev.Type != tt.wantType || ev.ID != tt.wantID || string(ev.Payload) != tt.wantPayload {
				t.Errorf("Extract = %s %q %s; want %s %q %s", ev.Type, ev.ID, ev.Payload, tt.wantType, tt.wantID, tt.wantPayload)
			}
			if ev.key == "" {
				t.Errorf("the event has no de-duplication key")
			}
		})
	}
}

func TestExtractKeys(t *testing.T) {
	orders := loadShop(t).Channels["orders"]
	key := func(body string) string {
		t.Helper()
		msg, _ := decodeJSON([]byte(body))
		ev, err := Extract(orders, msg, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return ev.key
	}
	// With an id, the key is the id: the same event sent with other bytes is the same event.
	if a, b := key(`{"event":{"type":"order.updated","id":"o_1","data":{}}}`), key(`{"event":{"type":"order.updated","id":"o_1","data":{"x":1}}}`); a != b {
		t.Errorf("events with the same id have keys %q and %q", a, b)
	}
	// Without one, the bytes decide.
	if a, b := key(`{"refund":{"kind":"refund","amount":3}}`), key(`{"refund":{"kind":"refund","amount":4}}`); a == b {
		t.Errorf("different events without ids share the key %q", a)
	}
}

func TestDecodeJSON(t *testing.T) {
	for _, body := range []string{``, `{`, `{"a":1} {"b":2}`, `not json`} {
		if _, err := decodeJSON([]byte(body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("decodeJSON(%q): err = %v, want ErrMalformed", body, err)
		}
	}
}
