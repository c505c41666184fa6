package sandbox

import (
	"encoding/json"
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
  delete d.z; d.z = 'back'; d.new = [1]; d['7'] = 'seven'; log(Object.keys(d)); log(d)
  delete d.a.e; d.a.n = { now: 'set' }; log(d.a)
  return out
}
export default ({ data, rawBody }) => ({ lazy: ops(data), plain: ops(JSON.parse(rawBody)) })`
	got, err := callOnPool(t, src, Config{}, map[string]any{"data": json.RawMessage(lazyBody), "rawBody": lazyBody})
	if err != nil {
		t.Fatal(err)
	}
	m := got.(map[string]any)
	lazy, plain := m["lazy"].([]any), m["plain"].([]any)
	if len(lazy) != len(plain) || len(lazy) < 50 {
		t.Fatalf("%d results from data, %d from JSON.parse", len(lazy), len(plain))
	}
	for i := range lazy {
		if lazy[i] != plain[i] {
			t.Errorf("operation %d: data gives %v, JSON.parse gives %v", i, lazy[i], plain[i])
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
