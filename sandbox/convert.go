package sandbox

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// maxDepth bounds the nesting of values crossing the boundary either way, which also
// bounds the Go recursion that converts them.
const maxDepth = 1000

var (
	errTooDeep = errors.New("value nested deeper than 1000 levels")
	errCycle   = errors.New("value contains a cycle")
)

// JSONOrText is a body that says it is JSON, which its maker will not change. As an
// argument it is the JSON's value, decoded as the script reads it, when the text is valid
// JSON as json.Valid judges it, and otherwise the text, as a string. The check is the scan
// that finds the top level's members, not a pass of its own (lazyjson.go).
type JSONOrText []byte

// toValue builds native JavaScript values from plain Go values: real objects and arrays,
// not goja's wrappers around Go maps and slices, so scripts see ordinary JS semantics.
func (in *instance) toValue(v any) (goja.Value, error) {
	return in.toValueDepth(v, 0)
}

func (in *instance) toValueDepth(v any, depth int) (goja.Value, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	vm := in.vm
	switch v := v.(type) {
	case nil:
		return goja.Null(), nil
	case string:
		return vm.ToValue(v), nil
	case bool:
		return vm.ToValue(v), nil
	case float64:
		return vm.ToValue(v), nil
	case int:
		return vm.ToValue(v), nil
	case int64:
		return vm.ToValue(v), nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("converting number %q: %w", v, err)
		}
		return vm.ToValue(f), nil
	case json.RawMessage:
		val, ok := in.lazyJSON(v, in.call != nil && in.call.inArgument)
		if !ok {
			var x any // encoding/json names what is wrong
			return nil, fmt.Errorf("decoding JSON: %w", cmp.Or(json.Unmarshal(v, &x), errJSONSyntax))
		}
		return val, nil
	case JSONOrText:
		if val, ok := in.lazyJSON(v, in.call != nil && in.call.inArgument); ok {
			return val, nil
		}
		return vm.ToValue(string(v)), nil
	case map[string]any:
		obj := vm.NewObject()
		var buf [16]string
		for _, k := range sortedKeys(v, buf[:0]) {
			e, err := in.toValueDepth(v[k], depth+1)
			if err != nil {
				return nil, err
			}
			if err := defineData(obj, k, e); err != nil {
				return nil, err
			}
		}
		return obj, nil
	case []any:
		items := make([]any, len(v))
		for i, e := range v {
			ev, err := in.toValueDepth(e, depth+1)
			if err != nil {
				return nil, err
			}
			items[i] = ev
		}
		return vm.NewArray(items...), nil
	case map[string]string:
		obj := vm.NewObject()
		var buf [16]string
		for _, k := range sortedKeys(v, buf[:0]) {
			if err := defineData(obj, k, vm.ToValue(v[k])); err != nil {
				return nil, err
			}
		}
		return obj, nil
	case []string:
		items := make([]any, len(v))
		for i, e := range v {
			items[i] = e
		}
		return vm.NewArray(items...), nil
	case time.Time:
		return vm.ToValue(v.UTC().Format(time.RFC3339Nano)), nil
	}
	return in.reflectValue(reflect.ValueOf(v), depth)
}

// sortedKeys appends m's keys to buf, sorted: objects made from Go maps list their keys in
// the same order every time. A caller's small buf keeps the keys off the heap.
func sortedKeys[V any](m map[string]V, buf []string) []string {
	for k := range m {
		buf = append(buf, k)
	}
	slices.Sort(buf)
	return buf
}

// reflectValue covers the less common shapes: other numbers, named map and slice types
// (url.Values, http.Header, map[string][]string, ...) and pointers to any of them.
func (in *instance) reflectValue(rv reflect.Value, depth int) (goja.Value, error) {
	vm := in.vm
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return vm.ToValue(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return vm.ToValue(float64(rv.Uint())), nil
	case reflect.Float32, reflect.Float64:
		return vm.ToValue(rv.Float()), nil
	case reflect.String:
		return vm.ToValue(rv.String()), nil
	case reflect.Bool:
		return vm.ToValue(rv.Bool()), nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return goja.Null(), nil
		}
		return in.toValueDepth(rv.Elem().Interface(), depth+1)
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		if rv.IsNil() {
			return goja.Null(), nil
		}
		keys := rv.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int {
			switch {
			case a.String() < b.String():
				return -1
			case a.String() > b.String():
				return 1
			}
			return 0
		})
		obj := vm.NewObject()
		for _, k := range keys {
			e, err := in.toValueDepth(rv.MapIndex(k).Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			if err := defineData(obj, k.String(), e); err != nil {
				return nil, err
			}
		}
		return obj, nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return goja.Null(), nil
		}
		items := make([]any, rv.Len())
		for i := range items {
			e, err := in.toValueDepth(rv.Index(i).Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			items[i] = e
		}
		return vm.NewArray(items...), nil
	}
	return nil, fmt.Errorf("unsupported type %s", rv.Type())
}

