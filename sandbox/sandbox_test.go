package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite the want files of testdata/sandbox/calls")

const testName = "connectors/x/global-webhooks/w/handle.js"

func mustCompile(tb testing.TB, src string) *Script {
	tb.Helper()
	s, err := Compile(testName, []byte(src))
	if err != nil {
		tb.Fatalf("compiling: %v", err)
	}
	return s
}

// callOnPool runs src once on a new pool with cfg.
func callOnPool(tb testing.TB, src string, cfg Config, arg any) (any, error) {
	tb.Helper()
	return NewPool(mustCompile(tb, src), cfg).Call(tb.Context(), arg, Env{})
}

func asScriptError(tb testing.TB, err error) *ScriptError {
	tb.Helper()
	var se *ScriptError
	if !errors.As(err, &se) {
		tb.Fatalf("error = %v (%T), want a *ScriptError", err, err)
	}
	return se
}

func TestCompile(t *testing.T) {
	tests := []struct {
		name string
		src  string
	}{
		{"async default", "export default async function handle({ data }) { return data }"},
		{"sync default", "export default function handle({ data }) { return data }"},
		{"anonymous default", "export default function () { return 1 }"},
		{"arrow default", "export default async () => 1"},
		{"export const and helpers", "export const kind = 'x'\nfunction helper(a) { return a?.b ?? kind }\nexport default function handle(a) { return helper(a) }"},
		{"default crypto import", "import crypto from 'crypto'\nexport default () => typeof crypto.createHmac"},
		{"node:crypto named import", "import { createHash } from 'node:crypto'\nexport default () => createHash('sha256').update('x').digest('hex')"},
		{"buffer import", "import { Buffer } from 'buffer'\nexport default () => Buffer.from('x').toString('hex')"},
		{"node:buffer namespace import", "import * as b from 'node:buffer'\nexport default () => typeof b.Buffer"},
		{"dynamic allowed import", "export default async () => (await import('node:crypto')).randomUUID().length"},
		{"class syntax", "class A { #x = 1; static y = 2; get x() { return this.#x } }\nexport default () => new A().x + A.y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile(testName, []byte(tt.src))
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if s.Name() != testName {
				t.Errorf("Name() = %q, want %q", s.Name(), testName)
			}
		})
	}
}

func TestCompileProblems(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		wantLine int
		want     string // in the problem's message
	}{
		{"relative import", "export const a = 1\nimport x from './other.js'\nexport default () => x", 2, `import "./other.js" is not allowed`},
		{"package import", "\n\nimport _ from 'lodash'\nexport default () => _", 3, `import "lodash" is not allowed`},
		{"node:fs import", "import fs from 'node:fs'\nexport default () => fs", 1, `import "node:fs" is not allowed`},
		{"require of a file", "const x = require('./x')\nexport default () => x", 1, `require("./x") is not available in an ES module: use import`},
		{"require of a package", "export default () => {\n  return require('fs')\n}", 2, `require("fs") is not available`},
		{"dynamic import", "export default async () => {\n  return import('http')\n}", 2, `import "http" is not allowed`},
		{"syntax error", "export default function handle() {\n  const x = {\n  return x\n}", 3, `Expected ":" but found "x"`},
		{"top-level await", "const x = 1\nawait x\nexport default () => x", 2, "Top-level await"},
		{"no default export", "export const a = 1", 0, "no default export"},
		{"default not a function", "export default { handle() {} }", 0, "default export is not a function"},
		{"top-level throw", "const a = 1\n\nthrow new Error('broken at load')\nexport default () => a", 3, "evaluating module: exception: Error: broken at load"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(testName, []byte(tt.src))
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile error = %v, want a *CompileError", err)
			}
			p := ce.Problems[0]
			if p.File != testName || p.Line != tt.wantLine || !strings.Contains(p.Message, tt.want) {
				t.Errorf("problem = %s (line %d), want %s:%d: ...%s...", p, p.Line, testName, tt.wantLine, tt.want)
			}
			if tt.wantLine > 0 && !strings.HasPrefix(err.Error(), p.File+":"+strconv.Itoa(tt.wantLine)+": ") {
				t.Errorf("Error() = %q, want it to start with file:line", err)
			}
		})
	}
}

