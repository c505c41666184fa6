package sandbox

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/dop251/goja"
)

// webhookBody is a typical ~1 KB webhook delivery.
const webhookBody = `{
  "type": "message.posted",
  "event_id": "Ev0123456789",
  "event_time": 1764000000,
  "from_user_id": "U024BE7LH",
  "team": {"id": "T0001", "domain": "example", "enterprise_id": null},
  "channel": {"id": "C2147483705", "name": "general", "is_private": false, "members": 42},
  "message": {
    "text": "Hello world — ünïcödé and emoji 🎉. Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.",
    "ts": "1355517523.000005",
    "thread_ts": null,
    "edited": false,
    "reactions": [{"name": "thumbsup", "count": 3, "users": ["U1", "U2", "U3"]}, {"name": "tada", "count": 1, "users": ["U4"]}],
    "attachments": [{"id": 1, "fallback": "Required plain-text summary", "color": "#36a64f", "title": "Report", "title_link": "https://example.com/reports/1", "fields": [{"title": "Priority", "value": "High", "short": false}]}]
  },
  "authorizations": [{"enterprise_id": null, "team_id": "T0001", "user_id": "U0002", "is_bot": true, "is_enterprise_install": false}],
  "is_ext_shared_channel": false
}`

const benchHandle = `export default async function handle({ query, data, headers, parameters, rawBody }) {
  return {
    events: [{ selector: ` + "`user_id:${data.from_user_id}`" + `, payload: data }],
    response: { status: 201, data: "Webhook received" },
  }
}`

func benchArg(b *testing.B) map[string]any {
	b.Helper()
	var data map[string]any
	if err := json.Unmarshal([]byte(webhookBody), &data); err != nil {
		b.Fatal(err)
	}
	return map[string]any{
		"query":      map[string]any{},
		"data":       data,
		"headers":    map[string]string{"content-type": "application/json", "user-agent": "Example-Hookshot/1.0"},
		"parameters": map[string]any{"signingSecret": "s3cret"},
		"rawBody":    webhookBody,
	}
}

func checkBenchResult(b *testing.B, result any, err error) {
	if err != nil {
		b.Fatal(err)
	}
	events := result.(map[string]any)["events"].([]any)
	if events[0].(map[string]any)["selector"] != "user_id:U024BE7LH" {
		b.Fatalf("result = %v", result)
	}
}

// BenchmarkCallPooled measures a handle call on a pooled runtime: "pool" is what Pool.Call
// does with data as decoded Go values; "pool-body" the same with data as the body's checked
// JSON, as the ingest path passes it (connector.HandleInput), returned unchanged as the
// payload;
// "unfrozen" reuses a runtime whose intrinsics are not frozen, and "no-watchdog" a
// pool with the memory watchdog off (MaxMemory < 0), to show what isolation and the
// watchdog cost per call.
func BenchmarkCallPooled(b *testing.B) {
	arg := benchArg(b)
	s := mustCompile(b, benchHandle)
	b.Run("pool", func(b *testing.B) {
		p := NewPool(s, Config{})
		b.ReportAllocs()
		for b.Loop() {
			result, err := p.Call(b.Context(), arg, Env{})
			checkBenchResult(b, result, err)
		}
	})
	b.Run("pool-body", func(b *testing.B) {
		p := NewPool(s, Config{})
		bodyArg := maps.Clone(arg)
		bodyArg["data"] = JSONOrText(webhookBody)
		b.ReportAllocs()
		for b.Loop() {
			result, err := p.Call(b.Context(), bodyArg, Env{})
			checkBenchResult(b, result, err)
		}
	})
	b.Run("unfrozen", func(b *testing.B) {
		in, err := newInstance(s, discardLogger(), Limits{}, false)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			result, _, err := in.run(b.Context(), arg, Env{})
			checkBenchResult(b, result, err)
		}
	})
	b.Run("no-watchdog", func(b *testing.B) {
		p := NewPool(s, Config{Limits: Limits{MaxMemory: -1}})
		b.ReportAllocs()
		for b.Loop() {
			result, err := p.Call(b.Context(), arg, Env{})
			checkBenchResult(b, result, err)
		}
	})
}

// BenchmarkNewRuntime measures preparing a runtime, frozen (a pool's) or not (CallOnce's).
func BenchmarkNewRuntime(b *testing.B) {
	s := mustCompile(b, benchHandle)
	for _, frozen := range []bool{true, false} {
		b.Run(map[bool]string{true: "frozen", false: "unfrozen"}[frozen], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := newInstance(s, discardLogger(), Limits{}, frozen); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCallFresh(b *testing.B) {
	arg := benchArg(b)
	s := mustCompile(b, benchHandle)
	b.ReportAllocs()
	for b.Loop() {
		result, err := s.CallOnce(b.Context(), Config{}, arg, Env{})
		checkBenchResult(b, result, err)
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(testName, []byte(benchHandle)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLazyJSON measures what a JSON body costs before the script reads it: the one
// scan that checks it and indexes its top level (lazyjson.go), against json.Valid alone.
func BenchmarkLazyJSON(b *testing.B) {
	body := []byte(webhookBody)
	b.Run("scan", func(b *testing.B) {
		in := newTestInstance(b)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := in.lazyJSON(body, false); !ok {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if !json.Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
}

// BenchmarkFreshRuntimeFloor is the least a fresh runtime per call could cost (the other
// way to isolate calls than freezing, see harden.go): a bare goja runtime, the module
// loaded and handle called, with no allow-listed globals, library or limits. Compare
// BenchmarkCallPooled/pool-body, the same call on a pooled, frozen runtime.
func BenchmarkFreshRuntimeFloor(b *testing.B) {
	s := mustCompile(b, benchHandle)
	b.ReportAllocs()
	for b.Loop() {
		vm := goja.New()
		v, err := vm.RunProgram(s.program)
		if err != nil {
			b.Fatal(err)
		}
		wrapper, _ := goja.AssertFunction(v)
		exports, err := wrapper(goja.Undefined(), vm.ToValue(func(goja.FunctionCall) goja.Value { return nil }))
		if err != nil {
			b.Fatal(err)
		}
		handle, _ := goja.AssertFunction(exports.ToObject(vm).Get("default"))
		arg := vm.NewObject()
		if err := arg.Set("data", vm.ToValue(map[string]any{"from_user_id": "u1"})); err != nil {
			b.Fatal(err)
		}
		if _, err := handle(goja.Undefined(), arg); err != nil {
			b.Fatal(err)
		}
	}
}
