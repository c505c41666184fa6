package sandbox

import (
	"slices"
	"testing"

	"github.com/dop251/goja"
)

// gojaGlobalNames is every global goja defines, as of the goja version in go.mod. isolate
// copies only allowedGlobals from goja's global object, so a global a later goja adds is
// not exposed; this list makes such a global fail TestGojaGlobals, so someone decides
// whether scripts should have it.
var gojaGlobalNames = []string{
	"Object", "Function", "Array", "String", "Number", "BigInt", "RegExp", "Date", "Boolean",
	"Proxy", "Reflect", "Error", "AggregateError", "TypeError", "ReferenceError", "SyntaxError",
	"RangeError", "EvalError", "URIError", "GoError", "eval", "Math", "JSON", "ArrayBuffer",
	"DataView", "Uint8Array", "Uint8ClampedArray", "Int8Array", "Uint16Array", "Int16Array",
	"Uint32Array", "Int32Array", "Float32Array", "Float64Array", "BigInt64Array",
	"BigUint64Array", "Symbol", "WeakSet", "WeakMap", "Map", "Set", "Promise", "globalThis",
	"NaN", "undefined", "Infinity", "isNaN", "parseInt", "parseFloat", "isFinite", "decodeURI",
	"decodeURIComponent", "encodeURI", "encodeURIComponent", "escape", "unescape",
}

// TestGojaGlobals: goja's global object holds exactly gojaGlobalNames, and every allowed global
// is goja's or the sandbox's own (the console and the library).
func TestGojaGlobals(t *testing.T) {
	got := goja.New().GlobalObject().GetOwnPropertyNames()
	slices.Sort(got)
	want := slices.Clone(gojaGlobalNames)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("goja's globals changed: decide whether scripts get the new ones (allowedGlobals), then update gojaGlobalNames\ngot  %v\nwant %v", got, want)
	}
	for _, name := range allowedGlobals {
		own := name == "console" || (slices.Contains(familyLibrary, name) && !slices.Contains(familyBinary, name))
		if !own && !slices.Contains(got, name) {
			t.Errorf("allowed global %s is not goja's", name)
		}
	}
}

// TestIsolatedGlobalObject: once a runtime is made, before any script runs, its global
// object holds exactly allowedGlobals, none writable, enumerable or configurable, is frozen,
// and is what every way of naming the global object yields. It holds no symbol but
// Symbol.toStringTag.
func TestIsolatedGlobalObject(t *testing.T) {
	s := mustCompile(t, `export default () => 1`)
	for _, frozen := range []bool{true, false} {
		in, err := newInstance(s, discardLogger(), Limits{}, frozen)
		if err != nil {
			t.Fatal(err)
		}
		global := in.vm.GlobalObject()
		names := global.GetOwnPropertyNames()
		if !slices.Equal(names, allowedGlobals) {
			t.Errorf("frozen=%v: globals\n%v\nwant\n%v", frozen, names, allowedGlobals)
		}
		v, err := in.vm.RunString(`(function () {
  'use strict'
  const g = globalThis
  const sloppy = Function('return this')()
  const ok = [sloppy === g, (0, eval)('this') === g, ({}).constructor.constructor('return this')() === g,
    Object.isFrozen(g), Object.prototype.toString.call(g) === '[object global]',
    Object.getOwnPropertySymbols(g).length === 1]
  for (const name of Object.getOwnPropertyNames(g)) {
    const d = Object.getOwnPropertyDescriptor(g, name)
    ok.push(!d.enumerable && !d.configurable && d.writable !== true)
  }
  return ok.every(x => x)
})()`)
		if err != nil {
			t.Fatal(err)
		}
		if !v.ToBoolean() {
			t.Errorf("frozen=%v: the global object is not isolated", frozen)
		}
	}
}