func TestCompileReportsEveryProblem(t *testing.T) {
	_, err := Compile(testName, []byte("import a from 'a'\nimport b from './b'\nexport default () => a + b"))
	var ce *CompileError
	if !errors.As(err, &ce) || len(ce.Problems) != 2 {
		t.Fatalf("Compile error = %v, want two problems", err)
	}
	if ce.Problems[0].Line != 1 || ce.Problems[1].Line != 2 {
		t.Errorf("problems at lines %d and %d, want 1 and 2", ce.Problems[0].Line, ce.Problems[1].Line)
	}
}

// TestCalls runs the cases in testdata/sandbox/calls: handle.js called with arg.json (or
// {}), compared with want.json (the result) or want.err (the error's text).
func TestCalls(t *testing.T) {
	files, err := filepath.Glob("../testdata/sandbox/calls/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sections := map[string][]byte{}
			for _, f := range ar.Files {
				sections[f.Name] = f.Data
			}
			var arg any = map[string]any{}
			if a, ok := sections["arg.json"]; ok {
				if err := json.Unmarshal(a, &arg); err != nil {
					t.Fatalf("arg.json: %v", err)
				}
			}
			result, err := callOnPool(t, string(sections["handle.js"]), Config{}, arg)
			var got []byte
			wantName := "want.json"
			if err != nil {
				wantName, got = "want.err", []byte(err.Error()+"\n")
			} else {
				b, merr := json.MarshalIndent(result, "", "  ")
				if merr != nil {
					t.Fatalf("marshalling result: %v", merr)
				}
				got = append(b, '\n')
			}
			if *update {
				for i := range ar.Files {
					if strings.HasPrefix(ar.Files[i].Name, "want.") {
						ar.Files[i] = txtar.File{Name: wantName, Data: got}
					}
				}
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, ok := sections[wantName]
			if !ok {
				t.Fatalf("got %s:\n%s\nbut the case has no %s", wantName, got, wantName)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: got\n%s\nwant\n%s", wantName, got, want)
			}
		})
	}
}

// TestArgumentRoundTrip: what goes in comes back out byte for byte, through native JS values.
func TestArgumentRoundTrip(t *testing.T) {
	const body = `{"array":[1,-2.5,1e+21,0.1,"x",null,true,false,[],{}],"empty":"","nested":{"a":{"b":{"c":[{"d":"deep"}]}}},"null":null,"number":9007199254740991,"unicode":"héllo wörld — 日本語 🎉 \u2028","zero":0}`
	var data any
	if err := json.Unmarshal([]byte(body), &data); err != nil {
		t.Fatal(err)
	}
	src := `export default function handle({ data, raw, headers, list, n }) {
  if (!Array.isArray(data.array) || Object.getPrototypeOf(data) !== Object.prototype) throw new Error('not native')
  return { data, raw, headers, list, n }
}`
	arg := map[string]any{
		"data":    data,
		"raw":     json.RawMessage(body),
		"headers": map[string]string{"content-type": "application/json", "x-émoji": "✓"},
		"list":    []string{"a", "b"},
		"n":       int64(42),
	}
	for _, name := range []string{"pooled", "fresh"} {
		t.Run(name, func(t *testing.T) {
			s := mustCompile(t, src)
			var result any
			var err error
			if name == "pooled" {
				result, err = NewPool(s, Config{}).Call(t.Context(), arg, Env{})
			} else {
				result, err = s.CallOnce(t.Context(), Config{}, arg, Env{})
			}
			if err != nil {
				t.Fatal(err)
			}
			m := result.(map[string]any)
			for _, k := range []string{"data", "raw"} {
				got, err := json.Marshal(m[k])
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != body {
					t.Errorf("%s came back as\n%s\nwant\n%s", k, got, body)
				}
			}
			want := map[string]any{
				"content-type": "application/json", "x-émoji": "✓",
			}
			if !reflect.DeepEqual(m["headers"], want) {
				t.Errorf("headers = %#v", m["headers"])
			}
			if !reflect.DeepEqual(m["list"], []any{"a", "b"}) || m["n"] != 42.0 {
				t.Errorf("list = %#v, n = %#v", m["list"], m["n"])
			}
		})
	}
}