// jsonDecoder reads valid JSON text: it skips over values (lazyjson.go) and turns the
// scalars a script reads into JavaScript values, with no Go values in between. Its strings
// and numbers are what encoding/json makes of them (invalid UTF-8 becomes U+FFFD).
type jsonDecoder struct {
	in   *instance
	data []byte
	pos  int
}

var errJSONSyntax = errors.New("invalid JSON")

func (d *jsonDecoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// scalar reads the string, number, true, false or null at d.pos.
func (d *jsonDecoder) scalar() (goja.Value, error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, errJSONSyntax
	}
	vm := d.in.vm
	switch c := d.data[d.pos]; {
	case c == '"':
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return vm.ToValue(s), nil
	case c == 't':
		return goja.Value(vm.ToValue(true)), d.literal("true")
	case c == 'f':
		return goja.Value(vm.ToValue(false)), d.literal("false")
	case c == 'n':
		return goja.Null(), d.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		return d.number()
	}
	return nil, errJSONSyntax
}

func (d *jsonDecoder) literal(word string) error {
	if !bytes.HasPrefix(d.data[d.pos:], []byte(word)) {
		return errJSONSyntax
	}
	d.pos += len(word)
	return nil
}

// str reads a string at d.pos. One without escapes in valid UTF-8 is taken as is; the
// others go through encoding/json, for its escapes and its replacement of invalid UTF-8.
func (d *jsonDecoder) str() (string, error) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return "", errJSONSyntax
	}
	start := d.pos
	plain := true
	i := start + 1
	for ; i < len(d.data); i++ {
		c := d.data[i]
		if c == '"' {
			break
		}
		if c == '\\' {
			plain = false
			i++ // the escaped character, whatever it is, does not end the string
			continue
		}
		if c < 0x20 {
			return "", errJSONSyntax
		}
		if c >= utf8.RuneSelf {
			plain = false
		}
	}
	if i >= len(d.data) {
		return "", errJSONSyntax
	}
	d.pos = i + 1
	raw := d.data[start+1 : i]
	if plain || (!bytes.ContainsRune(raw, '\\') && utf8.Valid(raw)) {
		return string(raw), nil
	}
	var s string
	if err := json.Unmarshal(d.data[start:d.pos], &s); err != nil {
		return "", errJSONSyntax
	}
	return s, nil
}

// number reads a number with JSON's grammar; one too large for a float64 is an infinity,
// as JSON.parse makes it.
func (d *jsonDecoder) number() (goja.Value, error) {
	start := d.pos
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && '0' <= d.data[d.pos] && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	if d.data[d.pos] == '-' {
		d.pos++
	}
	if d.pos < len(d.data) && d.data[d.pos] == '0' {
		d.pos++
	} else if digits() == 0 {
		return nil, errJSONSyntax
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if digits() == 0 {
			return nil, errJSONSyntax
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return nil, errJSONSyntax
		}
	}
	f, err := strconv.ParseFloat(string(d.data[start:d.pos]), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, err
	}
	return d.in.vm.ToValue(f), nil
}

// export turns a JavaScript value into plain Go values the way JSON.stringify sees it:
// toJSON is honoured, undefined, functions and symbols are left out of objects and become
// null in arrays, NaN and infinities become nil, Dates become RFC 3339 strings. Getters
// and toJSON run script code, so a throw there comes back as the *goja.Exception.
//
// The size of the result, as JSON would encode it, is bounded by Limits.MaxResultBytes and
// counted as the value is converted: a script cannot make the host build a huge value
// (an array whose length was set to 2e9 included).
func (in *instance) export(v goja.Value) (result any, err error) {
	return in.exportWith(v, false)
}

// exportResult is export for a call's result: an object or array below its top that came
// from JSON in the call's argument and is unchanged (lazyjson.go) becomes that JSON as it
// was received, a json.RawMessage, rather than Go maps that would be encoded again: a
// handle returning {events: [{selector, payload: data}]} publishes the body's own bytes.
func (in *instance) exportResult(v goja.Value) (result any, err error) {
	return in.exportWith(v, true)
}

func (in *instance) exportWith(v goja.Value, raw bool) (result any, err error) {
	x := exporter{in: in, limit: in.limits.maxResultBytes(), raw: raw}
	if ex := in.vm.Try(func() { result, err = x.value(v, 0) }); ex != nil {
		return nil, ex
	}
	return result, err
}

// orUndefined is v, or undefined for a property that is not there.
func orUndefined(v goja.Value) goja.Value {
	if v == nil {
		return goja.Undefined()
	}
	return v
}

