package sandbox

import (
	"fmt"
	"math"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/dop251/goja"
)

// Memory is bounded in two ways, because goja has no allocation accounting of its own and
// its Interrupt is only seen between JavaScript instructions: a single built-in call
// ('x'.repeat(1e9), new Uint8Array(2e9)) runs to completion once started.
//
//  1. Guards: the built-ins that allocate a size the script chose are wrapped; the
//     wrapper computes the bytes the call would allocate and, over Limits.MaxMemory,
//     interrupts the runtime with a memory-limit error instead of calling the original.
//     Nothing is allocated. Guarded: String.prototype.repeat, padStart, padEnd and
//     split(''), Array.from (array-likes), Array.prototype.fill, concat and join (its
//     separators), ArrayBuffer and every typed array constructor, Buffer.alloc,
//     Buffer.allocUnsafe, Buffer.from (array-likes) and Buffer.concat (totalLength), and
//     JSON.stringify, whose output is counted as it is written.
//     Strings count two bytes a character and array elements sixteen (goja's sizes, at
//     most).
//  2. The watchdog: while calls run, one goroutine per process samples the heap every
//     watchInterval. A call whose start the heap has outgrown by more than MaxMemory is a
//     suspect; the watchdog then collects garbage (at most once per MaxMemory of new
//     heap) and interrupts every call the live heap has still outgrown by more than its
//     limit. The heap is shared by every goroutine, so growth cannot be pinned on one
//     call: a call running alongside a bomb may be stopped with it. The process keeps
//     serving either way.
//
// A call stopped for memory fails with Reason "memory limit", and its runtime is dropped.

// allocCheck vets an allocation of n bytes (n as the script gave it: maybe NaN, negative or
// huge) that what (e.g. "String.prototype.repeat") is about to make. It returns false
// when the allocation is refused; the runtime has then been interrupted, and the caller
// returns without allocating.
type allocCheck func(n float64, what string) bool

// memoryLimitError is the value a runtime is interrupted with when a call passes its
// memory limit.
type memoryLimitError struct{ msg string }

func (e *memoryLimitError) Error() string { return e.msg }

const (
	bytesPerChar    = 2  // goja strings are UTF-16 at worst
	bytesPerElement = 16 // a goja.Value interface in an array's backing slice
)

// checkAlloc is the instance's allocCheck: a request over the call's memory limit stops
// the call. Outside a call (the library being built at load) there is no limit to check.
func (in *instance) checkAlloc(n float64, what string) bool {
	limit := in.limits.maxMemory()
	if limit <= 0 || n != n || n <= float64(limit) {
		return true
	}
	in.abortMemory(fmt.Sprintf("%s would allocate %s, over the %s limit", what, formatBytes(n), formatBytes(float64(limit))))
	return false
}

// abortMemory interrupts the runtime with a memory-limit error. It may be called from any
// goroutine (the watchdog) or from the runtime's own (a guard).
func (in *instance) abortMemory(msg string) {
	e := &memoryLimitError{msg: msg}
	if in.memErr.CompareAndSwap(nil, e) {
		in.vm.Interrupt(e)
		in.abortOnce.Do(func() { close(in.aborted) })
	}
}

func formatBytes(n float64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", n/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f bytes", n)
}

