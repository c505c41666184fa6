package sandbox

import (
	"bytes"
	"cmp"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"

	"github.com/dop251/goja"
)

// # JSON decoded as it is read
//
// A webhook body crosses into handle on every ingest request, and most handles read a
// field or two and return the body as the payload. So the objects and arrays of a JSON
// argument are goja dynamic objects over the JSON text: a member is decoded the first time
// the script reads it (and kept, so that data.a === data.a), and a value nobody reads costs
// one scan of its bytes. A node remembers whether the script changed it or anything in it;
// one unchanged when the call's result is exported is exported as its JSON as received
// (exportResult), which the router then publishes byte for byte.
//
// Dynamic objects behave as ordinary objects for what scripts do with parsed JSON (read,
// assign, delete, spread, Object.keys, JSON.stringify, for...in, Array methods) with these
// differences, listed in the README: they cannot be frozen, sealed or made non-extensible,
// their properties cannot become accessors or non-writable, non-enumerable or
// non-configurable, they hold no symbol-keyed properties, and deleting an array element
// sets it to undefined.

// lazyNode is what every decoded object and array shares: its JSON and whether it changed.
type lazyNode struct {
	in     *instance
	raw    json.RawMessage
	parent *lazyNode
	dirty  bool // changed, or something it holds changed, since it was decoded
	reuse  bool // part of the call's argument: exportResult may hand raw back
}

// touch marks the node and every node holding it as changed.
func (n *lazyNode) touch() {
	for p := n; p != nil && !p.dirty; p = p.parent {
		p.dirty = true
	}
}

// unchangedJSON returns the node's JSON when nothing in it changed.
func unchangedJSON(obj *goja.Object) (json.RawMessage, bool) {
	// ExportType first: Export of an ordinary object would convert all of it.
	if t := obj.ExportType(); t != lazyObjectType && t != lazyArrayType {
		return nil, false
	}
	var n *lazyNode
	switch v := obj.Export().(type) {
	case *lazyObject:
		n = &v.lazyNode
	case *lazyArray:
		n = &v.lazyNode
	default:
		return nil, false
	}
	return n.raw, n.reuse && !n.dirty
}

var (
	lazyObjectType = reflect.TypeFor[*lazyObject]()
	lazyArrayType  = reflect.TypeFor[*lazyArray]()
)

// lazyJSON turns JSON text into a JavaScript value: a dynamic object or array decoded as it
// is read, or a scalar. It reports false, with no value, when data is not valid JSON as
// json.Valid judges it. There is no separate check: the scan that indexes the top level
// checks every value below it as it skips over it (skipValue), so the text is read once.
func (in *instance) lazyJSON(data []byte, reuse bool) (goja.Value, bool) {
	raw := trimSpace(data)
	if len(raw) == 0 {
		return nil, false
	}
	return in.lazyValue(raw, &lazyNode{reuse: reuse}, 0)
}

// lazyValue makes the value of one JSON value without surrounding space, held by parent
// (for the top value, a node that stands for the argument) inside depth containers. It
// reports false when raw is not exactly one valid JSON value; that cannot happen below the
// top, whose scan checked everything.
func (in *instance) lazyValue(raw []byte, parent *lazyNode, depth int) (goja.Value, bool) {
	switch raw[0] {
	case '{':
		o := &lazyObject{lazyNode: lazyNode{in: in, raw: raw, parent: parent, reuse: parent.reuse}}
		if !o.scan(depth + 1) {
			return nil, false
		}
		return in.vm.NewDynamicObject(o), true
	case '[':
		a := &lazyArray{lazyNode: lazyNode{in: in, raw: raw, parent: parent, reuse: parent.reuse}}
		if !a.scan(depth + 1) {
			return nil, false
		}
		return in.vm.NewDynamicArray(a), true
	}
	d := jsonDecoder{in: in, data: raw}
	v, err := d.scalar()
	if err != nil || d.pos != len(raw) {
		return nil, false
	}
	return v, true
}

// member makes the value of a member of a scanned object or array: checked already.
func (in *instance) member(raw []byte, parent *lazyNode) goja.Value {
	v, ok := in.lazyValue(raw, parent, 0)
	if !ok {
		panic(in.vm.NewGoError(errJSONSyntax)) // cannot happen: the top level's scan checked it
	}
	return v
}