func TestArgumentKeyOrder(t *testing.T) {
	src := "export default ({ data, map }) => [Object.keys(data).join(), Object.keys(map).join(), data.__proto__, Object.getPrototypeOf(data) === Object.prototype]"
	arg := map[string]any{
		"data": json.RawMessage(`{"z":1,"a":2,"m":3,"__proto__":"own"}`),
		"map":  map[string]any{"z": 1, "a": 2, "m": 3},
	}
	got, err := callOnPool(t, src, Config{}, arg)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"z,a,m,__proto__", "a,m,z", "own", true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

func TestArgumentUnsupported(t *testing.T) {
	_, err := callOnPool(t, "export default () => 1", Config{}, map[string]any{"c": make(chan int)})
	if err == nil || !strings.Contains(err.Error(), "converting argument: unsupported type chan int") {
		t.Errorf("error = %v, want an unsupported type", err)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name       string
		src        string
		wantLine   int
		wantReason string
		wantMsg    string
		wantValue  any
	}{
		{
			name:       "sync throw",
			src:        "export default function handle() {\n  const a = 1\n  throw new Error('boom')\n}",
			wantLine:   3,
			wantReason: ReasonException,
			wantMsg:    "Error: boom",
			wantValue:  map[string]any{"name": "Error", "message": "boom"},
		},
		{
			name: "throw after modern syntax",
			src: `class Signer {
  #secret = 's'
  static of = (x) => new Signer()
  sign(data) { return data?.id ?? this.#secret }
}
const pick = ({ a, ...rest }) => ({ ...rest, a: a ?? 0 })
export default async function handle({ data }) {
  let x = data?.missing?.deep ?? 1_000
  x ||= 2
  const s = Signer.of()
  for await (const v of (async function* () { yield 1 })()) x += v
  await null
  throw new TypeError(` + "`bad ${s.sign(pick(data))}`" + `)
}`,
			wantLine:   13,
			wantReason: ReasonException,
			wantMsg:    "TypeError: bad s",
			wantValue:  map[string]any{"name": "TypeError", "message": "bad s"},
		},
		{
			name:       "rejection",
			src:        "export default function handle() {\n  return Promise.reject(new RangeError('nope'))\n}",
			wantLine:   2,
			wantReason: ReasonException,
			wantMsg:    "RangeError: nope",
			wantValue:  map[string]any{"name": "RangeError", "message": "nope"},
		},
		{
			name:       "error with properties",
			src:        "export default async function handle() {\n  await null\n\n  throw Object.assign(new Error('api'), { status: 404, data: { error: 'missing' } })\n}",
			wantLine:   4,
			wantReason: ReasonException,
			wantMsg:    "Error: api",
			wantValue:  map[string]any{"name": "Error", "message": "api", "status": 404.0, "data": map[string]any{"error": "missing"}},
		},
		{
			name:       "thrown object",
			src:        "export default function handle() {\n  throw { code: 'E_BAD' }\n}",
			wantLine:   2,
			wantReason: ReasonException,
			wantMsg:    `{"code":"E_BAD"}`,
			wantValue:  map[string]any{"code": "E_BAD"},
		},
		{
			name:       "type error from the runtime",
			src:        "export default function handle(a) {\n  return a.missing.field\n}",
			wantLine:   2,
			wantReason: ReasonException,
			wantMsg:    "TypeError: Cannot read property 'field' of undefined",
			wantValue:  map[string]any{"name": "TypeError", "message": "Cannot read property 'field' of undefined"},
		},
		{
			name:       "never settles",
			src:        "export default async function handle() {\n  await new Promise(() => {})\n}",
			wantReason: ReasonUnsettled,
			wantMsg:    "can never settle",
		},
		{
			name:       "cyclic result",
			src:        "export default function handle() {\n  const o = {}\n  o.self = o\n  return o\n}",
			wantReason: ReasonInvalidResult,
			wantMsg:    "cycle",
		},
		{
			name:       "throwing getter in the result",
			src:        "export default function handle() {\n  return { get x() {\n    throw new Error('getter') } }\n}",
			wantLine:   3,
			wantReason: ReasonException,
			wantMsg:    "Error: getter",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := callOnPool(t, tt.src, Config{}, map[string]any{"data": map[string]any{"id": nil}})
			se := asScriptError(t, err)
			if se.Script != testName || se.File != testName || se.Line != tt.wantLine || se.Reason != tt.wantReason || !strings.Contains(se.Message, tt.wantMsg) {
				t.Errorf("got %s:%d reason %q message %q, want line %d reason %q message %q\nstack:\n%s",
					se.File, se.Line, se.Reason, se.Message, tt.wantLine, tt.wantReason, tt.wantMsg, se.Stack)
			}
			if tt.wantValue != nil && !reflect.DeepEqual(se.Value, tt.wantValue) {
				t.Errorf("Value = %#v, want %#v", se.Value, tt.wantValue)
			}
			if tt.wantLine > 0 {
				prefix := testName + ":" + strconv.Itoa(tt.wantLine) + ": " + tt.wantReason + ": "
				if !strings.HasPrefix(se.Error(), prefix) {
					t.Errorf("Error() = %q, want prefix %q", se.Error(), prefix)
				}
				if loc := testName + ":" + strconv.Itoa(tt.wantLine) + ":"; !strings.Contains(se.Stack, loc) || strings.Contains(se.Stack, "(0)") {
					t.Errorf("Stack does not name %s cleanly:\n%s", loc, se.Stack)
				}
			}
		})
	}
}

