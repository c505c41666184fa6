package sandbox

import (
	"errors"
	"fmt"
	"slices"

	"github.com/dop251/goja"
)

// Hardening is what keeps one call from changing what the next call on the same runtime
// sees. A pooled runtime runs many calls of one script (one integration's webhook), and
// every JavaScript object the runtime starts with is shared by all of them: were
// Object.prototype, JSON.parse or crypto.createHmac writable, a call that assigned to them
// (deliberately, or through a prototype-pollution bug fed by a webhook body) would change
// how every later call behaves.
//
// So, before any script code runs:
//
//   - the global object holds exactly allowedGlobals, each one non-writable and
//     non-configurable, and the global object is frozen: no global can be added, replaced
//     or deleted. It is not goja's global object but a new one isolate puts in its place
//     (see isolate): goja's stays reachable from Go alone;
//   - every object reachable from the globals — through own properties (values, getters
//     and setters) and prototypes — is frozen, and so are the intrinsics reachable only
//     through syntax or instances (iterator and generator prototypes, %ThrowTypeError%);
//   - a few prototype properties that ordinary code assigns on its own objects (toString,
//     constructor, an Error's name and message, ...) become accessors whose setter defines
//     the property on the receiver, so freezing the prototype does not break
//     `this.name = 'MyError'` (the "override mistake"; SES's enablements do the same).
//
// Freezing an intrinsic makes goja materialise it (goja builds globals and built-in
// methods lazily), which costs memory on every pooled runtime: an idle pooled runtime
// holds about 340 KB, against 160 KB for one whose intrinsics stay writable, and about
// 660 KB once every family below is frozen too (BenchmarkIdleRuntime). Freezing
// Array.prototype alone costs 38 KiB on a bare runtime, and what syntax alone reaches 188
// KiB (BenchmarkFreezeCost). The other way to isolate calls, a fresh runtime per call,
// costs at least 34 µs more per call than a pooled one (BenchmarkFreshRuntimeFloor), more
// than a third of what an ingest request costs in all.
//
// Intrinsics a script can reach without naming a global — Object, Function, Array,
// String, Number, Boolean, Symbol, BigInt, Promise, RegExp, the errors, JSON, Reflect — are
// frozen when the runtime is made. The others (Math, Date, Map and Set, Proxy, the binary types and the
// whole script library) sit behind a getter on the global object that, on first access,
// builds, prepares and freezes that family before handing it out; a family a script never
// names is never built. Every path to such an intrinsic goes through its global (or
// through a family frozen with it), so no script ever holds a reference to an unfrozen
// one. The getter takes the family's originals from goja's own global object, which no
// script can reach: what it reads there is what goja built, whatever scripts did before.
//
// State a script keeps in its own module scope (top-level let and const) is not touched:
// it lives as long as the runtime, within one pool, which is one integration's webhook.
//
// Freezing is for runtimes that serve more than one call: a Pool's, and the scratch
// runtime Compile evaluates the module on (so a module whose top-level code assigns to a
// built-in fails at load, not on its first request). A runtime that serves a single call
// (Script.CallOnce) gets the same allow-listed, frozen global object, but its intrinsics
// stay writable: nothing done to them outlives the call, and freezing costs ~7 ms.

// allowedGlobals is every global a script sees, in the order isolate defines them; no
// other global of goja's reaches the script's global object (goja's GoError, for one). It
// is the ECMAScript built-ins goja provides and the script library.
var allowedGlobals = []string{
	// Values and functions.
	"globalThis", "Infinity", "NaN", "undefined", "eval", "isFinite", "isNaN", "parseFloat",
	"parseInt", "decodeURI", "decodeURIComponent", "encodeURI", "encodeURIComponent",
	"escape", "unescape",
	// Fundamental objects, numbers, text, errors.
	"Object", "Function", "Boolean", "Symbol", "Number", "BigInt", "Math", "Date", "String",
	"RegExp", "Error", "AggregateError", "EvalError", "RangeError", "ReferenceError",
	"SyntaxError", "TypeError", "URIError",
	// Collections and binary data.
	"Array", "Map", "Set", "WeakMap", "WeakSet", "ArrayBuffer", "DataView", "Int8Array",
	"Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array",
	"Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array",
	// Structured data, control abstraction, reflection.
	"JSON", "Promise", "Reflect", "Proxy",
	// The runtime's and the library's.
	"console", "URL", "URLSearchParams", "TextEncoder", "TextDecoder", "atob", "btoa",
	"Buffer", "crypto", "webhooks",
}