// lazyObject is a JSON object. Its keys are in the order JavaScript gives an object made by
// JSON.parse: integer-like keys first, ascending, then the others in document order; a
// repeated key keeps its first place and its last value.
type lazyObject struct {
	lazyNode
	keys []string       // shared with goja's iterators: never changed in place
	raws [][]byte       // each key's JSON; nil once set by the script
	vals []goja.Value   // each key's value, once read or set
	pos  map[string]int // index of each key, for objects too long to search
}

// searchedKeys is how many keys an object may have and still be searched key by key; a
// longer one gets an index (pos). Up to here a search is quicker than building the map,
// and most webhook bodies have fewer keys at their top level.
const searchedKeys = 16

// scan finds the members of the object, depth containers deep counting itself, and
// reports whether o.raw is exactly one valid JSON object.
func (o *lazyObject) scan(depth int) bool {
	s := jsonDecoder{in: o.in, data: o.raw, pos: 1}
	o.keys, o.raws = make([]string, 0, 8), make([][]byte, 0, 8)
	var indexKeys bool
	if s.skipSpace(); s.next('}') {
		return o.scanned(indexKeys, s.pos == len(s.data))
	}
	for {
		s.skipSpace()
		key, err := s.str()
		if err != nil {
			return false
		}
		if s.skipSpace(); !s.next(':') {
			return false
		}
		s.skipSpace()
		start := s.pos
		if !s.skipValue(depth) {
			return false
		}
		if i := o.index(key); i >= 0 {
			o.raws[i] = s.data[start:s.pos]
			o.touch() // its JSON says more than its value: never reused
		} else {
			o.keys = append(o.keys, key)
			o.raws = append(o.raws, s.data[start:s.pos])
			if o.pos != nil {
				o.pos[key] = len(o.keys) - 1
			} else if len(o.keys) > searchedKeys {
				o.indexAll()
			}
			indexKeys = indexKeys || isArrayIndex(key)
		}
		s.skipSpace()
		if s.next(',') {
			continue
		}
		if s.next('}') {
			return o.scanned(indexKeys, s.pos == len(s.data))
		}
		return false
	}
}

func (o *lazyObject) scanned(indexKeys, ok bool) bool {
	o.vals = make([]goja.Value, len(o.keys))
	if indexKeys {
		o.orderIndexKeys()
	}
	return ok
}

func (o *lazyObject) indexAll() {
	if o.pos == nil {
		o.pos = make(map[string]int, len(o.keys)*2)
	}
	for i, k := range o.keys {
		o.pos[k] = i
	}
}

// index finds key; -1 when absent.
func (o *lazyObject) index(key string) int {
	if o.pos != nil {
		if i, ok := o.pos[key]; ok {
			return i
		}
		return -1
	}
	for i, k := range o.keys {
		if k == key {
			return i
		}
	}
	return -1
}

// orderIndexKeys puts the integer-like keys first, ascending, as ordinary objects list them.
func (o *lazyObject) orderIndexKeys() {
	type member struct {
		key string
		raw []byte
	}
	var index, other []member
	for i, k := range o.keys {
		if isArrayIndex(k) {
			index = append(index, member{k, o.raws[i]})
		} else {
			other = append(other, member{k, o.raws[i]})
		}
	}
	slices.SortStableFunc(index, func(a, b member) int {
		x, _ := strconv.ParseUint(a.key, 10, 32)
		y, _ := strconv.ParseUint(b.key, 10, 32)
		return cmp.Compare(x, y)
	})
	o.keys, o.raws = o.keys[:0], o.raws[:0]
	for _, m := range append(index, other...) {
		o.keys = append(o.keys, m.key)
		o.raws = append(o.raws, m.raw)
	}
	if o.pos != nil {
		o.indexAll()
	}
}

// isArrayIndex tells the keys ordinary objects list first: canonical integers below 2^32-1.
func isArrayIndex(k string) bool {
	if k == "" || len(k) > 10 || (len(k) > 1 && k[0] == '0') {
		return false
	}
	n, err := strconv.ParseUint(k, 10, 32)
	return err == nil && n < 1<<32-1
}

