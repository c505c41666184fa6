package connector

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAliasBomb: a spec whose aliases expand to 10^10 values is refused at once, not walked.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: Bomb\nimplementationType: global-webhook\nmethods:\n  get-event-selector:\n    implementationType: mapping\n    mapping:\n      globalWebhookKey: w\n      globalWebhookEventSelector: x\n")
	b.WriteString("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		p := fmt.Sprintf("*l%d", i-1)
		fmt.Fprintf(&b, "l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(p+", ", 10), ", "))
	}
	b.WriteString("schema: *l9\n")
	dir := writeTree(t, "-- connector.yml --\nname: C\n-- global-webhooks/w/spec.yml --\nname: W\nmethods:\n  handle:\n    implementationType: javascript\n"+
		"-- global-webhooks/w/handle.js --\nexport default async function handle() { return {} }\n"+
		"-- events/bomb/spec.yml --\n"+b.String())

	start := time.Now()
	_, err := LoadConnector(dir)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	got := problems(t, err, dir)
	want := filepath.Join("DIR", "events", "bomb", "spec.yml") + ":1: the document holds more than 100000 values once its aliases are expanded"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("problems %q, want [%q]", got, want)
	}
}

func TestAliasCycle(t *testing.T) {
	dir := writeTree(t, "-- connector.yml --\nname: C\nparametersSchema: &s\n  type: object\n  properties: { a: *s }\n")
	_, err := LoadConnector(dir)
	got := problems(t, err, dir)
	want := filepath.Join("DIR", "connector.yml") + ":1: alias *s at line 4 refers to a value that contains it"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("problems %q, want [%q]", got, want)
	}
}

func TestAliasesWithinLimits(t *testing.T) {
	dir := writeTree(t, "-- connector.yml --\nname: C\nparametersSchema:\n  type: object\n  properties: { a: &str { type: string }, b: *str, c: *str }\n")
	if _, err := LoadConnector(dir); err != nil {
		t.Fatalf("plain aliases refused: %v", err)
	}
}