// Lazily frozen families: the globals of a family are prepared and frozen together on the
// first access to any of them. A family lists the globals whose intrinsics can reach one
// another (a Uint8Array's buffer is an ArrayBuffer). The binary types and the library are
// one family: the library is built on the binary types (a Buffer is a Uint8Array) and
// defines methods that shadow theirs, which it cannot do once they are frozen.
var (
	familyMath        = []string{"Math"}
	familyDate        = []string{"Date"}
	familyCollections = []string{"Map", "Set", "WeakMap", "WeakSet"}
	familyProxy       = []string{"Proxy"}
	familyBinary      = []string{"ArrayBuffer", "DataView", "Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array",
		"Uint16Array", "Int32Array", "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"}
	familyLibrary = append(slices.Clip(familyBinary),
		"URL", "URLSearchParams", "TextEncoder", "TextDecoder", "atob", "btoa", "Buffer", "crypto", "webhooks")
)

// hardenSource is compiled once per process and run first on every runtime, before any
// other code: it captures the functions it uses while they are still the originals.
// It returns {harden(roots), enableOverrides(), coreRoots(), freezeGlobal(),
// hidden: {family: () => roots}}.
//
// harden freezes every object reachable from roots. An object already frozen is taken as
// done: every completed walk freezes all it reaches, so a frozen intrinsic's closure is
// frozen too. Objects that cannot be frozen (Go values wrapped by goja_nodejs) are
// skipped: they have no writable JavaScript state.
const hardenSource = `(function () {
'use strict'
const freeze = Object.freeze, isFrozen = Object.isFrozen, getPrototypeOf = Object.getPrototypeOf
const getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor, defineProperty = Object.defineProperty
const ownKeys = Reflect.ownKeys, TypeErrorCtor = TypeError, StringCtor = String

function harden(roots) {
  const todo = []
  for (let i = 0; i < roots.length; i++) todo[todo.length] = roots[i]
  while (todo.length > 0) {
    const o = todo[todo.length - 1]
    todo.length--
    if ((typeof o !== 'object' && typeof o !== 'function') || o === null || isFrozen(o)) continue
    try { freeze(o) } catch (e) { continue }
    todo[todo.length] = getPrototypeOf(o)
    const keys = ownKeys(o)
    for (let i = 0; i < keys.length; i++) {
      const d = getOwnPropertyDescriptor(o, keys[i])
      if (d === undefined) continue
      if ('value' in d) todo[todo.length] = d.value
      else { todo[todo.length] = d.get; todo[todo.length] = d.set }
    }
  }
}

// enableOverride turns obj[key] into an accessor that reads as the original value and,
// assigned on an object inheriting it, defines the property on that object, as assigning
// to a writable inherited property would. Assigning on obj itself throws as on a frozen
// object.
function enableOverride(obj, key) {
  const d = getOwnPropertyDescriptor(obj, key)
  if (d === undefined || !('value' in d) || !d.writable) return
  const value = d.value
  // Methods, not function expressions: they have no prototype object to allocate.
  defineProperty(obj, key, {
    get() { return value },
    set(v) {
      if (this === obj) throw new TypeErrorCtor("Cannot assign to read only property '" + StringCtor(key) + "' of object")
      defineProperty(this, key, { value: v, writable: true, enumerable: true, configurable: true })
    },
    enumerable: d.enumerable,
    configurable: false,
  })
}

function enableOverrides() {
  const errors = [Error, AggregateError, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError]
  const list = [
    [Object.prototype, ['constructor', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', 'toString', 'valueOf']],
    [Function.prototype, ['constructor', 'toString', 'bind', 'call', 'apply']],
    [Array.prototype, ['toString', 'push', 'concat']],
    [Error.prototype, ['toString']],
  ]
  for (let i = 0; i < errors.length; i++) list[list.length] = [errors[i].prototype, ['constructor', 'name', 'message']]
  for (let i = 0; i < list.length; i++) {
    const keys = list[i][1]
    for (let j = 0; j < keys.length; j++) enableOverride(list[i][0], keys[j])
  }
}

// The intrinsics reachable without naming a lazily frozen global, including those only
// reachable through instances: iterators, generators, async functions, %ThrowTypeError%.
function coreRoots() {
  return [
    globalThis,
    getPrototypeOf([][Symbol.iterator]()),
    getPrototypeOf(''[Symbol.iterator]()),
    getPrototypeOf('a'.matchAll(/a/g)),
    getPrototypeOf(function* () {}),
    getPrototypeOf(async function () {}),
    getOwnPropertyDescriptor((function () { return arguments })(), 'callee').get,
  ]
}

// The originals are passed in, from goja's own global object: reading them here, when the
// runtime is made, would build Map and Set on every runtime.
const hidden = {
  Map: function (MapCtor, SetCtor) { return [getPrototypeOf(new MapCtor().entries()), getPrototypeOf(new SetCtor().values())] },
}

function freezeGlobal() { freeze(globalThis) }

return { harden: harden, enableOverrides: enableOverrides, coreRoots: coreRoots, freezeGlobal: freezeGlobal, hidden: hidden }
})()`

