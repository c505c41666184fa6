package sandbox

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"

	"github.com/dop251/goja"
	nodeerrors "github.com/dop251/goja_nodejs/errors"
	nodeurl "github.com/dop251/goja_nodejs/url"
)

// The library is what a script sees besides the ECMAScript built-ins and the core's
// console and apiClient: Buffer, URL, URLSearchParams, TextEncoder, TextDecoder, atob,
// btoa, crypto and webhooks (LIBRARY.md documents it for connector authors).
//
// Security boundary: nothing installed here reaches the host. There is no require,
// process or global; the goja_nodejs modules are instantiated by calling their loaders
// directly, so no module registry is ever reachable from JavaScript. The only host
// resources used are the clock (webhooks' replay windows, as Date already exposes) and
// crypto/rand.
//
// Every value is created per runtime and holds no state shared with other runtimes. On a
// pooled runtime the library is built on first use and then frozen with everything it
// reaches (harden.go), so a script cannot change it for the calls after its own. Built-ins
// that allocate a size the script chose are vetted by the runtime's allocCheck first.

// installLibrary installs the library globals on a fresh runtime as plain data properties
// and returns what the allowed imports resolve to. The library's own tests use it; a
// runtime made for a script builds the library lazily with buildLibrary (see harden.go).
func installLibrary(vm *goja.Runtime) (modules map[string]goja.Value, err error) {
	if err := pinErrorConstructors(vm); err != nil {
		return nil, fmt.Errorf("installing script library: %w", err)
	}
	var defineErr error
	define := func(name string, v goja.Value) {
		// Node's globals are writable, configurable and not enumerable; so are these.
		if err := vm.GlobalObject().DefineDataProperty(name, v, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil && defineErr == nil {
			defineErr = fmt.Errorf("defining global %s: %w", name, err)
		}
	}
	modules, err = buildLibrary(vm, define, nil)
	if err == nil {
		err = defineErr
	}
	return modules, err
}

// buildLibrary creates the library's objects on vm, hands each global to define (which
// must make it visible to vm.Get before returning: goja_nodejs looks the Buffer global up),
// and returns what the allowed imports resolve to: "crypto", "node:crypto", "buffer",
// "node:buffer". alloc, when not nil, vets every allocation the library makes at a
// script's request (Buffer.alloc(size), ...) before it is made.
func buildLibrary(vm *goja.Runtime, define func(name string, v goja.Value), alloc allocCheck) (modules map[string]goja.Value, err error) {
	// The goja_nodejs loaders and goja itself report failures by panicking with a
	// JavaScript value; on a fresh runtime that is a bug, but it must not take the host down.
	defer func() {
		if r := recover(); r != nil {
			modules, err = nil, fmt.Errorf("installing script library: %v", r)
		}
	}()

	l, err := newLibrary(vm)
	if err != nil {
		return nil, fmt.Errorf("installing script library: %w", err)
	}
	l.alloc = alloc

	bufferCtor, err := l.installBuffer(define)
	if err != nil {
		return nil, fmt.Errorf("installing Buffer: %w", err)
	}
	urlExports := loadNodeModule(vm, nodeurl.Require)

	atob, btoa := vm.ToValue(l.atob), vm.ToValue(l.btoa)
	crypto := l.newCrypto()
	globals := []struct {
		name  string
		value goja.Value
	}{
		{"URL", l.wrapURL(urlExports.Get("URL").ToObject(vm))},
		{"URLSearchParams", urlExports.Get("URLSearchParams")},
		{"TextEncoder", l.newTextEncoder()},
		{"TextDecoder", l.newTextDecoder()},
		{"atob", atob},
		{"btoa", btoa},
		{"crypto", crypto},
		{"webhooks", l.newWebhooks()},
	}
	for _, g := range globals {
		define(g.name, g.value)
	}

	bufferModule := vm.NewObject()
	for name, v := range map[string]goja.Value{"Buffer": bufferCtor, "atob": atob, "btoa": btoa} {
		if err := bufferModule.Set(name, v); err != nil {
			return nil, fmt.Errorf("building module buffer: %w", err)
		}
	}
	// esbuild turns imports into require() wrapped in __toESM, which, for an object
	// without __esModule, exposes the named members and the whole object as default; so
	// the plain objects serve both `import crypto from` and `import { createHmac } from`.
	return map[string]goja.Value{
		"crypto":      crypto,
		"node:crypto": crypto,
		"buffer":      bufferModule,
		"node:buffer": bufferModule,
	}, nil
}

// jsLibrary holds what the installers share on one runtime: built-ins captured at install
// time, so that a script replacing a global (ArrayBuffer.isView, Uint8Array) cannot change
// how the library reads its arguments.
type jsLibrary struct {
	vm             *goja.Runtime
	uint8Array     goja.Constructor
	isView         goja.Callable
	errorCtor      goja.Constructor
	rangeErrorCtor goja.Constructor
	wrapBytes      func([]byte) *goja.Object // makes a Buffer; set by installBuffer
	alloc          allocCheck                // vets allocations a script asks for; nil: no limit
}

// checkAlloc vets an allocation of n bytes that a script asked what for; see allocCheck.
func (l *jsLibrary) checkAlloc(n float64, what string) bool {
	return l.alloc == nil || l.alloc(n, what)
}

func newLibrary(vm *goja.Runtime) (*jsLibrary, error) {
	u8, ok := goja.AssertConstructor(vm.Get("Uint8Array"))
	if !ok {
		return nil, fmt.Errorf("finding Uint8Array: not a constructor")
	}
	ab := vm.Get("ArrayBuffer")
	if ab == nil {
		return nil, fmt.Errorf("finding ArrayBuffer: missing")
	}
	isView, ok := goja.AssertFunction(ab.ToObject(vm).Get("isView"))
	if !ok {
		return nil, fmt.Errorf("finding ArrayBuffer.isView: not a function")
	}
	errorCtor, ok1 := goja.AssertConstructor(vm.Get("Error"))
	rangeErrorCtor, ok2 := goja.AssertConstructor(vm.Get("RangeError"))
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("finding Error and RangeError: not constructors")
	}
	return &jsLibrary{vm: vm, uint8Array: u8, isView: isView, errorCtor: errorCtor, rangeErrorCtor: rangeErrorCtor}, nil
}

