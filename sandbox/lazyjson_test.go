package sandbox

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// lazyBody has what makes objects differ: integer-like keys, a repeated key, escapes,
// non-ASCII text, big and negative numbers, empty and nested containers.
const lazyBody = `{"z": 1, "10": "ten", "2": "two", "a": {"b": [1, 2.5, -0, 1e3, 12345678901234567890],
 "s": "h\u00e9 \"q\" \\ 🎉", "n": null, "t": true, "f": false, "e": {}, "l": []},
 "list": [{"id": 3}, {"id": 1}, {"id": 2}], "dup": 1, "dup": 2, "x": "y"}`

// TestLazyJSONBehavesLikeParsedJSON runs the same operations on data (decoded as read, see
// lazyjson.go) and on JSON.parse(rawBody) (ordinary objects), and wants the same results.
func TestLazyJSONBehavesLikeParsedJSON(t *testing.T) {
	const src = `
const ops = (d) => {
  const out = []
  const log = (v) => out.push(v === undefined ? 'undefined' : JSON.stringify(v))
  log(Object.keys(d)); log(Object.keys(d.a)); log(d); log(JSON.stringify(d, null, 2))
  log(d.a === d.a); log(d.list[0] === d.list[0]); log(d.a.b.length); log(d.missing); log(d.a?.q?.r)
  log('a' in d); log('missing' in d); log(Object.prototype.hasOwnProperty.call(d, 'x')); log(d.hasOwnProperty('z'))
  const keys = []; for (const k in d) keys.push(k); log(keys)
  const { a, z, ...rest } = d; log(rest); log({ ...d.a, extra: 1 })
  log(Object.entries(d.a)); log(Object.values(d.list)); log(Object.assign({}, d))
  log(Object.getOwnPropertyNames(d.a)); log(typeof d); log(d instanceof Object); log(d.list instanceof Array)
  log(Array.isArray(d.list)); log(Array.isArray(d.a)); log(String(d)); log(Object.prototype.toString.call(d.list))
  log(d.list.map(e => e.id)); log(d.list.filter(e => e.id > 1)); log(d.a.b.reduce((s, n) => s + n, 0))
  const ids = []; for (const e of d.list) ids.push(e.id); log(ids)
  log(d.a.b.indexOf(2.5)); log(d.a.b.includes(1e3)); log(d.list.slice(1)); log(d.a.b.concat([7]))
  log(d.list.find(e => e.id === 2)); log([...d.a.b]); log(d.a.b.join('|')); log(d.dup); log(d.a.s.length)
  log(Object.is(d.a.b[2], -0))
  // Changes.
  d.list.sort((p, q) => p.id - q.id); log(d.list)
  d.list.push({ id: 4 }); d.list.unshift({ id: 0 }); log(d.list.pop()); log(d.list.shift()); log(d.list)
  d.list.splice(1, 1, { id: 9 }); d.list.reverse(); log(d.list)
  d.a.b.length = 2; log(d.a.b); d.a.b[4] = 'far'; log(d.a.b); log(d.a.b.length)
  delete d.z; d.z = 'back'; d.new = [1]; log(d.new); d['7'] = 'seven'; log(Object.keys(d)); log(d)
  delete d.a.e; d.a.n = { now: 'set' }; log(d.a)
  return out
}
export default ({ data, rawBody }) => ({ lazy: ops(data), plain: ops(JSON.parse(rawBody)) })`
	// The same with more keys than an object is searched by (searchedKeys), so that it is
	// indexed, and a key repeated after that.
	var long strings.Builder
	long.WriteString(lazyBody[:len(lazyBody)-1])
	for i := range 2 * searchedKeys {
		fmt.Fprintf(&long, `, "k%d": %d`, i, i)
	}
	long.WriteString(`, "k30": "again", "11": "eleven"}`)
	for name, body := range map[string]string{"short": lazyBody, "long": long.String()} {
		got, err := callOnPool(t, src, Config{}, map[string]any{"data": json.RawMessage(body), "rawBody": body})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m := got.(map[string]any)
		lazy, plain := m["lazy"].([]any), m["plain"].([]any)
		if len(lazy) != len(plain) || len(lazy) < 50 {
			t.Fatalf("%s: %d results from data, %d from JSON.parse", name, len(lazy), len(plain))
		}
		for i := range lazy {
			if lazy[i] != plain[i] {
				t.Errorf("%s: operation %d: data gives %v, JSON.parse gives %v", name, i, lazy[i], plain[i])
			}
		}
	}
}

// What dynamic objects cannot do, which the README lists: each fails with a TypeError
// naming it, and the rest of data is unaffected.
func TestLazyJSONLimits(t *testing.T) {
	for _, op := range []string{
		`Object.freeze(data)`,
		`Object.defineProperty(data, 'x', { get() { return 1 } })`,
		`Object.defineProperty(data, 'x', { value: 1, enumerable: false })`,
	} {
		_, err := callOnPool(t, "export default ({ data }) => { "+op+" }", Config{}, map[string]any{"data": json.RawMessage(`{"x":0}`)})
		if err == nil || !strings.Contains(err.Error(), "TypeError") {
			t.Errorf("%s: err = %v, want a TypeError", op, err)
		}
	}
}