func TestErrorColumn(t *testing.T) {
	_, err := callOnPool(t, "export default function handle(a) {\n  return a.b.c\n}", Config{}, map[string]any{})
	se := asScriptError(t, err)
	if se.Line != 2 || se.Column != 14 {
		t.Errorf("position %d:%d, want 2:14 (the .c of a.b.c)", se.Line, se.Column)
	}
	if !strings.Contains(se.Stack, "at handle ("+testName+":2:14)") {
		t.Errorf("Stack:\n%s", se.Stack)
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name       string
		src        string
		wantReason string
		wantLine   int // 0: any
	}{
		{"infinite loop", "export default function handle() {\n  let i = 0\n  while (true) { i++ }\n}", ReasonTimeout, 3},
		{"async infinite loop", "export default async function handle() {\n  await null\n  let i = 0\n  for (;;) { i++ }\n}", ReasonTimeout, 4},
		{"promise loop", "export default async function handle() {\n  for (;;) { await null }\n}", ReasonTimeout, 0},
		{"runaway recursion", "function down(n) {\n  return down(n + 1) + 1\n}\nexport default function handle() {\n  return down(0)\n}", ReasonStackOverflow, 2},
		{"async runaway recursion", "async function down(n) {\n  return 1 + await down(n + 1)\n}\nexport default async function handle() {\n  await null\n  return down(0)\n}", ReasonStackOverflow, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Limits: Limits{Timeout: 100 * time.Millisecond, MaxCallStackSize: 200}}
			start := time.Now()
			_, err := callOnPool(t, tt.src, cfg, map[string]any{})
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("call took %v", d)
			}
			se := asScriptError(t, err)
			if se.Reason != tt.wantReason || tt.wantLine != 0 && se.Line != tt.wantLine {
				t.Errorf("got %v (reason %q, line %d), want reason %q line %d", se, se.Reason, se.Line, tt.wantReason, tt.wantLine)
			}
			if tt.wantReason == ReasonTimeout && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("errors.Is(err, context.DeadlineExceeded) = false for %v", err)
			}
		})
	}
}

func TestCallerCancellation(t *testing.T) {
	s := mustCompile(t, "export default function handle() { for (;;) {} }")
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := NewPool(s, Config{}).Call(ctx, map[string]any{}, Env{})
	se := asScriptError(t, err)
	if se.Reason != ReasonCanceled || !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want reason canceled", err)
	}
}