type exporter struct {
	in      *instance
	raw     bool           // export unchanged JSON arguments as json.RawMessage
	parents []*goja.Object // the objects being exported, outermost first, to catch cycles
	limit   int            // bytes the value may take as JSON
	size    int            // bytes counted so far
}

// resultTooLargeError is a value converted out of a runtime that passed MaxResultBytes.
type resultTooLargeError struct{ limit int }

func (e *resultTooLargeError) Error() string {
	return fmt.Sprintf("the value is larger than the %s limit (MaxResultBytes)", formatBytes(float64(e.limit)))
}

// grow counts n more bytes of JSON.
func (x *exporter) grow(n int) error {
	x.size += n
	if x.size > x.limit {
		return &resultTooLargeError{limit: x.limit}
	}
	return nil
}

// value exports v; omit reports a value an object leaves out (undefined, a function, a symbol).
func (x *exporter) value(v goja.Value, depth int) (any, error) {
	g, _, err := x.valueOmit(v, depth)
	return g, err
}

func (x *exporter) valueOmit(v goja.Value, depth int) (result any, omit bool, err error) {
	if v == nil || goja.IsUndefined(v) {
		return nil, true, nil
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		if _, ok := v.(*goja.Symbol); ok {
			return nil, true, nil
		}
		e := v.Export()
		n := 8 // a number, true, false, null: a few bytes
		if s, ok := e.(string); ok {
			n = len(s) + 2
		}
		if err := x.grow(n); err != nil {
			return nil, false, err
		}
		switch e := e.(type) {
		case int64:
			return float64(e), false, nil
		case float64:
			if math.IsNaN(e) || math.IsInf(e, 0) {
				return nil, false, nil
			}
			if e == 0 {
				return 0.0, false, nil // JSON has no -0
			}
			return e, false, nil
		case string, bool, nil:
			return e, false, nil
		case *big.Int:
			return e.String(), false, nil
		}
		return nil, true, nil
	}
	if depth > maxDepth {
		return nil, false, errTooDeep
	}
	if x.raw && depth > 0 {
		if raw, ok := unchangedJSON(obj); ok && goja.IsUndefined(orUndefined(obj.Get("toJSON"))) {
			if err := x.grow(len(raw)); err != nil {
				return nil, false, err
			}
			return raw, false, nil
		}
	}
	switch obj.ClassName() {
	case "Function":
		return nil, true, nil
	case "Date":
		if t, ok := obj.Export().(time.Time); ok {
			return t.UTC().Format("2006-01-02T15:04:05.000Z07:00"), false, nil
		}
		return nil, false, nil
	case "Array":
		return x.array(obj, depth)
	}
	if tj, ok := goja.AssertFunction(obj.Get("toJSON")); ok {
		r, err := tj(obj)
		if err != nil {
			return nil, false, err
		}
		return x.valueOmit(r, depth+1)
	}
	if slices.Contains(x.parents, obj) {
		return nil, false, errCycle
	}
	x.parents = append(x.parents, obj)
	defer func() { x.parents = x.parents[:len(x.parents)-1] }()
	keys := obj.Keys()
	if err := x.grow(2 + len(keys)); err != nil {
		return nil, false, err
	}
	m := make(map[string]any, len(keys))
	for _, k := range keys {
		if err := x.grow(len(k) + 3); err != nil {
			return nil, false, err
		}
		e, omit, err := x.valueOmit(obj.Get(k), depth+1)
		if err != nil {
			return nil, false, err
		}
		if !omit {
			m[k] = e
		}
	}
	return m, false, nil
}

func (x *exporter) array(obj *goja.Object, depth int) (any, bool, error) {
	if slices.Contains(x.parents, obj) {
		return nil, false, errCycle
	}
	x.parents = append(x.parents, obj)
	defer func() { x.parents = x.parents[:len(x.parents)-1] }()
	n := obj.Get("length").ToInteger()
	if n > math.MaxInt32 {
		return nil, false, errors.New("array too long")
	}
	// Every element takes at least a comma: count them before allocating.
	if err := x.grow(2 + int(n)); err != nil {
		return nil, false, err
	}
	a := make([]any, n)
	for i := range a {
		e, _, err := x.valueOmit(obj.Get(strconv.Itoa(i)), depth+1)
		if err != nil {
			return nil, false, err
		}
		a[i] = e
	}
	return a, false, nil
}

// defineData creates an own enumerable property the way JSON.parse does: no setter on
// Object.prototype runs, and a "__proto__" key is a property, not the prototype.
func defineData(obj *goja.Object, key string, v goja.Value) error {
	return obj.DefineDataProperty(key, v, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
}

// marshalJSON is json.Marshal without HTML escaping, the way JSON.stringify writes.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