// Text that is not JSON fails the call, with the place of the error.
func TestLazyJSONInvalid(t *testing.T) {
	_, err := callOnPool(t, "export default ({ data }) => data", Config{}, map[string]any{"data": json.RawMessage(`{"a": [1, }`)})
	if err == nil || !strings.Contains(err.Error(), "JSON") {
		t.Fatalf("err = %v, want one about the JSON", err)
	}
}

// jsonValidityCases are the edges of JSON's grammar where a validator can go wrong.
var jsonValidityCases = []string{
	``, ` `, `{}`, `[]`, ` {} `, "\t[\r\n]\n", `{`, `}`, `[`, `]`, `{]`, `[}`, `{"a"}`, `{"a":}`, `{"a":1,}`,
	`{,"a":1}`, `{"a":1 "b":2}`, `{"a" 1}`, `{1:2}`, `{a:1}`, `[1,]`, `[,1]`, `[1 2]`, `[1]]`, `[[1]`,
	`0`, `-0`, `01`, `-01`, `1.`, `.5`, `-`, `+1`, `1e`, `1e+`, `1E-2`, `1.5e3`, `-0.0e-0`, `1e400`, `0x1`,
	`true`, `false`, `null`, `tru`, `nul`, `True`, `nulll`, `truefalse`, `1 2`, `"a" "b"`,
	`"open`, `"\`, `"\"`, `"\\"`, `"\/\b\f\n\r\t"`, `"\a"`, `"\x41"`, `"\u00e9"`, `"\u00E9"`, `"\u12"`,
	`"\u12G4"`, `"\ud800"`, "\"ctl \x01\"", "\"tab \t\"", "\"del \x7f\"", "\"\xff\xfe not UTF-8\"",
	"\xef\xbb\xbf{}", "{}\x00", `{"a":[{"b":{"c":[null,true,"x",-1.5]}}],"d":{}}`, `{"a":1,"a":2}`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	`{"a":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
	`{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
}

// JSON is valid for the sandbox exactly when it is for encoding/json: what the ingest path
// decodes and what it hands over as text is what json.Valid would have decided.
func TestLazyJSONValidity(t *testing.T) {
	in := newTestInstance(t)
	for _, doc := range jsonValidityCases {
		if _, ok := in.lazyJSON([]byte(doc), false); ok != json.Valid([]byte(doc)) {
			t.Errorf("%.40q: valid %v, encoding/json says %v", doc, ok, !ok)
		}
	}
}

// A JSONOrText that is not valid JSON reaches the script as its text; a valid one as its
// value.
func TestJSONOrText(t *testing.T) {
	for _, doc := range []string{`{"a":`, `[1,]`, "\"ctl \x01\"", `{"a":1} trailing`, `{"a":1}`, `[1,{"b":"c"}]`, `"s"`, `12`} {
		got, err := callOnPool(t, "export default ({ data }) => ({ type: typeof data, text: JSON.stringify(data) })", Config{},
			map[string]any{"data": JSONOrText(doc)})
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		want := map[string]any{"type": "string", "text": mustMarshal(t, doc)}
		if json.Valid([]byte(doc)) {
			var v any
			_ = json.Unmarshal([]byte(doc), &v)
			typ := "object"
			switch v.(type) {
			case string:
				typ = "string"
			case float64:
				typ = "number"
			}
			want = map[string]any{"type": typ, "text": mustMarshal(t, v)}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %#v, want %#v", doc, got, want)
		}
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := marshalJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

// FuzzLazyJSONValidity: the sandbox's one-pass check agrees with json.Valid, and what it
// accepts decodes to what encoding/json makes of it. Run for a while with
// go test ./sandbox -run '^$' -fuzz FuzzLazyJSONValidity -fuzztime 5m
func FuzzLazyJSONValidity(f *testing.F) {
	for _, doc := range jsonValidityCases {
		if len(doc) < 1000 {
			f.Add([]byte(doc))
		}
	}
	f.Add([]byte(lazyBody))
	in := newTestInstance(f)
	f.Fuzz(func(t *testing.T, doc []byte) {
		v, ok := in.lazyJSON(doc, false)
		if ok != json.Valid(doc) {
			t.Fatalf("%q: valid %v, encoding/json says %v", doc, ok, !ok)
		}
		if !ok {
			return
		}
		got, err := in.export(v)
		if err != nil {
			t.Fatalf("%q: exporting: %v", doc, err)
		}
		var want any
		if err := json.Unmarshal(doc, &want); err != nil {
			return // a number beyond float64, which JSON.parse makes Infinity
		}
		if !reflect.DeepEqual(got, want) { // -0 equals 0 here, as JSON.stringify writes it
			t.Fatalf("%q: decoded as %s, encoding/json makes %s", doc, mustMarshal(t, got), mustMarshal(t, want))
		}
	})
}

// newTestInstance is a runtime with intrinsics left writable, for tests that call its
// methods directly.
func newTestInstance(tb testing.TB) *instance {
	tb.Helper()
	in, err := newInstance(mustCompile(tb, "export default () => {}"), discardLogger(), Limits{}, false)
	if err != nil {
		tb.Fatal(err)
	}
	return in
}