// newError returns an exception made by ctor (captured at install time, unaffected by what
// a script does to the globals) with Node's code property when code is not empty.
func (l *jsLibrary) newError(ctor goja.Constructor, code, format string, args ...any) *goja.Object {
	msg := fmt.Sprintf(format, args...)
	e, err := ctor(nil, l.vm.ToValue(msg))
	if err != nil {
		e = l.vm.NewTypeError(msg)
	}
	if code != "" {
		_ = e.Set("code", code)
	}
	return e
}

// pinErrorConstructors makes the global Error, TypeError and RangeError read-only and
// undeletable. goja_nodejs builds some of its exceptions by looking these globals up when
// it throws, and dereferences nil when a script has deleted them: a script could crash the
// host. No script has a reason to replace them.
func pinErrorConstructors(vm *goja.Runtime) error {
	for _, name := range []string{"Error", "TypeError", "RangeError"} {
		if err := vm.GlobalObject().DefineDataProperty(name, vm.Get(name), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE); err != nil {
			return fmt.Errorf("pinning %s: %w", name, err)
		}
	}
	return nil
}

// loadNodeModule runs a goja_nodejs module loader against a fresh module object and
// returns its exports, without a require registry.
func loadNodeModule(vm *goja.Runtime, load func(*goja.Runtime, *goja.Object)) *goja.Object {
	module := vm.NewObject()
	exports := vm.NewObject()
	_ = module.Set("exports", exports) // cannot fail on a fresh ordinary object
	load(vm, module)
	return module.Get("exports").ToObject(vm)
}

var typeArrayBuffer = reflect.TypeFor[goja.ArrayBuffer]()

// bytesOf returns the bytes an ArrayBuffer, typed array, DataView or Buffer views. The
// slice aliases the JavaScript memory: callers read it immediately or copy it.
func (l *jsLibrary) bytesOf(v goja.Value) ([]byte, bool) {
	o, ok := v.(*goja.Object)
	if !ok {
		return nil, false
	}
	if o.ExportType() == typeArrayBuffer {
		return o.Export().(goja.ArrayBuffer).Bytes(), true
	}
	isView, err := l.isView(goja.Undefined(), o)
	if err != nil || !isView.ToBoolean() {
		return nil, false
	}
	var b []byte
	if err := l.vm.ExportTo(o, &b); err != nil {
		return nil, false
	}
	return b, true
}

// dataArg returns the bytes of a string (encoded with enc, UTF-8 when undefined) or of a
// binary value, the way Node's crypto and Buffer functions accept data. It throws a
// TypeError for anything else, naming the argument.
func (l *jsLibrary) dataArg(v, enc goja.Value, name string) []byte {
	if goja.IsString(v) {
		return encodeString(v, l.encodingArg(enc, encUTF8))
	}
	if b, ok := l.bytesOf(v); ok {
		return b
	}
	panic(nodeerrors.NewTypeError(l.vm, nodeerrors.ErrCodeInvalidArgType,
		"The %q argument must be of type string or an instance of Buffer, TypedArray, DataView or ArrayBuffer", name))
}

// newUint8Array returns a Uint8Array (not a Buffer) over b, which it takes ownership of.
func (l *jsLibrary) newUint8Array(b []byte) *goja.Object {
	o, err := l.uint8Array(nil, l.vm.ToValue(l.vm.NewArrayBuffer(b)))
	if err != nil {
		panic(err)
	}
	return o
}

