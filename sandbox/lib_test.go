package sandbox

import (
	"strings"
	"testing"

	"github.com/dop251/goja"
)

// newLibRuntime returns a fresh runtime with the library installed, and the modules it
// returned. It stands apart from Compile so the library is tested on its own.
func newLibRuntime(t testing.TB) (*goja.Runtime, map[string]goja.Value) {
	t.Helper()
	vm := goja.New()
	modules, err := installLibrary(vm)
	if err != nil {
		t.Fatalf("installLibrary: %v", err)
	}
	return vm, modules
}

// runLib runs src on a fresh library runtime and returns its completion value exported to
// Go; a thrown exception fails the test.
func runLib(t testing.TB, src string) any {
	t.Helper()
	vm, _ := newLibRuntime(t)
	v, err := vm.RunString(src)
	if err != nil {
		t.Fatalf("running %q: %v", src, err)
	}
	return v.Export()
}

// libThrows runs src and returns the thrown exception's "name: message" (and code when
// set), failing the test when nothing is thrown.
func libThrows(t testing.TB, src string) string {
	t.Helper()
	vm, _ := newLibRuntime(t)
	v, err := vm.RunString("(() => { try { " + src + "; } catch (e) { return `${e.name}: ${e.code ?? ''}: ${e.message}` } return 'no exception' })()")
	if err != nil {
		t.Fatalf("running %q: %v", src, err)
	}
	s := v.String()
	if s == "no exception" {
		t.Fatalf("%q threw nothing", src)
	}
	return s
}

func TestLibGlobals(t *testing.T) {
	vm, _ := newLibRuntime(t)
	for _, name := range []string{"Buffer", "URL", "URLSearchParams", "TextEncoder", "TextDecoder", "atob", "btoa", "crypto", "webhooks"} {
		t.Run(name, func(t *testing.T) {
			if v := vm.Get(name); v == nil || goja.IsUndefined(v) {
				t.Fatalf("global %s is missing", name)
			}
		})
	}
	// Nothing that reaches the host or loads code: not require, not process, and not the
	// Node alias of the global object.
	for _, name := range []string{"require", "process", "global", "module", "exports", "setTimeout", "setInterval", "fetch"} {
		t.Run("no "+name, func(t *testing.T) {
			got := runLib(t, "typeof globalThis["+`"`+name+`"`+"]")
			if got != "undefined" {
				t.Fatalf("typeof %s = %v, want undefined", name, got)
			}
		})
	}
}

// TestLibGlobalsNotEnumerable checks the library globals are defined like Node's: not
// enumerable, so a script listing globalThis sees no more than in Node.
func TestLibGlobalsNotEnumerable(t *testing.T) {
	got := runLib(t, "Object.keys(globalThis).join(',')")
	if got != "" {
		t.Fatalf("enumerable globals: %v", got)
	}
}

// TestLibModules checks each import resolves to an object that works both as a namespace
// (named members) and as a default import (esbuild's __toESM treats a module without
// __esModule as its own default).
func TestLibModules(t *testing.T) {
	vm, modules := newLibRuntime(t)
	tests := []struct {
		name   string
		member string
		same   string // the global the member must be
	}{
		{"crypto", "createHmac", ""},
		{"node:crypto", "timingSafeEqual", ""},
		{"buffer", "Buffer", "Buffer"},
		{"node:buffer", "Buffer", "Buffer"},
		{"buffer", "atob", "atob"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"."+tt.member, func(t *testing.T) {
			m, ok := modules[tt.name].(*goja.Object)
			if !ok {
				t.Fatalf("module %q is %v, want an object", tt.name, modules[tt.name])
			}
			if _, ok := goja.AssertFunction(m.Get(tt.member)); !ok {
				t.Fatalf("module %q has no function %s", tt.name, tt.member)
			}
			if tt.same != "" && !m.Get(tt.member).StrictEquals(vm.Get(tt.same)) {
				t.Fatalf("module %q's %s is not the global %s", tt.name, tt.member, tt.same)
			}
		})
	}
	if len(modules) != 4 {
		t.Errorf("modules = %d entries, want 4", len(modules))
	}
	if !modules["crypto"].StrictEquals(vm.Get("crypto")) {
		t.Errorf("module crypto is not the global crypto")
	}

	// What esbuild emits for `import crypto from 'node:crypto'` and for named imports.
	if err := vm.Set("require", func(name string) goja.Value { return modules[name] }); err != nil {
		t.Fatal(err)
	}
	defer vm.GlobalObject().Delete("require")
	v, err := vm.RunString(`
		var __create = Object.create, __defProp = Object.defineProperty, __getProtoOf = Object.getPrototypeOf;
		var __getOwnPropNames = Object.getOwnPropertyNames, __hasOwnProp = Object.prototype.hasOwnProperty;
		var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
		var __copyProps = (to, from, except, desc) => {
		  if (from && typeof from === "object" || typeof from === "function") {
		    for (let key of __getOwnPropNames(from))
		      if (!__hasOwnProp.call(to, key) && key !== except)
		        __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
		  }
		  return to;
		};
		var __toESM = (mod, isNodeMode, target) => (target = mod != null ? __create(__getProtoOf(mod)) : {}, __copyProps(
		  isNodeMode || !mod || !mod.__esModule ? __defProp(target, "default", { value: mod, enumerable: true }) : target, mod));
		var import_node_crypto = __toESM(require("node:crypto"));
		var import_buffer = require("node:buffer");
		var import_crypto = require("crypto");
		[
		  import_node_crypto.default.createHmac("sha256", "k").update("m").digest("hex"),
		  (0, import_crypto.createHmac)("sha256", "k").update("m").digest("hex"),
		  import_buffer.Buffer.from("hi").toString("hex"),
		].join(" ")`)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Fields(v.String())
	if len(parts) != 3 || parts[0] != parts[1] || parts[2] != "6869" || len(parts[0]) != 64 {
		t.Fatalf("esbuild-style imports gave %q", v.String())
	}
}