// hardenProgram is immutable once compiled and may run on any number of runtimes.
var hardenProgram = goja.MustCompile("sandbox-harden.js", hardenSource, true)

// hardener is one runtime's copy of the functions hardenSource returns.
type hardener struct {
	harden          goja.Callable
	enableOverrides goja.Callable
	coreRoots       goja.Callable
	freezeGlobal    goja.Callable
	hidden          *goja.Object
}

func newHardener(vm *goja.Runtime) (*hardener, error) {
	v, err := vm.RunProgram(hardenProgram)
	if err != nil {
		return nil, err
	}
	obj := v.ToObject(vm)
	h := &hardener{hidden: obj.Get("hidden").ToObject(vm)}
	for name, dst := range map[string]*goja.Callable{"harden": &h.harden, "enableOverrides": &h.enableOverrides, "coreRoots": &h.coreRoots, "freezeGlobal": &h.freezeGlobal} {
		f, ok := goja.AssertFunction(obj.Get(name))
		if !ok {
			return nil, fmt.Errorf("%s is not a function", name)
		}
		*dst = f
	}
	return h, nil
}

// freeze hardens roots (goja values) and their closure.
func (h *hardener) freeze(vm *goja.Runtime, roots ...goja.Value) error {
	_, err := h.harden(goja.Undefined(), vm.NewArray(anySlice(roots)...))
	return err
}

func anySlice(vs []goja.Value) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// family is a set of globals prepared and frozen together on first access.
type family struct {
	names []string
	// prepare runs once, before the family is frozen: it installs guards, builds library
	// objects, and records the globals' final values with define. It returns extra roots to
	// freeze (intrinsics reachable only through instances) and, for the library, modules.
	prepare func(define func(name string, v goja.Value)) ([]goja.Value, error)

	state  familyState
	values map[string]goja.Value
	err    error
}

type familyState uint8

const (
	familyIdle familyState = iota
	familyBuilding
	familyReady
	familyFailed
)

// errFamily is a lazily frozen family that failed to build; the call that touched it
// fails and the runtime is discarded.
var errFamily = errors.New("preparing a global failed")

// lazyGlobal returns the getter installed for name: it builds f on first use. While f is
// being built (its preparation reads its own globals: goja_nodejs looks the Buffer global
// up), the values recorded so far are returned.
func (in *instance) lazyGlobal(f *family, name string) func(goja.FunctionCall) goja.Value {
	return func(goja.FunctionCall) goja.Value {
		switch f.state {
		case familyIdle:
			in.buildFamily(f)
		case familyFailed:
			panic(in.vm.NewTypeError("%s is not available: %v", name, f.err))
		}
		if v, ok := f.values[name]; ok {
			return v
		}
		return goja.Undefined()
	}
}