func (o *lazyObject) Get(key string) goja.Value {
	i := o.index(key)
	if i < 0 {
		return nil
	}
	if o.vals[i] == nil {
		o.vals[i] = o.in.member(o.raws[i], &o.lazyNode)
	}
	return o.vals[i]
}

func (o *lazyObject) Set(key string, val goja.Value) bool {
	o.touch()
	if i := o.index(key); i >= 0 {
		o.vals[i], o.raws[i] = val, nil
		return true
	}
	if isArrayIndex(key) {
		// Among the integer-like keys, in order; new slices: goja may be iterating.
		n, _ := strconv.ParseUint(key, 10, 32)
		i := 0
		for ; i < len(o.keys) && isArrayIndex(o.keys[i]); i++ {
			if m, _ := strconv.ParseUint(o.keys[i], 10, 32); m > n {
				break
			}
		}
		o.keys = slices.Insert(o.keys[:len(o.keys):len(o.keys)], i, key)
		o.raws = slices.Insert(o.raws[:len(o.raws):len(o.raws)], i, nil)
		o.vals = slices.Insert(o.vals[:len(o.vals):len(o.vals)], i, val)
		if o.pos != nil || len(o.keys) > searchedKeys {
			o.indexAll()
		}
		return true
	}
	o.keys = append(o.keys, key)
	o.raws = append(o.raws, nil)
	o.vals = append(o.vals, val)
	if o.pos != nil || len(o.keys) > searchedKeys {
		if o.pos == nil {
			o.indexAll()
		}
		o.pos[key] = len(o.keys) - 1
	}
	return true
}

func (o *lazyObject) Has(key string) bool { return o.index(key) >= 0 }

func (o *lazyObject) Delete(key string) bool {
	i := o.index(key)
	if i < 0 {
		return true
	}
	o.touch()
	// New slices: goja may be iterating the old keys.
	o.keys = append(o.keys[:i:i], o.keys[i+1:]...)
	o.raws = append(o.raws[:i:i], o.raws[i+1:]...)
	o.vals = append(o.vals[:i:i], o.vals[i+1:]...)
	if o.pos != nil {
		clear(o.pos)
		o.indexAll()
	}
	return true
}

func (o *lazyObject) Keys() []string { return o.keys }

// lazyArray is a JSON array.
type lazyArray struct {
	lazyNode
	raws [][]byte
	vals []goja.Value
}

// scan finds the elements of the array, depth containers deep counting itself, and
// reports whether a.raw is exactly one valid JSON array.
func (a *lazyArray) scan(depth int) bool {
	s := jsonDecoder{in: a.in, data: a.raw, pos: 1}
	if s.skipSpace(); s.next(']') {
		return a.scanned(s.pos == len(s.data))
	}
	for {
		s.skipSpace()
		start := s.pos
		if !s.skipValue(depth) {
			return false
		}
		a.raws = append(a.raws, s.data[start:s.pos])
		s.skipSpace()
		if s.next(',') {
			continue
		}
		return s.next(']') && a.scanned(s.pos == len(s.data))
	}
}

func (a *lazyArray) scanned(ok bool) bool {
	a.vals = make([]goja.Value, len(a.raws))
	return ok
}

func (a *lazyArray) Len() int { return len(a.vals) }

func (a *lazyArray) Get(idx int) goja.Value {
	if idx < 0 || idx >= len(a.vals) {
		return nil
	}
	if a.vals[idx] == nil {
		if a.raws[idx] == nil {
			return goja.Undefined()
		}
		a.vals[idx] = a.in.member(a.raws[idx], &a.lazyNode)
	}
	return a.vals[idx]
}

func (a *lazyArray) Set(idx int, val goja.Value) bool {
	if idx < 0 {
		return false
	}
	a.touch()
	if idx >= len(a.vals) {
		a.SetLen(idx + 1)
	}
	a.vals[idx], a.raws[idx] = val, nil
	return true
}

