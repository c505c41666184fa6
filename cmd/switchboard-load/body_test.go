package main

import (
	"encoding/json"
	"testing"
)

func TestBodyMaker(t *testing.T) {
	m := newBodyMaker(bodyShape{Size: 1024, Users: 1000, Match: 0.25, Nonce: "n1"}, 1)
	seen := map[string]bool{}
	matched := 0
	for range 4000 {
		b, isMatched := m.next()
		var v struct {
			EventID    string `json:"event_id"`
			FromUserID int64  `json:"from_user_id"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, b)
		}
		if len(b) < 1000 || len(b) > 1060 {
			t.Errorf("body of %d bytes, want about 1024", len(b))
		}
		if seen[v.EventID] {
			t.Fatalf("event id %q repeated", v.EventID)
		}
		seen[v.EventID] = true
		if isMatched != (v.FromUserID < 1000) || v.FromUserID < 0 || v.FromUserID >= 2000 {
			t.Fatalf("user %d reported matched=%v", v.FromUserID, isMatched)
		}
		if isMatched {
			matched++
		}
	}
	if matched < 800 || matched > 1200 {
		t.Errorf("%d of 4000 matched with Match 0.25", matched)
	}
}
