package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dop251/goja"
)

// abuseHandle runs the case's body when called with {mode: "abuse"}; any other call is the
// follow-up, a normal call that must succeed on the same pool and see built-ins, library
// and global scope exactly as a fresh runtime has them.
const abuseHandle = `export default async function handle(arg) {
  const { apiClient } = arg
  if (arg.mode === 'abuse') {
%s
  }
  return probe()
}

function probe() {
  const hmac = crypto.createHmac('sha256', 'k').update('x').digest('hex')
  return {
    proto: ({}).polluted === undefined && Object.getPrototypeOf(Object.prototype) === null,
    array: [1, 2].map((x) => x * 2).join(),
    json: JSON.parse('{"a":1}').a,
    globals: Object.getOwnPropertyNames(globalThis).length,
    string: 'ab'.repeat(2) + 'x'.padStart(3, '-'),
    buffer: Buffer.from('x').toString('hex'),
    hmac: hmac.length,
    map: new Map([[1, 2]]).get(1),
    math: Math.max(1, 2),
    date: new Date(0).toISOString(),
    bytes: new Uint8Array([1, 2, 3]).length,
  }
}
`

var wantProbe = map[string]any{
	"proto":   true,
	"array":   "2,4",
	"json":    1.0,
	"globals": float64(len(allowedGlobals)),
	"string":  "abab--x",
	"buffer":  "78",
	"hmac":    64.0,
	"map":     2.0,
	"math":    2.0,
	"date":    "1970-01-01T00:00:00.000Z",
	"bytes":   3.0,
}

