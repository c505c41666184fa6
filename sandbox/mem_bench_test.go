package sandbox

import (
	"runtime"
	"testing"

	"github.com/dop251/goja"
)

// BenchmarkIdleRuntime reports the heap an idle runtime holds, as B/runtime. "frozen" is a
// pool's runtime with the module loaded, "after-call" the same once it has served a call
// (which touched the library), "every-family" the same once its script has named every
// lazily frozen global (what freezing everything costs), and "unfrozen" a runtime with
// writable intrinsics (CallOnce's).
func BenchmarkIdleRuntime(b *testing.B) {
	s := mustCompile(b, benchHandle)
	arg := benchArg(b)
	for _, mode := range []string{"frozen", "after-call", "every-family", "unfrozen"} {
		b.Run(mode, func(b *testing.B) {
			reportHeapPerRuntime(b, func() any {
				in, err := newInstance(s, discardLogger(), Limits{}, mode != "unfrozen")
				if err != nil {
					b.Fatal(err)
				}
				if err := in.load(); err != nil {
					b.Fatal(err)
				}
				if mode == "after-call" {
					if _, _, err := in.run(b.Context(), arg, Env{}); err != nil {
						b.Fatal(err)
					}
				}
				if mode == "every-family" {
					if _, err := in.vm.RunString("Math; Date; Map; Proxy; Buffer"); err != nil {
						b.Fatal(err)
					}
				}
				return in
			})
		})
	}
}

// reportHeapPerRuntime reports the heap each of 200 runtimes made by newRuntime holds, as
// B/runtime: the live heap after making them all, over 200.
func reportHeapPerRuntime(b *testing.B, newRuntime func() any) {
	const n = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	keep := make([]any, 0, n)
	for range n {
		keep = append(keep, newRuntime())
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	for b.Loop() {
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/runtime")
}

// BenchmarkFreezeCost reports what freezing costs on a bare goja runtime, as B/runtime: goja
// builds its built-ins lazily (a new runtime holds ~1.5 KB), and freezing a prototype makes
// it build every method of it first. This is the floor under BenchmarkIdleRuntime/frozen:
// the intrinsics a script reaches through syntax alone must be frozen on every pooled
// runtime (harden.go).
func BenchmarkFreezeCost(b *testing.B) {
	for _, c := range []struct{ name, src string }{
		{"bare", ``},
		{"Object", `Object.freeze(Object); Object.freeze(Object.prototype)`},
		{"Array.prototype", `Object.freeze(Array.prototype)`},
		{"String.prototype", `Object.freeze(String.prototype)`},
		// Everything a script reaches through syntax alone, frozen with the least code:
		// the floor of a frozen pooled runtime, whatever else it holds.
		{"syntax-reachable", freezeSyntaxReachable},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := goja.MustCompile(c.name, c.src, true)
			reportHeapPerRuntime(b, func() any {
				vm := goja.New()
				if _, err := vm.RunProgram(p); err != nil {
					b.Fatal(err)
				}
				return vm
			})
		})
	}
}

const freezeSyntaxReachable = `(function () {
  const freeze = Object.freeze, isFrozen = Object.isFrozen, proto = Object.getPrototypeOf
  const describe = Object.getOwnPropertyDescriptor, ownKeys = Reflect.ownKeys
  const todo = [Object, Function, Array, String, Number, Boolean, Symbol, BigInt, Promise, RegExp,
    Error, TypeError, RangeError, SyntaxError, ReferenceError, URIError, AggregateError,
    proto([][Symbol.iterator]()), proto(''[Symbol.iterator]()), proto('a'.matchAll(/a/g)),
    proto(function* () {}), proto(async function () {})]
  while (todo.length > 0) {
    const o = todo.pop()
    if ((typeof o !== 'object' && typeof o !== 'function') || o === null || isFrozen(o)) continue
    freeze(o)
    todo.push(proto(o))
    for (const k of ownKeys(o)) {
      const d = describe(o, k)
      if ('value' in d) todo.push(d.value)
      else todo.push(d.get, d.set)
    }
  }
})()`