// setMethods defines Go functions as methods of o: writable, configurable and not
// enumerable, like built-in methods. Defining (not assigning) also shadows a method o
// inherits from a frozen prototype (Buffer's from and toString over Uint8Array's).
func (l *jsLibrary) setMethods(o *goja.Object, methods map[string]any) {
	for name, fn := range methods {
		_ = o.DefineDataProperty(name, l.vm.ToValue(fn), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	}
}

// wrapURL returns a URL constructor that resolves new URL(input, base) with net/url's RFC
// 3986 reference resolution before handing goja_nodejs's constructor an absolute URL: that
// constructor cleans both paths before resolving, so "c" against "https://e.com/a/b/"
// came out as "https://e.com/c". It also puts back the trailing slash goja_nodejs's
// path.Clean drops ("https://e.com/a/" has pathname "/a/", as in Node), here and in the
// pathname and href setters. goja_nodejs's accessors cannot be redefined, so instances get
// a prototype of our own, inheriting from the original, that shadows those two setters;
// instanceof URL holds, and so does it for subclasses.
func (l *jsLibrary) wrapURL(native *goja.Object) *goja.Object {
	vm := l.vm
	construct, ok := goja.AssertConstructor(native)
	if !ok {
		return native
	}
	nativeProto := native.Get("prototype").ToObject(vm)
	proto := vm.NewObject()
	_ = proto.SetPrototype(nativeProto)
	w := vm.ToValue(func(call goja.ConstructorCall) *goja.Object {
		args := call.Arguments
		if len(args) > 1 && !goja.IsUndefined(args[1]) {
			if abs, ok := resolveURL(args[0].String(), args[1].String()); ok {
				args = []goja.Value{vm.ToValue(abs)}
			}
		}
		o, err := construct(nil, args...)
		if err != nil {
			panic(err)
		}
		if len(args) > 0 {
			keepTrailingSlash(o, urlPath(args[0].String()))
		}
		_ = o.SetPrototype(call.This.Prototype())
		return o
	}).ToObject(vm)
	_ = w.DefineDataProperty("prototype", proto, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE)
	_ = proto.DefineDataProperty("constructor", w, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	l.wrapURLSetter(nativeProto, proto, "pathname", func(v string) string { return v })
	l.wrapURLSetter(nativeProto, proto, "href", urlPath)
	return w
}

// wrapURLSetter defines on proto an accessor name that reads as native's and, assigned,
// runs native's setter and keeps the trailing slash of the path pathOf finds in the value.
func (l *jsLibrary) wrapURLSetter(native, proto *goja.Object, name string, pathOf func(string) string) {
	vm := l.vm
	gopd, ok := goja.AssertFunction(vm.Get("Object").ToObject(vm).Get("getOwnPropertyDescriptor"))
	if !ok {
		return
	}
	d, err := gopd(goja.Undefined(), native, vm.ToValue(name))
	if err != nil || goja.IsUndefined(d) {
		return
	}
	desc := d.ToObject(vm)
	set, ok := goja.AssertFunction(desc.Get("set"))
	if !ok {
		return
	}
	setter := vm.ToValue(func(call goja.FunctionCall) goja.Value {
		must(set(call.This, call.Argument(0)))
		if o, ok := call.This.(*goja.Object); ok {
			keepTrailingSlash(o, pathOf(call.Argument(0).String()))
		}
		return goja.Undefined()
	})
	_ = proto.DefineAccessorProperty(name, desc.Get("get"), setter, goja.FLAG_TRUE, goja.FLAG_TRUE)
}

// urlPath is the path of a URL string, "" when it does not parse.
func urlPath(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Path
}

// keepTrailingSlash appends the slash path.Clean took from o's path when want (the path
// as given) ends with one, or with a "." or ".." segment, which WHATWG resolves to a
// directory. o is a goja_nodejs URL: a Go *nodeURL whose url field is reached through
// reflection (the type is unexported); anything else is left alone.
func keepTrailingSlash(o *goja.Object, want string) {
	if !strings.HasSuffix(want, "/") && !strings.HasSuffix(want, "/.") && !strings.HasSuffix(want, "/..") {
		return
	}
	u := nativeURL(o)
	if u == nil || u.Path == "" || strings.HasSuffix(u.Path, "/") {
		return
	}
	u.Path += "/"
	if u.RawPath != "" {
		u.RawPath += "/"
	}
}

var typeURLPointer = reflect.TypeFor[*url.URL]()

// nativeURL returns the *url.URL a goja_nodejs URL object holds, or nil.
func nativeURL(o *goja.Object) *url.URL {
	v := reflect.ValueOf(o.Export())
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	f := v.Elem().FieldByName("url")
	if !f.IsValid() || f.Type() != typeURLPointer || f.IsNil() {
		return nil
	}
	return (*url.URL)(f.UnsafePointer())
}

// resolveURL resolves ref against an absolute base; false when either does not parse, so
// the caller lets the original constructor report the error.
func resolveURL(ref, base string) (string, bool) {
	b, err := url.Parse(base)
	if err != nil || !b.IsAbs() {
		return "", false
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", false
	}
	return b.ResolveReference(r).String(), true
}