// TestAbuse: hostile and buggy scripts fail their own call, with the reason and message
// given, and the pool they ran on keeps serving normal calls untouched by them.
func TestAbuse(t *testing.T) {
	var stolen atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) }))
	t.Cleanup(thief.Close)
	srv := apiServer(t, thief.URL)
	base, _ := url.Parse(srv.URL + "/api/")
	api := &API{
		BaseURL: base,
		Header:  http.Header{"Authorization": {"Bearer tok"}},
		Query:   url.Values{"api_key": {"k1"}},
		Client:  srv.Client(),
	}
	guarded := *api
	guarded.Client = publicOnlyClient()

	tests := []struct {
		name       string
		body       string
		api        *API
		wantReason string // "": the abusive call succeeds
		orReason   string // another acceptable reason (which limit is hit first depends on speed)
		wantMsg    string // in the error's message, or in the result's JSON
	}{
		// Pollution: built-ins, library and global scope are frozen.
		{name: "Object.prototype property", body: "Object.prototype.polluted = 1", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "Object.prototype defineProperty", body: "Object.defineProperty(Object.prototype, 'polluted', { value: 1 })", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "__proto__ merge", body: "const o = JSON.parse('{\"__proto__\": {\"polluted\": 1}}')\nObject.assign(({}).__proto__, o.__proto__)", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "Object.prototype setPrototypeOf", body: "Object.setPrototypeOf(Object.prototype, { polluted: 1 })", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "Array.prototype.map", body: "Array.prototype.map = () => []", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "JSON.parse", body: "JSON.parse = () => ({})", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "String.prototype.repeat", body: "String.prototype.repeat = () => ''", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "Function.prototype.call", body: "Function.prototype.call = () => 1", wantReason: ReasonException, wantMsg: "Cannot assign to read only property 'call'"},
		{name: "Promise.prototype.then", body: "Promise.prototype.then = () => 1", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "array iterator", body: "Object.getPrototypeOf([][Symbol.iterator]()).next = () => ({ done: true })", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "generator prototype", body: "Object.getPrototypeOf(Object.getPrototypeOf((function* () {})())).next = () => 1", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "Map.prototype.get", body: "Map.prototype.get = () => 0", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "map iterator", body: "Object.getPrototypeOf(new Map().entries()).next = () => 0", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "ArrayBuffer through a typed array", body: "Object.getPrototypeOf(new Uint8Array(1).buffer).slice = () => 0", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "Math.max", body: "Math.max = () => 0", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "Date.prototype", body: "Date.prototype.toISOString = () => ''", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "crypto.createHmac", body: "crypto.createHmac = () => 0", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "Buffer.prototype.toString", body: "Buffer.prototype.toString = () => ''", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "imported crypto", body: "const c = await import('node:crypto')\nc.default.createHmac = () => 0", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "replace a global", body: "globalThis.JSON = {}", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "add a global", body: "globalThis.leak = 1", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "delete a global", body: "delete globalThis.Math", wantReason: ReasonException, wantMsg: "TypeError"},
		{name: "a function's own property", body: "parseInt.leak = 1", wantReason: ReasonException, wantMsg: "TypeError"},
		{
			name:    "overriding inherited methods on own objects still works",
			body:    "class E extends Error { constructor(m) { super(m); this.name = 'E' } }\nconst o = {}\no.toString = () => 'o'\nconst e = new E('m')\ne.message = 'changed'\nreturn { s: String(o), e: String(e), own: Object.keys(o) }",
			wantMsg: `{"e":"E: changed","own":["toString"],"s":"o"}`,
		},

		// Reaching out: nothing host-side is reachable.
		{
			name:    "constructor.constructor and Function",
			body:    "const g = ({}).constructor.constructor('return this')()\nreturn [g === globalThis, Function('return this')() === globalThis, (0, eval)('this') === globalThis, typeof g.process, typeof g.require]",
			wantMsg: `[true,true,true,"undefined","undefined"]`,
		},
		{name: "process through Function", body: "return Function('return process')()", wantReason: ReasonException, wantMsg: "ReferenceError: process is not defined"},
		{name: "dynamic import of a computed name", body: "const name = 'f' + 's'\nawait import(name)", wantReason: ReasonException, wantMsg: "fs"},
		{name: "import function with another name", body: "return __switchboard_import('fs')", wantReason: ReasonException, wantMsg: `module "fs" is not available`},

		// Time and depth.
		{name: "infinite loop", body: "for (;;) {}", wantReason: ReasonTimeout},
		{name: "microtask loop", body: "for (;;) await null", wantReason: ReasonTimeout},
		{name: "promise chain loop", body: "const spin = () => Promise.resolve().then(spin)\nawait spin()", wantReason: ReasonTimeout, orReason: ReasonMemoryLimit},
		{name: "recursion", body: "const down = (n) => down(n + 1) + 1\ndown(0)", wantReason: ReasonStackOverflow},
		{name: "promise never settled", body: "await new Promise(() => {})", wantReason: ReasonUnsettled},

		// Memory.
		{name: "repeat", body: "'x'.repeat(1e9)", wantReason: ReasonMemoryLimit, wantMsg: "String.prototype.repeat would allocate 1.9 GiB, over the 16 MiB limit"},
		{name: "repeat caught", body: "try { 'x'.repeat(1e9) } catch (e) { return 'caught' }", wantReason: ReasonMemoryLimit, wantMsg: "String.prototype.repeat"},
		{name: "padEnd", body: "'x'.padEnd(1e9)", wantReason: ReasonMemoryLimit, wantMsg: "String.prototype.padEnd"},
		{name: "padStart", body: "'x'.padStart(1e9, 'ab')", wantReason: ReasonMemoryLimit, wantMsg: "String.prototype.padStart"},
		{name: "Array fill", body: "new Array(1e8).fill(0)", wantReason: ReasonMemoryLimit, wantMsg: "Array.prototype.fill would allocate 1.5 GiB"},
		{name: "Array.from length", body: "Array.from({ length: 1e8 })", wantReason: ReasonMemoryLimit, wantMsg: "Array.from"},
		{name: "join of a sparse array", body: "const a = []\na.length = 1e9\na.join('--')", wantReason: ReasonMemoryLimit, wantMsg: "Array.prototype.join"},
		{name: "Uint8Array", body: "new Uint8Array(2e9)", wantReason: ReasonMemoryLimit, wantMsg: "new Uint8Array would allocate 1.9 GiB"},
		{name: "Float64Array through constructor", body: "new (new Uint8Array(1).constructor)(2e9)", wantReason: ReasonMemoryLimit, wantMsg: "new Uint8Array"},
		{name: "ArrayBuffer", body: "new ArrayBuffer(2e9)", wantReason: ReasonMemoryLimit, wantMsg: "new ArrayBuffer"},
		{name: "Buffer.alloc", body: "Buffer.alloc(2e9)", wantReason: ReasonMemoryLimit, wantMsg: "Buffer.alloc"},
		{name: "Buffer.allocUnsafe", body: "Buffer.allocUnsafe(2e9)", wantReason: ReasonMemoryLimit, wantMsg: "Buffer.alloc"},
		{name: "Buffer.from array-like", body: "Buffer.from({ length: 2e9 })", wantReason: ReasonMemoryLimit, wantMsg: "Buffer.from"},
		{name: "Buffer.concat totalLength", body: "Buffer.concat([Buffer.from('x')], 2e9)", wantReason: ReasonMemoryLimit, wantMsg: "Buffer.concat"},
		{name: "doubling a string", body: "let s = 'x'\nfor (;;) s += s", wantReason: ReasonMemoryLimit, wantMsg: "over the 16 MiB limit"},
		{name: "growing an array", body: "const a = []\nfor (let i = 0; ; i++) a.push({ i, s: 'item ' + i })", wantReason: ReasonMemoryLimit, wantMsg: "the heap grew by"},
		{name: "stringify a huge structure", body: "const a = []\nfor (let i = 0; i < 1e8; i++) a.push([i, i, i])\nreturn JSON.stringify(a).length", wantReason: ReasonMemoryLimit},
		{name: "stringify repeated strings", body: "const s = 'x'.repeat(1 << 20)\nreturn JSON.stringify(new Array(1000).fill(s)).length", wantReason: ReasonMemoryLimit, wantMsg: "JSON.stringify would allocate more than the 16 MiB limit"},
		{name: "stringify with replacers", body: "const o = { a: 1, b: [1, { a: 2, c: 3 }], c: 'x' }\nreturn [JSON.stringify(o, ['a', 'b']), JSON.stringify(o, (k, v) => typeof v === 'number' ? v * 10 : v), JSON.stringify([1], null, 2)]", wantMsg: `["{\"a\":1,\"b\":[1,{\"a\":2}]}","{\"a\":10,\"b\":[10,{\"a\":20,\"c\":30}],\"c\":\"x\"}","[\n  1\n]"]`},

		// Results and throws.
		{name: "huge result", body: "return 'x'.repeat(2 << 20)", wantReason: ReasonResultTooLarge, wantMsg: "larger than the 1 MiB limit"},
		{name: "sparse result", body: "const a = []\na.length = 2e9\nreturn a", wantReason: ReasonResultTooLarge},
		{name: "throw a number", body: "throw 42", wantReason: ReasonException, wantMsg: "42"},
		{name: "throw null", body: "throw null", wantReason: ReasonException, wantMsg: "null"},
		{name: "throw undefined", body: "throw undefined", wantReason: ReasonException, wantMsg: "undefined"},
		{name: "throw a symbol", body: "throw Symbol('s')", wantReason: ReasonException, wantMsg: "Symbol(s)"},
		{name: "throw an object that throws", body: "throw { get message() { throw 1 }, toJSON() { throw 2 }, toString() { throw 3 } }", wantReason: ReasonException},
		{name: "reject with a function", body: "await Promise.reject(function f() {})", wantReason: ReasonException, wantMsg: "[Function: f]"},

		// apiClient.
		{name: "slow endpoint", api: api, body: "await apiClient.get('slow')", wantReason: ReasonTimeout},
		{name: "redirect to another host", api: api, body: "await apiClient.get('away')", wantReason: ReasonException, wantMsg: "refusing a redirect to " + thief.URL},
		{name: "absolute URL to another host", api: api, body: "await apiClient.get('" + thief.URL + "/x')", wantReason: ReasonException, wantMsg: "refusing a URL outside the API"},
		{name: "loopback refused by the client", api: &guarded, body: "await apiClient.get('users/me')", wantReason: ReasonException, wantMsg: "address is not public"},
		{name: "apiClient without an API", body: "await apiClient.get('users/me')", wantReason: ReasonException, wantMsg: "apiClient is not available"},

		// The Go value goja_nodejs leaves reachable under a symbol of Buffer.
		{name: "goja_nodejs's Buffer internals", body: "const api = Buffer[Object.getOwnPropertySymbols(Buffer)[0]]\nreturn api.RequiredBufferArgument({}, 'x', 5)", wantReason: ReasonException, wantMsg: "ERR_INVALID_ARG_TYPE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := fmt.Sprintf(abuseHandle, tt.body)
			// A lower memory limit than the default keeps the heap-growth cases short:
			// goja fills 64 MiB in about a second.
			cfg := Config{Size: 1, Limits: Limits{Timeout: time.Second, MaxCallStackSize: 200, MaxMemory: 16 << 20, MaxResultBytes: 1 << 20}}
			p := NewPool(mustCompile(t, src), cfg)
			env := Env{API: tt.api}
			start := time.Now()
			got, err := p.Call(t.Context(), map[string]any{"mode": "abuse"}, env)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("the abusive call took %v", d)
			}
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("abusive call: %v", err)
				}
				b, _ := marshalJSON(got)
				if !strings.Contains(string(b), tt.wantMsg) {
					t.Errorf("result %s, want %s", b, tt.wantMsg)
				}
			} else {
				se := asScriptError(t, err)
				if se.Reason != tt.wantReason && (tt.orReason == "" || se.Reason != tt.orReason) || !strings.Contains(se.Message, tt.wantMsg) {
					t.Errorf("error = %v (reason %q), want reason %q and %q", err, se.Reason, tt.wantReason, tt.wantMsg)
				}
			}
			// The process still serving: a normal call on the same pool, then another.
			for i := range 2 {
				got, err := p.Call(t.Context(), map[string]any{"mode": "normal"}, Env{})
				if err != nil {
					t.Fatalf("follow-up call %d: %v", i, err)
				}
				if !reflect.DeepEqual(got, wantProbe) {
					t.Fatalf("follow-up call %d = %#v\nwant %#v", i, got, wantProbe)
				}
			}
		})
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}
}