// TestLibRuntimesIndependent checks a script changing the library on one runtime leaves
// another runtime's library alone (runtimes are pooled per script, never shared).
func TestLibRuntimesIndependent(t *testing.T) {
	a, _ := newLibRuntime(t)
	b, _ := newLibRuntime(t)
	if _, err := a.RunString(`crypto.createHmac = () => "evil"; Buffer.from = null`); err != nil {
		t.Fatal(err)
	}
	v, err := b.RunString(`typeof crypto.createHmac("sha256", "k").update === "function" && typeof Buffer.from === "function"`)
	if err != nil {
		t.Fatal(err)
	}
	if !v.ToBoolean() {
		t.Fatal("changes on one runtime leaked into another")
	}
}

// TestLibErrorConstructorsPinned checks a script cannot remove the error constructors the
// library and goja_nodejs throw with: deleting them used to make a throw dereference nil
// and crash the host.
func TestLibErrorConstructorsPinned(t *testing.T) {
	tests := []struct {
		name, js, want string
	}{
		{"delete then RangeError", `"use strict"; try { delete globalThis.RangeError } catch (e) {} try { delete globalThis.Error } catch (e) {}
			try { crypto.timingSafeEqual(Buffer.from("a"), Buffer.from("ab")) } catch (e) { e.name + ":" + e.code }`, "RangeError:ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH"},
		{"sloppy delete is refused", `delete globalThis.Error; typeof Error`, "function"},
		{"assignment is refused", `Error = 1; typeof Error`, "function"},
		{"goja_nodejs concat range error", `delete globalThis.RangeError; try { Buffer.concat([Buffer.from("a")], -1) } catch (e) { e.name }`, "RangeError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runLib(t, tt.js); got != tt.want {
				t.Fatalf("%s = %v, want %s", tt.js, got, tt.want)
			}
		})
	}
}

// TestURLTrailingSlash: paths keep their trailing slash, as in Node (goja_nodejs's
// path.Clean drops it), through the constructor and the pathname and href setters.
func TestURLTrailingSlash(t *testing.T) {
	tests := []struct{ src, want string }{
		{"new URL('https://e.com/a/').pathname", "/a/"},
		{"new URL('https://e.com/a/?q=1#f').href", "https://e.com/a/?q=1#f"},
		{"new URL('https://e.com/a/b/.').pathname", "/a/b/"},
		{"new URL('https://e.com/a/b/..').pathname", "/a/"},
		{"new URL('https://e.com').pathname", "/"},
		{"new URL('https://e.com/a').pathname", "/a"},
		{"new URL('c/', 'https://e.com/a/b/').pathname", "/a/b/c/"},
		{"new URL('https://e.com/a%20b/').pathname", "/a%20b/"},
		{"(() => { const u = new URL('https://e.com/a'); u.pathname = '/x/'; return u.href })()", "https://e.com/x/"},
		{"(() => { const u = new URL('https://e.com/a'); u.href = 'https://f.com/y/'; return u.pathname })()", "/y/"},
		{"new URL('https://e.com/a/') instanceof URL", "true"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			if got := runLib(t, "String("+tt.src+")"); got != tt.want {
				t.Errorf("got %v, want %s", got, tt.want)
			}
		})
	}
}