func (a *lazyArray) SetLen(n int) bool {
	if n < 0 {
		return false
	}
	a.touch()
	if n <= len(a.vals) {
		a.vals, a.raws = a.vals[:n:n], a.raws[:n:n]
		return true
	}
	for len(a.vals) < n {
		a.vals = append(a.vals, goja.Undefined())
		a.raws = append(a.raws, nil)
	}
	return true
}

// maxNesting is how deep json.Valid lets containers nest.
const maxNesting = 10000

// skipValue moves past the value at s.pos, inside depth containers, without decoding it, and
// reports whether it is valid JSON as json.Valid judges it: JSON's grammar, strings without
// control characters and with valid escapes (invalid UTF-8 passes, as there), at most
// maxNesting containers deep. It stops right after the value.
func (s *jsonDecoder) skipValue(depth int) bool {
	var inline [64]byte
	open := inline[:0] // the '{' or '[' of each container open inside the value
	for {
		// A value starts here.
		if s.pos >= len(s.data) {
			return false
		}
		switch c := s.data[s.pos]; {
		case c == '{' || c == '[':
			s.pos++
			if depth+len(open) >= maxNesting {
				return false
			}
			s.skipSpace()
			if s.next(c + 2) { // '}' and ']' are two past '{' and '['
				break
			}
			open = append(open, c)
			if c == '{' && !s.skipKey() {
				return false
			}
			s.skipSpace()
			continue
		case c == '"':
			if !s.skipString() {
				return false
			}
		case c == 't':
			if !s.skipLiteral("true") {
				return false
			}
		case c == 'f':
			if !s.skipLiteral("false") {
				return false
			}
		case c == 'n':
			if !s.skipLiteral("null") {
				return false
			}
		case c == '-' || ('0' <= c && c <= '9'):
			if !s.skipNumber() {
				return false
			}
		default:
			return false
		}
		// A value ended: close what it ends, or go on to the next member.
		for {
			if len(open) == 0 {
				return true
			}
			s.skipSpace()
			top := open[len(open)-1]
			if s.next(',') {
				if top == '{' && !s.skipKey() {
					return false
				}
				s.skipSpace()
				break
			}
			if !s.next(top + 2) {
				return false
			}
			open = open[:len(open)-1]
		}
	}
}

// next moves past c if it is at s.pos.
func (s *jsonDecoder) next(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// skipKey moves past an object member's key and its colon, and the space around them.
func (s *jsonDecoder) skipKey() bool {
	s.skipSpace()
	if !s.skipString() {
		return false
	}
	s.skipSpace()
	return s.next(':')
}

// stringStop tells the bytes a string's scan stops at: its end, an escape, and the control
// characters JSON refuses in strings.
var stringStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// skipString moves past the string at s.pos.
func (s *jsonDecoder) skipString() bool {
	if !s.next('"') {
		return false
	}
	for s.pos < len(s.data) {
		for s.pos < len(s.data) && !stringStop[s.data[s.pos]] {
			s.pos++
		}
		if s.pos >= len(s.data) {
			return false
		}
		c := s.data[s.pos]
		s.pos++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if s.pos >= len(s.data) {
				return false
			}
			e := s.data[s.pos]
			s.pos++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if s.pos+4 > len(s.data) {
					return false
				}
				for _, h := range s.data[s.pos : s.pos+4] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				s.pos += 4
			default:
				return false
			}
		}
	}
	return false
}

func (s *jsonDecoder) skipLiteral(word string) bool {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(word)) {
		return false
	}
	s.pos += len(word)
	return true
}

// skipNumber moves past the number at s.pos: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonDecoder) skipNumber() bool {
	digits := func() bool {
		start := s.pos
		for s.pos < len(s.data) && '0' <= s.data[s.pos] && s.data[s.pos] <= '9' {
			s.pos++
		}
		return s.pos > start
	}
	s.next('-')
	if !s.next('0') && !digits() {
		return false
	}
	if s.next('.') && !digits() {
		return false
	}
	if s.next('e') || s.next('E') {
		if !s.next('+') {
			s.next('-')
		}
		return digits()
	}
	return true
}

func trimSpace(b []byte) []byte {
	s := jsonDecoder{data: b}
	s.skipSpace()
	b = b[s.pos:]
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