// publicOnlyClient is an HTTP client that refuses to dial loopback, private and link-local
// addresses after resolution, as the server's egress client does (the sandbox must not
// import runtime/server).
func publicOnlyClient() *http.Client {
	d := &net.Dialer{Timeout: time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return err
		}
		if ip = ip.Unmap(); ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
			return fmt.Errorf("dialing %s: address is not public", address)
		}
		return nil
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, Proxy: nil}}
}

// TestAbuseSlowEndpointCancelled: the request of a call that passed its deadline is
// cancelled on the API's side too, not left running.
func TestAbuseSlowEndpointCancelled(t *testing.T) {
	cancelled := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		close(cancelled)
	}))
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	s := mustCompile(t, "export default async ({ apiClient }) => { await apiClient.get('slow') }")
	_, err := NewPool(s, Config{Limits: Limits{Timeout: 100 * time.Millisecond}}).Call(t.Context(), map[string]any{}, Env{API: &API{BaseURL: base, Client: srv.Client()}})
	if se := asScriptError(t, err); se.Reason != ReasonTimeout {
		t.Fatalf("error = %v, want a timeout", err)
	}
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("the API never saw the request cancelled")
	}
}

// TestAbuseAcrossPools: two pools are two integrations; module state one keeps is not the
// other's, nor that of a runtime used once.
func TestAbuseAcrossPools(t *testing.T) {
	s := mustCompile(t, `let seen
export default ({ secret }) => {
  const before = seen
  if (secret) seen = secret
  return before ?? null
}`)
	a, b := NewPool(s, Config{Size: 1}), NewPool(s, Config{Size: 1})
	call := func(p *Pool, secret any) any {
		t.Helper()
		got, err := p.Call(t.Context(), map[string]any{"secret": secret}, Env{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	call(a, "integration A's token")
	if got := call(b, nil); got != nil {
		t.Errorf("pool B saw %v", got)
	}
	if got := call(a, nil); got != "integration A's token" {
		t.Errorf("pool A's own module state = %v (a pooled runtime keeps it)", got)
	}
	for i := range 2 {
		got, err := s.CallOnce(t.Context(), Config{}, map[string]any{"secret": fmt.Sprint("credentials ", i)}, Env{})
		if err != nil || got != nil {
			t.Errorf("CallOnce %d saw %v, %v; want nothing of the previous call", i, got, err)
		}
	}
}

// TestGlobalAllowList: a script's global object holds exactly allowedGlobals, in a pooled
// runtime and in one used once, and nothing more appears after the library is used.
func TestGlobalAllowList(t *testing.T) {
	src := `export default () => {
  const before = Object.getOwnPropertyNames(globalThis)
  Buffer.from('x'); new Map(); Math.max(); new Date(); Proxy
  return { before, after: Object.getOwnPropertyNames(globalThis), symbols: Object.getOwnPropertySymbols(globalThis).length, frozen: Object.isFrozen(globalThis) }
}`
	want := slices.Clone(allowedGlobals)
	slices.Sort(want)
	s := mustCompile(t, src)
	for _, mode := range []string{"pooled", "once"} {
		t.Run(mode, func(t *testing.T) {
			var got any
			var err error
			if mode == "pooled" {
				got, err = NewPool(s, Config{}).Call(t.Context(), map[string]any{}, Env{})
			} else {
				got, err = s.CallOnce(t.Context(), Config{}, map[string]any{}, Env{})
			}
			if err != nil {
				t.Fatal(err)
			}
			m := got.(map[string]any)
			for _, k := range []string{"before", "after"} {
				var names []string
				for _, n := range m[k].([]any) {
					names = append(names, n.(string))
				}
				slices.Sort(names)
				if !slices.Equal(names, want) {
					t.Errorf("%s: globals\n%v\nwant\n%v", k, names, want)
				}
			}
			// Node's global object has Symbol.toStringTag too.
			if m["symbols"] != 1.0 || m["frozen"] != true {
				t.Errorf("symbols = %v, frozen = %v", m["symbols"], m["frozen"])
			}
		})
	}
}

// TestEverythingFrozen walks every object a script can reach from the global object and
// the intrinsics only instances lead to, after touching every lazily frozen global, and
// lists those not frozen: there must be none but goja_nodejs's Go values.
func TestEverythingFrozen(t *testing.T) {
	src := `export default () => {
  const roots = [globalThis, [][Symbol.iterator](), ''[Symbol.iterator](), 'a'.matchAll(/a/g), Object.getPrototypeOf(function* () {}),
    Object.getPrototypeOf(async function () {}), new Map().entries(), new Set().values(), new Uint8Array(1).buffer, Buffer.from('x'),
    new URL('https://e.com/a?b=c'), new URL('https://e.com').searchParams.entries(), new TextEncoder(), new TextDecoder(),
    crypto.createHash('sha256'), new Date(), Math, new Proxy({}, {}), new WeakMap(), new DataView(new ArrayBuffer(1)),
    Promise.resolve(), /x/, 1n, Symbol.iterator]
  // The roots are the script's own instances; their prototypes are the intrinsics.
  const seen = new Set(), open = [], todo = roots.map((r) => Object.getPrototypeOf(Object(r)))
  todo.push(globalThis)
  while (todo.length) {
    const o = todo.pop()
    if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) continue
    seen.add(o)
    if (!Object.isFrozen(o)) open.push(Object.prototype.toString.call(o) + ' ' + String(o.name) + ' ' + Reflect.ownKeys(o).slice(0, 5).map(String).join(','))
    todo.push(Object.getPrototypeOf(o))
    for (const k of Reflect.ownKeys(o)) {
      const d = Object.getOwnPropertyDescriptor(o, k)
      if ('value' in d) todo.push(d.value); else todo.push(d.get, d.set)
    }
  }
  return { count: seen.size, open }
}`
	got, err := NewPool(mustCompile(t, src), Config{}).Call(t.Context(), map[string]any{}, Env{})
	if err != nil {
		t.Fatal(err)
	}
	m := got.(map[string]any)
	for _, o := range m["open"].([]any) {
		// The Go value goja_nodejs keeps under a symbol of Buffer cannot be frozen, nor
		// can the method values goja makes afresh each time one of its methods is read;
		// they hold no JavaScript state to change.
		if s := o.(string); !strings.Contains(s, "RequiredBufferArgument") && !strings.HasPrefix(s, "[object Function] reflect.methodValueCall ") {
			t.Errorf("not frozen: %s", o)
		}
	}
	if m["count"].(float64) < 500 {
		t.Errorf("walked only %v objects", m["count"])
	}
}

// TestHostPanic: a Go function that panics fails the call that called it, and the runtime
// is dropped; the process goes on.
func TestHostPanic(t *testing.T) {
	lib := func(vm *goja.Runtime, define func(string, goja.Value), alloc allocCheck) (map[string]goja.Value, error) {
		modules, err := buildLibrary(vm, define, alloc)
		define("webhooks", vm.ToValue(map[string]any{"boom": func() { panic("boom") }}))
		return modules, err
	}
	s, err := compile(testName, []byte("export default ({ mode }) => mode === 'boom' ? webhooks.boom() : 'fine'"), lib)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPool(s, Config{Size: 1})
	_, err = p.Call(t.Context(), map[string]any{"mode": "boom"}, Env{})
	if se := asScriptError(t, err); se.Reason != ReasonInternal || !strings.Contains(se.Message, "boom") || se.Line != 1 && se.Line != 0 {
		t.Errorf("error = %v, want an internal error", err)
	}
	if got, err := p.Call(t.Context(), map[string]any{}, Env{}); err != nil || got != "fine" {
		t.Errorf("next call = %v, %v", got, err)
	}
	if _, err := s.CallOnce(t.Context(), Config{}, map[string]any{"mode": "boom"}, Env{}); asScriptError(t, err).Reason != ReasonInternal {
		t.Errorf("CallOnce error = %v, want an internal error", err)
	}
}

// TestMemoryLimitDisabled: a negative MaxMemory lifts the guards; a small one is applied.
func TestMemoryLimitDisabled(t *testing.T) {
	const src = "export default ({ n }) => 'x'.repeat(1024).repeat(n).length"
	// 33 Mi characters count 66 MiB, over the default limit.
	got, err := callOnPool(t, src, Config{Limits: Limits{MaxMemory: -1}}, map[string]any{"n": 33 << 10})
	if err != nil || got != float64(33<<20) {
		t.Errorf("got %v, %v", got, err)
	}
	_, err = callOnPool(t, src, Config{Limits: Limits{MaxMemory: 1 << 20}}, map[string]any{"n": 8 << 10})
	if se := asScriptError(t, err); se.Reason != ReasonMemoryLimit || !strings.Contains(se.Error(), ":1: memory limit: String.prototype.repeat would allocate 16 MiB, over the 1 MiB limit") {
		t.Errorf("error = %v", err)
	}
}

// TestConcurrentBomb: while one pool's script exhausts its memory, calls on another keep
// being served (the watchdog may stop calls running alongside a bomb; they are retried
// here the way a caller would see them: as failed calls, never as a crashed process).
func TestConcurrentBomb(t *testing.T) {
	bomb := NewPool(mustCompile(t, "export default () => { let s = 'x'; for (;;) s += s }"), Config{Limits: Limits{Timeout: 2 * time.Second}})
	good := NewPool(mustCompile(t, "export default ({ n }) => n + 1"), Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := bomb.Call(ctx, map[string]any{}, Env{})
		done <- err
	}()
	served := 0
	for {
		select {
		case err := <-done:
			var se *ScriptError
			if !errors.As(err, &se) || se.Reason != ReasonMemoryLimit {
				t.Fatalf("bomb: %v", err)
			}
			if served == 0 {
				t.Error("no call served while the bomb ran")
			}
			return
		default:
		}
		if got, err := good.Call(ctx, map[string]any{"n": 1}, Env{}); err == nil && got == 2.0 {
			served++
		}
	}
}