func (in *instance) buildFamily(f *family) {
	f.state = familyBuilding
	f.values = map[string]goja.Value{}
	fail := func(err error) {
		f.state, f.err = familyFailed, err
		in.broken = true // a half-frozen family must not serve another call
		panic(in.vm.NewTypeError("%v: %v", errFamily, err))
	}
	extra, err := f.prepare(func(name string, v goja.Value) { f.values[name] = v })
	if err != nil {
		fail(err)
	}
	if !in.frozen {
		f.state = familyReady
		return
	}
	roots := extra
	for _, n := range f.names {
		if v, ok := f.values[n]; ok {
			roots = append(roots, v)
		}
	}
	if err := in.hardener.freeze(in.vm, roots...); err != nil {
		// An interrupt or a stack overflow landing mid-walk: rethrow it as is.
		in.broken = true
		f.state, f.err = familyFailed, err
		panic(err)
	}
	f.state = familyReady
}

// isolate makes the runtime's global scope what hardening describes. It runs on a fresh
// runtime after the hardener, the console and the guards are in place; lazy maps each
// lazily frozen global to its family.
//
// goja's global object is not the one scripts see: isolate makes a new, ordinary object
// holding exactly allowedGlobals and makes it the runtime's global object. goja creates
// its globals lazily, on first access to the property, and any change to the property
// (deleting it, redefining it, listing the global object's keys) creates it first; a new
// global object leaves every global nobody names unbuilt. The core globals are copied
// from goja's (and so built now: they are frozen now); a lazily frozen family's getter
// reads its originals from goja's global object on first access. That object is
// unreachable from JavaScript once replaced: globalThis, a sloppy function's this and
// (0, eval)('this') are all the new one, and nothing goja builds refers to the old one. A
// global goja may add in a later version is simply never copied.
func (in *instance) isolate(lazy map[string]*family) error {
	vm := in.vm
	builtins := vm.GlobalObject()
	global := vm.NewObject()
	for _, name := range allowedGlobals {
		var err error
		if f, ok := lazy[name]; ok {
			err = global.DefineAccessorProperty(name, vm.ToValue(in.lazyGlobal(f, name)), nil, goja.FLAG_FALSE, goja.FLAG_FALSE)
		} else {
			v := builtins.Get(name)
			if name == "globalThis" {
				v = global
			}
			if v == nil {
				return fmt.Errorf("global %s is missing", name)
			}
			// Node's globals are not enumerable; none of these is.
			err = global.DefineDataProperty(name, v, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE)
		}
		if err != nil {
			return fmt.Errorf("pinning global %s: %w", name, err)
		}
	}
	// Node's global object and goja's have Symbol.toStringTag ("global"), not writable.
	if err := global.DefineDataPropertySymbol(goja.SymToStringTag, builtins.GetSymbol(goja.SymToStringTag), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
		return fmt.Errorf("pinning Symbol.toStringTag: %w", err)
	}
	vm.SetGlobalObject(global)
	if !in.frozen {
		// A runtime that serves one call keeps its intrinsics writable: nothing it
		// changes outlives the call. Its global scope is still fixed.
		if _, err := in.hardener.freezeGlobal(goja.Undefined()); err != nil {
			return fmt.Errorf("freezing the global object: %w", err)
		}
		return nil
	}
	if _, err := in.hardener.enableOverrides(goja.Undefined()); err != nil {
		return fmt.Errorf("enabling overrides: %w", err)
	}
	roots, err := in.hardener.coreRoots(goja.Undefined())
	if err != nil {
		return fmt.Errorf("listing intrinsics: %w", err)
	}
	if _, err := in.hardener.harden(goja.Undefined(), roots); err != nil {
		return fmt.Errorf("freezing intrinsics: %w", err)
	}
	return nil
}