// TestPoolAfterInterrupt: a pool keeps working normally after one of its calls timed out
// or overflowed, and a runtime that finished cleanly is reused with its module state.
func TestPoolAfterInterrupt(t *testing.T) {
	s := mustCompile(t, `let calls = 0
function down(n) { return down(n + 1) }
export default async function handle({ mode }) {
  calls++
  if (mode === 'loop') for (;;) {}
  if (mode === 'recurse') down(0)
  await null
  let sum = 0
  for (let i = 0; i < 1000; i++) sum += i
  return { calls, sum }
}`)
	p := NewPool(s, Config{Size: 1, Limits: Limits{Timeout: 100 * time.Millisecond}})
	call := func(mode string) (any, error) {
		return p.Call(t.Context(), map[string]any{"mode": mode}, Env{})
	}
	if got, err := call("ok"); err != nil || !reflect.DeepEqual(got, map[string]any{"calls": 1.0, "sum": 499500.0}) {
		t.Fatalf("first call = %v, %v", got, err)
	}
	if got, err := call("ok"); err != nil || !reflect.DeepEqual(got, map[string]any{"calls": 2.0, "sum": 499500.0}) {
		t.Fatalf("second call = %v, %v (the runtime should have been reused)", got, err)
	}
	for _, mode := range []string{"loop", "recurse"} {
		if _, err := call(mode); err == nil {
			t.Fatalf("%s: no error", mode)
		}
		// The interrupted runtime was dropped: the next call gets a fresh one, which works.
		got, err := call("ok")
		if err != nil || !reflect.DeepEqual(got, map[string]any{"calls": 1.0, "sum": 499500.0}) {
			t.Fatalf("after %s: call = %v, %v, want a fresh, working runtime", mode, got, err)
		}
	}
}

func TestPoolConcurrent(t *testing.T) {
	p := NewPool(mustCompile(t, "export default async ({ n }) => { await null; return n * 2 }"), Config{Size: 2})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 20 {
				n := i*100 + j
				got, err := p.Call(t.Context(), map[string]any{"n": n}, Env{})
				if err != nil || got != float64(2*n) {
					t.Errorf("call(%d) = %v, %v", n, got, err)
				}
			}
		})
	}
	wg.Wait()
}

