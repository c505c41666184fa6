package channel

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/ohler55/ojg/jp"

	"github.com/switchboard-run/switchboard/runtime/connector"
)

func items(t *testing.T, d connector.Discriminator, docs ...string) []polledItem {
	t.Helper()
	var out []polledItem
	for _, doc := range docs {
		v, err := decodeJSON([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		it, ok := discriminate(d, v)
		if !ok {
			t.Fatalf("no discriminator in %s", doc)
		}
		out = append(out, it)
	}
	return out
}

func discs(its []polledItem) []string {
	out := []string{}
	for _, it := range its {
		out = append(out, it.disc)
	}
	return out
}

func TestAdvanceTimestamps(t *testing.T) {
	d := connector.Discriminator{Path: jp.MustParseString("$.at"), Kind: connector.DiscriminatorTimestamp}
	// A baseline: every item is fresh to advance (pollOnce publishes none of them).
	first := items(t, d, `{"id":1,"at":"2026-11-22T10:00:02Z"}`, `{"id":2,"at":"2026-11-22T10:00:01Z"}`)
	fresh, cur := advance(d.Kind, pollCursor{}, first)
	if got := discs(fresh); !slices.Equal(got, []string{"2026-11-22T10:00:01Z", "2026-11-22T10:00:02Z"}) {
		t.Errorf("baseline items = %v, want them oldest first", got)
	}
	if cur.Mark != "2026-11-22T10:00:02Z" || len(cur.At) != 1 {
		t.Errorf("cursor = %+v", cur)
	}

	// The same listing again, newest first, with a new item at the mark's very time and
	// one later (with a zone offset), and an older one that appeared late.
	second := items(t, d,
		`{"id":4,"at":"2026-11-22T11:00:03+01:00"}`,
		`{"id":3,"at":"2026-11-22T10:00:02Z"}`,
		`{"id":1,"at":"2026-11-22T10:00:02Z"}`,
		`{"id":2,"at":"2026-11-22T10:00:01Z"}`,
		`{"id":0,"at":"2026-11-22T09:00:00Z"}`,
	)
	fresh, cur = advance(d.Kind, cur, second)
	if got := discs(fresh); !slices.Equal(got, []string{"2026-11-22T10:00:02Z", "2026-11-22T11:00:03+01:00"}) {
		t.Errorf("fresh items = %v, want the one at the mark and the later one", got)
	}
	if cur.Mark != "2026-11-22T11:00:03+01:00" || len(cur.At) != 1 {
		t.Errorf("cursor = %+v", cur)
	}
	// Nothing new: nothing fresh, the cursor stays.
	again, cur2 := advance(d.Kind, cur, second)
	if len(again) != 0 || cur2.Mark != cur.Mark {
		t.Errorf("a repeated listing gave %v and cursor %+v", discs(again), cur2)
	}

	// Numbers (epoch seconds) work the same way.
	n := items(t, d, `{"at":1700000002}`, `{"at":"1700000001"}`)
	fresh, cur = advance(d.Kind, pollCursor{Mark: "1700000001", At: []string{n[1].key}}, n)
	if got := discs(fresh); !slices.Equal(got, []string{"1700000002"}) || cur.Mark != "1700000002" {
		t.Errorf("numeric: fresh %v, cursor %+v", got, cur)
	}
	b, _ := json.Marshal(pollCursor{Mark: "-"})
	if len(b) == 0 || string(b) == `""` {
		t.Errorf("an empty baseline encodes as %s", b)
	}
}

func TestAdvanceIDs(t *testing.T) {
	d := connector.Discriminator{Path: jp.MustParseString("$.id"), Kind: connector.DiscriminatorID}
	_, cur := advance(d.Kind, pollCursor{}, items(t, d, `{"id":"b"}`, `{"id":"a"}`))
	fresh, cur := advance(d.Kind, cur, items(t, d, `{"id":"c"}`, `{"id":"b"}`, `{"id":"a"}`, `{"id":"c"}`))
	if got := discs(fresh); !slices.Equal(got, []string{"c"}) {
		t.Errorf("fresh = %v, want [c] once", got)
	}
	if !slices.Equal(cur.Seen, []string{"c", "b", "a"}) {
		t.Errorf("seen = %v", cur.Seen)
	}
	// Integer ids go out in ascending order whatever the listing's order.
	fresh, _ = advance(d.Kind, pollCursor{Seen: []string{"1"}}, items(t, d, `{"id":10}`, `{"id":9}`, `{"id":1}`))
	if got := discs(fresh); !slices.Equal(got, []string{"9", "10"}) {
		t.Errorf("fresh = %v, want [9 10]", got)
	}

	// The seen window is bounded, but ids still listed never leave it.
	var seen []string
	for i := range maxSeen + 50 {
		seen = append(seen, "old-"+jsonInt(i))
	}
	_, cur = advance(d.Kind, pollCursor{Seen: seen}, items(t, d, `{"id":"old-0"}`, `{"id":"new"}`))
	if len(cur.Seen) != maxSeen || !slices.Contains(cur.Seen, "old-0") || !slices.Contains(cur.Seen, "new") {
		t.Errorf("seen after trimming has %d ids, old-0 %v, new %v", len(cur.Seen), slices.Contains(cur.Seen, "old-0"), slices.Contains(cur.Seen, "new"))
	}
}

func jsonInt(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