// wrapMethod replaces obj[name] (a function) with guard's wrapper, keeping its name and
// length. guard returns false to stop the call before the original runs.
func wrapMethod(vm *goja.Runtime, obj *goja.Object, name string, guard func(call goja.FunctionCall) bool) error {
	orig, ok := goja.AssertFunction(obj.Get(name))
	if !ok {
		return fmt.Errorf("%s is not a function", name)
	}
	length := obj.Get(name).ToObject(vm).Get("length")
	w := vm.ToValue(func(call goja.FunctionCall) goja.Value {
		if !guard(call) {
			return goja.Undefined()
		}
		return must(orig(call.This, call.Arguments...))
	}).ToObject(vm)
	_ = w.DefineDataProperty("name", vm.ToValue(name), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
	_ = w.DefineDataProperty("length", length, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
	return obj.DefineDataProperty(name, w, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

// lengthOf reads an object's length as a number, 0 for anything without one.
func lengthOf(v goja.Value) float64 {
	o, ok := v.(*goja.Object)
	if !ok {
		return 0
	}
	n := o.Get("length")
	if n == nil {
		return 0
	}
	f := n.ToFloat()
	if f != f || f < 0 {
		return 0
	}
	return f
}

// relIndex applies a relative start or end argument to length the way Array.prototype.fill
// does.
func relIndex(arg goja.Value, length, def float64) float64 {
	if goja.IsUndefined(arg) {
		return def
	}
	f := arg.ToFloat()
	switch {
	case f != f:
		return 0
	case f < 0:
		return math.Max(length+math.Trunc(f), 0)
	}
	return math.Min(math.Trunc(f), length)
}

// guardCore wraps the allocating built-ins of the intrinsics frozen with the runtime.
func (in *instance) guardCore() error {
	vm := in.vm
	check := in.checkAlloc
	strProto := vm.Get("String").ToObject(vm).Get("prototype").ToObject(vm)
	arrayCtor := vm.Get("Array").ToObject(vm)
	arrProto := arrayCtor.Get("prototype").ToObject(vm)
	strLen := func(this goja.Value) float64 {
		if goja.IsUndefined(this) || goja.IsNull(this) {
			return 0 // the original throws its TypeError
		}
		return float64(len(this.String())) // UTF-8 bytes: at least the UTF-16 length
	}
	guards := []struct {
		obj   *goja.Object
		name  string
		guard func(goja.FunctionCall) bool
	}{
		{strProto, "repeat", func(c goja.FunctionCall) bool {
			n := c.Argument(0).ToFloat()
			if s := strLen(c.This); s > 0 && n > 0 {
				return check(s*n*bytesPerChar, "String.prototype.repeat")
			}
			return true
		}},
		{strProto, "padStart", func(c goja.FunctionCall) bool {
			return check(c.Argument(0).ToFloat()*bytesPerChar, "String.prototype.padStart")
		}},
		{strProto, "padEnd", func(c goja.FunctionCall) bool {
			return check(c.Argument(0).ToFloat()*bytesPerChar, "String.prototype.padEnd")
		}},
		{strProto, "split", func(c goja.FunctionCall) bool {
			// split('') makes a string per character; other separators make at most as
			// many strings as there are separators in the (already allocated) string.
			if sep := c.Argument(0); goja.IsString(sep) && sep.String() == "" {
				return check(strLen(c.This)*bytesPerElement, "String.prototype.split")
			}
			return true
		}},
		{arrProto, "fill", func(c goja.FunctionCall) bool {
			l := lengthOf(c.This)
			start, end := relIndex(c.Argument(1), l, 0), relIndex(c.Argument(2), l, l)
			return check((end-start)*bytesPerElement, "Array.prototype.fill")
		}},
		{arrProto, "concat", func(c goja.FunctionCall) bool {
			n := lengthOf(c.This)
			for _, a := range c.Arguments {
				n += max(lengthOf(a), 1)
			}
			return check(n*bytesPerElement, "Array.prototype.concat")
		}},
		{arrProto, "join", func(c goja.FunctionCall) bool {
			sep := 1.0
			if s := c.Argument(0); !goja.IsUndefined(s) {
				sep = float64(len(s.String()))
			}
			return check(max(lengthOf(c.This)-1, 0)*sep*bytesPerChar, "Array.prototype.join")
		}},
		{arrayCtor, "from", func(c goja.FunctionCall) bool {
			items, ok := c.Argument(0).(*goja.Object)
			if !ok || items.GetSymbol(goja.SymIterator) != nil {
				return true // iterables run script code to produce each item: interruptible
			}
			return check(lengthOf(items)*bytesPerElement, "Array.from")
		}},
	}
	for _, g := range guards {
		if err := wrapMethod(vm, g.obj, g.name, g.guard); err != nil {
			return fmt.Errorf("guarding %s: %w", g.name, err)
		}
	}
	return in.guardStringify()
}

// guardStringify wraps JSON.stringify, whose output can dwarf its input (an array holding
// the same megabyte string a thousand times) and which builds it in one uninterruptible
// call. The wrapper hands the original a replacer that counts the characters of every key
// and string it is about to write, applies the script's own replacer first (a function
// as is; an array as a filter of object keys, in the object's key order rather than the
// array's), and stops the call once the output would pass the memory limit. The replacer
// is JavaScript-visible only as the function JSON.stringify calls.
func (in *instance) guardStringify() error {
	vm := in.vm
	jsonObj := vm.Get("JSON").ToObject(vm)
	orig, ok := goja.AssertFunction(jsonObj.Get("stringify"))
	if !ok {
		return fmt.Errorf("JSON.stringify is not a function")
	}
	isArray, ok := goja.AssertFunction(vm.Get("Array").ToObject(vm).Get("isArray"))
	if !ok {
		return fmt.Errorf("Array.isArray is not a function")
	}
	w := vm.ToValue(func(call goja.FunctionCall) goja.Value {
		limit := float64(in.limits.maxMemory())
		replacer := call.Argument(1)
		if limit <= 0 {
			return must(orig(call.This, call.Arguments...))
		}
		userFn, _ := goja.AssertFunction(replacer)
		var allow map[string]bool
		if o, ok := replacer.(*goja.Object); ok && userFn == nil && must(isArray(goja.Undefined(), o)).ToBoolean() {
			allow = map[string]bool{}
			for i := range int(lengthOf(o)) {
				e := o.Get(fmt.Sprint(i))
				if goja.IsString(e) || goja.IsNumber(e) {
					allow[e.String()] = true
				}
			}
		}
		var written float64
		counting := vm.ToValue(func(c goja.FunctionCall) goja.Value {
			key, value := c.Argument(0), c.Argument(1)
			if userFn != nil {
				value = must(userFn(c.This, key, value))
			} else if allow != nil && key.String() != "" {
				if holder, ok := c.This.(*goja.Object); ok && !must(isArray(goja.Undefined(), holder)).ToBoolean() && !allow[key.String()] {
					return goja.Undefined()
				}
			}
			written += float64(len(key.String())) + 4
			if goja.IsString(value) {
				written += float64(len(value.String()))
			} else {
				written += 8
			}
			if written*bytesPerChar > limit {
				in.abortMemory(fmt.Sprintf("JSON.stringify would allocate more than the %s limit", formatBytes(limit)))
				return goja.Undefined()
			}
			return value
		})
		return must(orig(call.This, call.Argument(0), counting, call.Argument(2)))
	}).ToObject(vm)
	_ = w.DefineDataProperty("name", vm.ToValue("stringify"), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
	_ = w.DefineDataProperty("length", vm.ToValue(3), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
	return jsonObj.DefineDataProperty("stringify", w, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

// guardBinary replaces ArrayBuffer and the typed array constructors in values with
// constructors that vet the size first. Each wrapper shares the original's prototype
// (instanceof holds) and becomes its prototype's constructor, so `[].constructor`-style
// paths (x.constructor, species) reach the wrapper too; static members are copied over.
func (in *instance) guardBinary(values map[string]goja.Value) error {
	vm := in.vm
	for _, name := range familyBinary {
		if name == "DataView" {
			continue // a view: allocates nothing
		}
		orig, ok := values[name].(*goja.Object)
		if !ok {
			return fmt.Errorf("%s is missing", name)
		}
		construct, ok := goja.AssertConstructor(orig)
		if !ok {
			return fmt.Errorf("%s is not a constructor", name)
		}
		size := 1.0
		if b := orig.Get("BYTES_PER_ELEMENT"); b != nil && !goja.IsUndefined(b) {
			size = b.ToFloat()
		}
		what := "new " + name
		w := vm.ToValue(func(call goja.ConstructorCall) *goja.Object {
			var n float64
			switch a := call.Argument(0); {
			case goja.IsNumber(a):
				n = a.ToFloat()
			case name != "ArrayBuffer":
				if o, ok := a.(*goja.Object); ok && o.ExportType() != typeArrayBuffer {
					n = lengthOf(o) // an array-like or another typed array, copied
				}
			}
			if !in.checkAlloc(n*size, what) {
				return vm.NewObject()
			}
			o, err := construct(call.NewTarget, call.Arguments...)
			if err != nil {
				panic(err)
			}
			return o
		}).ToObject(vm)
		proto := orig.Get("prototype").ToObject(vm)
		for _, k := range orig.GetOwnPropertyNames() {
			if k == "prototype" || k == "length" || k == "name" {
				continue
			}
			_ = w.DefineDataProperty(k, orig.Get(k), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE)
		}
		_ = w.DefineDataProperty("name", vm.ToValue(name), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
		_ = w.DefineDataProperty("length", orig.Get("length"), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
		if err := w.DefineDataProperty("prototype", proto, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE); err != nil {
			return fmt.Errorf("wrapping %s: %w", name, err)
		}
		// x.constructor and species lookups find the wrapper through the prototype, and
		// the library (Buffer extends Uint8Array) is built from the wrappers: no path to
		// the original constructor is left. The wrapper inherits from the original's
		// [[Prototype]] (%TypedArray%, whose own constructor cannot be called).
		if err := proto.DefineDataProperty("constructor", w, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
			return fmt.Errorf("wrapping %s: %w", name, err)
		}
		if err := w.SetPrototype(orig.Prototype()); err != nil {
			return fmt.Errorf("wrapping %s: %w", name, err)
		}
		values[name] = w
	}
	return nil
}

// The watchdog. The heap is the process's, so this is the one piece of package state: a
// registry of the calls in flight, sampled by a goroutine that runs only while there are any.
var watchdog = &heapWatch{calls: map[*watchedCall]struct{}{}}

const watchInterval = 5 * time.Millisecond

type heapWatch struct {
	mu       sync.Mutex
	calls    map[*watchedCall]struct{}
	running  bool
	lastLive uint64 // the heap measured right after the watchdog's last collection
	sample   []metrics.Sample
	// The last tick's sample. Reading the heap's size makes the runtime wait for every P
	// to publish its statistics, which costs tens of microseconds on a busy process: calls
	// starting while the watchdog runs take the last tick's figure as their baseline.
	lastHeap  uint64
	sampledAt time.Time
}

type watchedCall struct {
	start uint64 // heap when the call started
	limit uint64
	abort func(msg string)
}

// heapObjects is the heap occupied by objects, live or not yet swept.
func (w *heapWatch) heapObjects() uint64 {
	if w.sample == nil {
		w.sample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	}
	metrics.Read(w.sample)
	if w.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return w.sample[0].Value.Uint64()
}

// watch registers a call with a memory limit of limit bytes; abort is how the watchdog
// stops it. The returned function unregisters it and must be called when the call ends.
func (w *heapWatch) watch(limit uint64, abort func(string)) (stop func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := w.lastHeap
	if !w.running || time.Since(w.sampledAt) > 2*watchInterval {
		start = w.heapObjects()
	}
	c := &watchedCall{start: start, limit: limit, abort: abort}
	w.calls[c] = struct{}{}
	if !w.running {
		w.running = true
		go w.loop()
	}
	return func() {
		w.mu.Lock()
		delete(w.calls, c)
		w.mu.Unlock()
	}
}

func (w *heapWatch) loop() {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for range t.C {
		w.mu.Lock()
		if len(w.calls) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.check()
		w.mu.Unlock()
	}
}

// check runs with w.mu held. Calls are only suspected on the heap's size, which includes
// garbage not yet swept; a collection tells real growth from garbage before any is
// stopped. It collects again only after MaxMemory of new heap since the last time, so a
// busy process is not made to collect every tick.
func (w *heapWatch) check() {
	h := w.heapObjects()
	w.lastHeap, w.sampledAt = h, time.Now()
	if h < w.lastLive {
		w.lastLive = h // collected since: the old measure no longer holds
	}
	suspect := false
	for c := range w.calls {
		// A call's baseline is the smallest heap seen while it ran: the heap at its start
		// may have held garbage since collected, which is no allowance of the call's.
		c.start = min(c.start, h)
		if h > max(c.start, w.lastLive)+c.limit {
			suspect = true
			break
		}
	}
	if !suspect {
		return
	}
	runtime.GC()
	live := w.heapObjects()
	w.lastLive = live
	for c := range w.calls {
		if live > c.start+c.limit {
			c.abort(fmt.Sprintf("the heap grew by %s during the call, over the %s limit",
				formatBytes(float64(live-c.start)), formatBytes(float64(c.limit))))
			delete(w.calls, c) // interrupted once is enough
		}
	}
}