func TestGlobals(t *testing.T) {
	src := `export default function handle() {
  return {
    hidden: [typeof require, typeof process, typeof module, typeof exports, typeof global, typeof GoError],
    present: [typeof console, typeof JSON, typeof Math, typeof Date, typeof globalThis],
    strict: (function () { return this === undefined })(),
  }
}`
	got, err := callOnPool(t, src, Config{}, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"hidden":  []any{"undefined", "undefined", "undefined", "undefined", "undefined", "undefined"},
		"present": []any{"object", "object", "object", "function", "object"},
		"strict":  true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

// recordHandler keeps what it is given; attrs from With come first, as slog would render them.
type recordHandler struct {
	mu      *sync.Mutex
	records *[]string
	attrs   []slog.Attr
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	h.mu.Lock()
	*h.records = append(*h.records, b.String())
	h.mu.Unlock()
	return nil
}

func (h recordHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return h
}

func (h recordHandler) WithGroup(string) slog.Handler { return h }

func TestConsole(t *testing.T) {
	var records []string
	logger := slog.New(recordHandler{mu: &sync.Mutex{}, records: &records}).With("connector", "x")
	src := `export default function handle({ data }) {
  console.log('plain', 1, true, null, undefined)
  console.info('object', { a: [1, 'two'], d: data })
  console.warn('warned')
  console.error(new Error('bad thing'))
  console.debug('fn', handle)
}`
	if _, err := callOnPool(t, src, Config{Logger: logger}, map[string]any{"data": map[string]any{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	script := " script=" + testName
	want := []string{
		"INFO plain 1 true null undefined connector=x" + script,
		`INFO object {"a":[1,"two"],"d":{"k":"v"}} connector=x` + script,
		"WARN warned connector=x" + script,
		"ERROR Error: bad thing connector=x" + script,
		"DEBUG fn [Function: handle] connector=x" + script,
	}
	if !reflect.DeepEqual(records, want) {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(records, "\n"), strings.Join(want, "\n"))
	}
}

// TestOddScriptName: positions come back under the name given to Compile even when it is
// not a clean URL path (goja resolves source map names as URLs).
func TestOddScriptName(t *testing.T) {
	for _, name := range []string{"handle.js", "/abs/dir/handle.js", "connectors/my connector/100%/handle.js", "./rel/../handle.js"} {
		t.Run(name, func(t *testing.T) {
			s, err := Compile(name, []byte("export default async function handle() {\n  await null\n  throw new Error('x')\n}"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.CallOnce(t.Context(), Config{}, nil, Env{})
			se := asScriptError(t, err)
			if se.File != name || se.Line != 3 || !strings.Contains(se.Stack, name+":3:") {
				t.Errorf("got %s:%d, want %s:3; stack:\n%s", se.File, se.Line, name, se.Stack)
			}
		})
	}
}

// Compile evaluates modules on reused runtimes: what one module's top-level code tries to
// leave behind, the next one does not see, and a module that fails does not break the
// next.
func TestCompileLeavesNothingForTheNextModule(t *testing.T) {
	for i := range 3 {
		if _, err := Compile(testName, []byte(`
			try { Object.prototype.polluted = 1 } catch {}
			try { globalThis.leaked = 1 } catch {}
			try { JSON.parse = () => 'replaced' } catch {}
			try { Math.random = () => 4 } catch {}
			export default () => 1`)); err != nil {
			t.Fatalf("round %d: compiling the polluter: %v", i, err)
		}
		if _, err := Compile(testName, []byte(`throw new Error('broken at load')`)); err == nil {
			t.Fatalf("round %d: a module that throws at load compiled", i)
		}
		if _, err := Compile(testName, []byte(`
			if (({}).polluted !== undefined) throw new Error('Object.prototype changed')
			if (typeof leaked !== 'undefined') throw new Error('a global leaked')
			if (JSON.parse('1') !== 1) throw new Error('JSON.parse replaced')
			if (Math.random() === 4) throw new Error('Math.random replaced')
			export default () => 1`)); err != nil {
			t.Fatalf("round %d: the next module saw the first one's changes: %v", i, err)
		}
	}
}

// A json.RawMessage argument becomes the values encoding/json makes of it, and text that
// is not JSON fails the call.
func TestArgumentRawJSON(t *testing.T) {
	valid := []string{
		`{"a":1,"b":[true,false,null],"c":{"d":"e"}}`,
		" \r\n\t[ 1 , -0 , 0.5 , -1.25e-3 , 6E2 , 1e400 , 12345678901234567890 ] \n",
		`"plain"`, `"h\u00e9 \ud83d\ude00 \" \\ \/ \b\f\n\r\t"`, "\"caf\xc3\xa9 \xe2\x9c\x93\"",
		"\"bad utf-8 \xff\xfe\"", `"lone \ud800 surrogate"`, `{}`, `[]`, `[[[]]]`, `{"":{"":""}}`,
		`{"dup":1,"dup":2}`, `0`, `null`, `true`,
	}
	// A copy made in JavaScript: data itself, unchanged, would be exported as its JSON.
	const copyData = `const copy = v => Array.isArray(v) ? v.map(copy) :
		v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, e]) => [k, copy(e)])) : v
		export default ({ data }) => [copy(data)]`
	for _, doc := range valid {
		got, err := callOnPool(t, copyData, Config{}, map[string]any{"data": json.RawMessage(doc)})
		if err != nil {
			t.Errorf("%q: %v", doc, err)
			continue
		}
		var want any
		if err := json.Unmarshal([]byte(doc), &want); err != nil {
			want = math.Inf(1) // 1e400: JSON.parse makes it Infinity, which a result turns into null
		}
		if doc == " \r\n\t[ 1 , -0 , 0.5 , -1.25e-3 , 6E2 , 1e400 , 12345678901234567890 ] \n" {
			want = []any{1.0, 0.0, 0.5, -1.25e-3, 600.0, nil, 12345678901234567890.0}
		}
		if !reflect.DeepEqual(got, []any{want}) {
			t.Errorf("%q: got %#v, want %#v", doc, got, []any{want})
		}
		// JSONOrText, which the ingest path passes, converts the same.
		checked, err := callOnPool(t, copyData, Config{}, map[string]any{"data": JSONOrText(doc)})
		if err != nil || !reflect.DeepEqual(checked, got) {
			t.Errorf("%q as JSONOrText: %#v, %v; want %#v", doc, checked, err, got)
		}
	}
	invalid := []string{``, ` `, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`, `01`, `1.`, `.5`, `-`, `1e`,
		`tru`, `nul`, `"open`, "\"ctl \x01\"", `{a:1}`, `1 2`, `[1]]`, `"\`}
	for _, doc := range invalid {
		if _, err := callOnPool(t, "export default ({ data }) => data", Config{}, map[string]any{"data": json.RawMessage(doc)}); err == nil {
			t.Errorf("%q: no error", doc)
		}
	}
}

// An object made of the argument's JSON and returned unchanged inside the result is
// exported as that JSON, byte for byte (so a payload is published as received); changed in
// any way that shows in JSON, it is exported as values.
func TestResultReusesUnchangedJSON(t *testing.T) {
	const body = "{\"b\": 1, \"a\": {\"n\": 12345678901234567890, \"s\": \"h\\u00e9\"}, \"list\": [1, {\"x\": null}], \"t\": true}\n"
	tests := []struct {
		name, change string
		raw          bool
	}{
		{"unchanged", ``, true},
		{"read only", `if (data.a.n < 1 || data.list.length !== 2) throw new Error('wrong values')`, true},
		{"same value assigned", `data.b = 1`, false},
		{"key added", `data.c = 1`, false},
		{"key deleted", `delete data.t`, false},
		{"key re-added at the end", `const b = data.b; delete data.b; data.b = b`, false},
		{"nested value", `data.a.s = 'other'`, false},
		{"array pushed", `data.list.push(2)`, false},
		{"array element", `data.list[0] = 2`, false},
		{"array emptied", `data.list.length = 0`, false},
		{"number to string", `data.b = '1'`, false},
		{"toJSON", `Object.defineProperty(data, 'toJSON', { value: () => 'x' })`, false},
		{"prototype with toJSON", `Object.setPrototypeOf(data, { toJSON: () => 'x' })`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "export default ({ data }) => { " + tt.change + "; return { events: [{ payload: data }] } }"
			got, err := callOnPool(t, src, Config{}, map[string]any{"data": json.RawMessage(body)})
			if err != nil {
				t.Fatal(err)
			}
			payload := got.(map[string]any)["events"].([]any)[0].(map[string]any)["payload"]
			raw, isRaw := payload.(json.RawMessage)
			if isRaw != tt.raw {
				t.Fatalf("payload %#v: raw %v, want %v", payload, isRaw, tt.raw)
			}
			if isRaw && string(raw) != strings.TrimSpace(body) {
				t.Fatalf("raw payload %q, want the body %q", raw, body)
			}
		})
	}
	// An unchanged part of a changed argument is reused; JSON with a repeated key, which
	// says more than its value, is not; nor is an argument returned as the whole result.
	got, err := callOnPool(t, "export default ({ data }) => { data.b = 2; return [data] }", Config{}, map[string]any{"data": json.RawMessage(body)})
	if err != nil {
		t.Fatal(err)
	}
	m := got.([]any)[0].(map[string]any)
	if a, ok := m["a"].(json.RawMessage); !ok || string(a) != `{"n": 12345678901234567890, "s": "h\u00e9"}` || m["b"] != 2.0 {
		t.Errorf("changed data exported as %#v", m)
	}
	got, err = callOnPool(t, "export default ({ data }) => [data]", Config{}, map[string]any{"data": json.RawMessage(`{"a":1,"a":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []any{map[string]any{"a": 2.0}}) {
		t.Errorf("repeated key: %#v, want the last value", got)
	}
	got, err = callOnPool(t, "export default ({ data }) => data", Config{}, map[string]any{"data": json.RawMessage(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.(map[string]any); !ok {
		t.Errorf("a result that is the argument itself: %#v, want a map", got)
	}
}
