package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// instance is one goja runtime prepared for one Script. It is owned by one goroutine at a
// time: the one inside run (or Compile's check).
type instance struct {
	vm       *goja.Runtime
	script   *Script
	logger   *slog.Logger
	limits   Limits
	hardener *hardener
	library  *family               // the script library, built on first use
	modules  map[string]goja.Value // what allowed imports resolve to; set when library is built
	newError goja.Constructor      // the original Error, safe from scripts that replace the global
	handle   goja.Callable         // the default export; nil until load
	apiGet   goja.Value            // the getter of every call's apiClient; nil until first needed
	call     *call                 // the call in progress; nil between calls

	// memErr is set, once, when a guard or the watchdog stops a call for memory; aborted
	// is closed then, so a call waiting for host work stops waiting. The runtime is
	// dropped after such a call.
	memErr    atomic.Pointer[memoryLimitError]
	aborted   chan struct{}
	abortOnce sync.Once
	// broken is set when the runtime must not serve another call although the call
	// ended normally: a lazily frozen family failed half-way, or a Go function panicked.
	broken bool
	frozen bool // the intrinsics are frozen (see harden.go): the runtime may serve many calls
}

// call is the state of one run: its deadline and the host work it is waiting for. It
// lives exactly as long as the call, which is why it may hold the call's context.
type call struct {
	ctx context.Context
	env Env

	// completions carries finished host work back to the runtime's goroutine; each
	// function settles a promise there. pending counts work not yet handed back and is
	// only touched on the runtime's goroutine.
	completions chan func() error
	pending     int
	done        chan struct{} // closed when the call returns; late completions are dropped

	api    *apiState    // made on the first apiClient request
	client *goja.Object // the argument's apiClient, made on first read

	// inArgument is set while the call's argument converts: JSON in it that is still
	// unchanged when the result is exported is exported as received (lazyjson.go).
	inArgument bool
}

var (
	errInterrupted = errors.New("interrupted by the call's deadline")
	errUnsettled   = errors.New("the returned promise can never settle: it waits for nothing that is still running")
)

// loadError is a module that evaluated but does not default-export a function.
type loadError struct{ msg string }

func (e *loadError) Error() string { return e.msg }

// rejection is a promise rejected with value.
type rejection struct{ value goja.Value }

func (rejection) Error() string { return "promise rejected" }

// newInstance prepares a runtime for s: the hardener first (it captures the originals it
// uses), then the console, the allocation guards, the lazily built families, and finally
// isolate, which leaves exactly the allowed globals, frozen. No script code has run yet.
//
// frozen says whether to freeze the intrinsics, for a runtime that serves more than one call.
func newInstance(s *Script, logger *slog.Logger, limits Limits, frozen bool) (in *instance, err error) {
	defer func() {
		if r := recover(); r != nil {
			in, err = nil, fmt.Errorf("preparing runtime: %v", r)
		}
	}()
	vm := goja.New()
	vm.SetMaxCallStackSize(limits.maxCallStackSize())
	in = &instance{vm: vm, script: s, logger: logger, limits: limits, aborted: make(chan struct{}), frozen: frozen}
	if in.hardener, err = newHardener(vm); err != nil {
		return nil, fmt.Errorf("preparing runtime: %w", err)
	}
	newError, ok := goja.AssertConstructor(vm.Get("Error"))
	if !ok {
		return nil, errors.New("preparing runtime: Error is not a constructor")
	}
	in.newError = newError
	if err := vm.Set("console", in.console()); err != nil {
		return nil, fmt.Errorf("installing console: %w", err)
	}
	if err := in.guardCore(); err != nil {
		return nil, fmt.Errorf("preparing runtime: %w", err)
	}

	// goja's global object, which isolate replaces: the lazily frozen families read their
	// originals from it on first access (reading one builds it), where no script reaches.
	gojaGlobals := vm.GlobalObject()
	lazy := map[string]*family{}
	builtins := func(names []string, prepare func(values map[string]goja.Value) ([]goja.Value, error)) {
		f := &family{names: names}
		f.prepare = func(define func(string, goja.Value)) ([]goja.Value, error) {
			originals := map[string]goja.Value{}
			for _, n := range names {
				originals[n] = gojaGlobals.Get(n)
			}
			var extra []goja.Value
			if prepare != nil {
				var err error
				if extra, err = prepare(originals); err != nil {
					return nil, err
				}
			}
			for _, n := range names {
				define(n, originals[n])
			}
			return extra, nil
		}
		for _, n := range names {
			lazy[n] = f
		}
	}
	builtins(familyMath, nil)
	builtins(familyDate, nil)
	builtins(familyProxy, nil)
	builtins(familyCollections, func(originals map[string]goja.Value) ([]goja.Value, error) {
		hidden, ok := goja.AssertFunction(in.hardener.hidden.Get("Map"))
		if !ok {
			return nil, errors.New("no hidden roots for Map")
		}
		roots, err := hidden(goja.Undefined(), originals["Map"], originals["Set"])
		return []goja.Value{roots}, err
	})
	in.library = &family{names: familyLibrary, prepare: func(define func(string, goja.Value)) ([]goja.Value, error) {
		binary := map[string]goja.Value{}
		for _, n := range familyBinary {
			binary[n] = gojaGlobals.Get(n)
		}
		// The binary types first: the library's build reads them through their globals.
		if err := in.guardBinary(binary); err != nil {
			return nil, err
		}
		for _, n := range familyBinary {
			define(n, binary[n])
		}
		modules, err := s.library(vm, define, in.checkAlloc)
		if err != nil {
			return nil, err
		}
		in.modules = modules
		roots := make([]goja.Value, 0, len(modules)+1)
		for _, m := range modules {
			roots = append(roots, m)
		}
		// goja_nodejs's URLSearchParams iterators inherit from a prototype that only an
		// iterator leads to.
		it, err := in.vm.RunString("Object.getPrototypeOf(new URLSearchParams().entries())")
		if err != nil {
			return nil, fmt.Errorf("finding the URLSearchParams iterator: %w", err)
		}
		return append(roots, it), nil
	}}
	for _, n := range familyLibrary {
		lazy[n] = in.library
	}
	if err := in.isolate(lazy); err != nil {
		return nil, fmt.Errorf("preparing runtime: %w", err)
	}
	return in, nil
}

// load evaluates the module and keeps its default export. Its top-level code runs under
// whatever interrupt the caller armed.
func (in *instance) load() (err error) {
	defer recoverGoja(&err)
	v, err := in.vm.RunProgram(in.script.program)
	if err != nil {
		return err
	}
	wrapper, ok := goja.AssertFunction(v)
	if !ok {
		return &loadError{msg: "bundled module is not a function"}
	}
	importFn := in.vm.ToValue(func(fc goja.FunctionCall) goja.Value {
		name := fc.Argument(0).String()
		if !allowedImport(name) {
			panic(in.vm.NewTypeError("module %q is not available", name))
		}
		if in.library.state == familyIdle {
			in.buildFamily(in.library)
		}
		if m, ok := in.modules[name]; ok {
			return m
		}
		panic(in.vm.NewTypeError("module %q is not available", name))
	})
	exports, err := wrapper(goja.Undefined(), importFn)
	if err != nil {
		return err
	}
	var def goja.Value
	if obj, ok := exports.(*goja.Object); ok {
		def = obj.Get("default")
	}
	if def == nil {
		return &loadError{msg: "no default export: the module must export default a function"}
	}
	fn, ok := goja.AssertFunction(def)
	if !ok {
		return &loadError{msg: "default export is not a function"}
	}
	in.handle = fn
	return nil
}

// run makes one call. It reports whether the runtime may be reused: not after an
// interrupt (the deadline fired, or may be firing as run returns), a stack overflow, a
// memory limit, or a panic in a Go function.
func (in *instance) run(ctx context.Context, arg any, env Env) (result any, reusable bool, err error) {
	c := &call{ctx: ctx, env: env, done: make(chan struct{})}
	in.call = c
	defer func() {
		close(c.done)
		in.call = nil
	}()

	// k6's pattern: interrupt the runtime when the context ends. If stop reports that the
	// interrupt already started, it may land at any moment, so the runtime is dropped.
	stop := context.AfterFunc(ctx, func() { in.vm.Interrupt(errInterrupted) })
	var unwatch func()
	if limit := in.limits.maxMemory(); limit > 0 {
		unwatch = watchdog.watch(uint64(limit), in.abortMemory)
	}
	result, err = in.invoke(c, arg)
	if unwatch != nil {
		unwatch() // after this, the watchdog no longer interrupts this runtime
	}
	stopped := stop()
	if e := in.memErr.Load(); e != nil {
		// A guard or the watchdog fired; the interrupt may not have landed before the
		// script returned, but the call has still passed its limit.
		var se *ScriptError
		if !errors.As(err, &se) || se.Reason != ReasonMemoryLimit {
			result, err = nil, &ScriptError{Script: in.script.name, File: in.script.name, Reason: ReasonMemoryLimit, Message: e.msg}
		}
		return result, false, err
	}
	if !stopped || in.broken {
		return result, false, err
	}
	in.vm.ClearInterrupt()
	var se *ScriptError
	if errors.As(err, &se) {
		switch se.Reason {
		case ReasonStackOverflow, ReasonTimeout, ReasonCanceled, ReasonInternal:
			return result, false, err
		}
	}
	return result, true, err
}

func (in *instance) invoke(c *call, arg any) (result any, err error) {
	// goja panics with its uncatchable errors (and with exceptions, outside Try) when an
	// interrupt or overflow lands in Go code calling into the runtime: getters read while
	// converting, setters run while settling a promise. Any other panic is a bug in a Go
	// function the script called: it fails this call alone.
	defer func() {
		if err != nil {
			var se *ScriptError
			if !errors.As(err, &se) && (isGojaError(err) || isHostPanic(err)) {
				result, err = nil, in.scriptError(c.ctx, err)
			}
		}
	}()
	defer recoverGoja(&err)

	if in.handle == nil {
		if err := in.load(); err != nil {
			var le *loadError
			if errors.As(err, &le) {
				return nil, fmt.Errorf("loading %s: %w", in.script.name, err)
			}
			return nil, in.scriptError(c.ctx, err)
		}
	}
	c.inArgument = true
	argv, err := in.toValue(arg)
	c.inArgument = false
	if err != nil {
		return nil, fmt.Errorf("converting argument: %w", err)
	}
	if obj, ok := argv.(*goja.Object); ok && isMap(arg) {
		// Not enumerable: a script returning or spreading its argument does not carry it.
		if err := obj.DefineAccessorProperty("apiClient", in.apiClientGetter(), nil, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
			return nil, fmt.Errorf("installing apiClient: %w", err)
		}
	}
	ret, err := in.handle(goja.Undefined(), argv)
	if err != nil {
		return nil, in.scriptError(c.ctx, err)
	}
	// ExportType first: Export of an ordinary object would convert all of it.
	if obj, ok := ret.(*goja.Object); ok && obj.ExportType() == typePromise {
		if p, ok := obj.Export().(*goja.Promise); ok {
			if ret, err = in.await(c, p); err != nil {
				return nil, in.scriptError(c.ctx, err)
			}
		}
	}
	if result, err = in.exportResult(ret); err != nil {
		return nil, in.scriptError(c.ctx, err)
	}
	return result, nil
}

// recoverGoja turns a panic into *err: one of goja's errors as it is, anything else (a bug
// in a Go function a script called, or in goja) as a *hostPanic. Nothing a script does may
// take the process down.
func recoverGoja(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if e, ok := r.(error); ok && isGojaError(e) {
		*err = e
		return
	}
	*err = &hostPanic{value: r, stack: debug.Stack()}
}

// hostPanic is a panic recovered from Go code run on a script's behalf.
type hostPanic struct {
	value any
	stack []byte
}

func (p *hostPanic) Error() string { return fmt.Sprintf("a host function failed: %v", p.value) }

func isHostPanic(err error) bool {
	var p *hostPanic
	return errors.As(err, &p)
}

func isGojaError(err error) bool {
	var (
		interrupted *goja.InterruptedError
		overflow    *goja.StackOverflowError
		exception   *goja.Exception
	)
	return errors.As(err, &interrupted) || errors.As(err, &overflow) || errors.As(err, &exception)
}

// await is the call's event loop: it runs completions of host work on this goroutine
// until p settles, the deadline passes, or nothing left could ever settle p.
func (in *instance) await(c *call, p *goja.Promise) (goja.Value, error) {
	for p.State() == goja.PromiseStatePending {
		if c.pending == 0 {
			return nil, errUnsettled
		}
		select {
		case settle := <-c.completions:
			c.pending--
			// Settling runs the microtask queue; only uncatchable errors come back.
			if err := settle(); err != nil {
				return nil, err
			}
		case <-c.ctx.Done():
			return nil, c.ctx.Err()
		case <-in.aborted:
			return nil, in.memErr.Load()
		}
	}
	if p.State() == goja.PromiseStateRejected {
		return nil, rejection{value: p.Result()}
	}
	return p.Result(), nil
}

// goAsync runs work on its own goroutine and hands the function it returns back to the
// call's loop, which runs it on the runtime's goroutine. work must not touch the runtime.
func (c *call) goAsync(work func() func() error) {
	if c.completions == nil {
		c.completions = make(chan func() error)
	}
	c.pending++
	go func() {
		var settle func() error
		func() {
			defer func() {
				if r := recover(); r != nil {
					p := &hostPanic{value: r, stack: debug.Stack()}
					settle = func() error { return p }
				}
			}()
			settle = work()
		}()
		select {
		case c.completions <- settle:
		case <-c.done:
		}
	}()
}

// scriptError locates err in the author's code. For timeouts and stack overflows it runs
// no JavaScript: the runtime may be past its deadline already.
func (in *instance) scriptError(ctx context.Context, err error) *ScriptError {
	s := in.script
	se := &ScriptError{Script: s.name, File: s.name}
	var (
		interrupted    *goja.InterruptedError
		overflow       *goja.StackOverflowError
		exception      *goja.Exception
		rejected       rejection
		resultTooLarge *resultTooLargeError
	)
	var (
		memory   *memoryLimitError
		panicked *hostPanic
	)
	if errors.As(err, &interrupted) {
		memory, _ = interrupted.Value().(*memoryLimitError)
	}
	switch {
	case memory != nil || errors.As(err, &memory):
		se.Reason, se.Message = ReasonMemoryLimit, memory.msg
		if interrupted != nil {
			se.locate(s, interrupted.Stack())
			se.Stack = se.Reason + "\n" + formatFrames(interrupted.Stack(), s)
		}
	case errors.As(err, &panicked):
		se.Reason, se.Message = ReasonInternal, panicked.Error()
		in.broken = true
		in.logger.Error("sandbox: recovered a panic in a host function", "panic", fmt.Sprint(panicked.value), "stack", string(panicked.stack))
	case errors.As(err, &resultTooLarge):
		se.Reason, se.Message = ReasonResultTooLarge, resultTooLarge.Error()
	case errors.As(err, &interrupted), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		se.Reason, se.Message, se.err = ReasonTimeout, "deadline exceeded", context.DeadlineExceeded
		if ctx.Err() == context.Canceled {
			se.Reason, se.Message, se.err = ReasonCanceled, "context canceled", context.Canceled
		}
		if interrupted != nil {
			se.locate(s, interrupted.Stack())
			se.Stack = se.Reason + "\n" + formatFrames(interrupted.Stack(), s)
		}
	case errors.As(err, &overflow):
		se.Reason, se.Message = ReasonStackOverflow, "maximum call stack size exceeded"
		se.locate(s, overflow.Stack())
		se.Stack = "RangeError: " + se.Message + "\n" + formatFrames(overflow.Stack(), s)
	case errors.As(err, &exception):
		se.Reason = ReasonException
		se.locate(s, exception.Stack())
		in.describe(se, exception.Value())
		if se.Stack == "" {
			se.Stack = se.Message + "\n" + formatFrames(exception.Stack(), s)
		}
	case errors.As(err, &rejected):
		se.Reason = ReasonException
		in.describe(se, rejected.value)
		se.locateInStack(s)
	case errors.Is(err, errUnsettled):
		se.Reason, se.Message = ReasonUnsettled, err.Error()
	default:
		se.Reason, se.Message = ReasonInvalidResult, err.Error()
	}
	return se
}

// describe fills Message, Value and, for Error objects, Stack from a thrown value. Reading
// them may run the script's getters, so a throw there is caught and ignored.
func (in *instance) describe(se *ScriptError, v goja.Value) {
	var err error
	defer func() {
		if err != nil && se.Message == "" {
			se.Message = "uncaught value that cannot be described: " + err.Error()
		}
	}()
	defer recoverGoja(&err)
	ex := in.vm.Try(func() {
		obj, ok := v.(*goja.Object)
		if !ok || obj.ClassName() != "Error" {
			se.Message = in.format(v)
			se.Value, _ = in.export(v)
			return
		}
		se.Message = v.String()
		if st := obj.Get("stack"); st != nil && !goja.IsUndefined(st) {
			se.Stack = cleanStack(st.String(), in.script)
		}
		value := map[string]any{"name": obj.Get("name").String(), "message": ""}
		if m := obj.Get("message"); m != nil && !goja.IsUndefined(m) {
			value["message"] = m.String()
		}
		if props, err := in.export(obj); err == nil {
			if m, ok := props.(map[string]any); ok {
				for k, pv := range m {
					value[k] = pv
				}
			}
		}
		se.Value = value
	})
	if ex != nil {
		err = ex
	}
}

// locate takes the innermost frame that is in the author's file.
func (se *ScriptError) locate(s *Script, frames []goja.StackFrame) {
	for _, f := range frames {
		if f.SrcName() != s.programName {
			continue
		}
		pos := f.Position()
		if pos.Filename != s.mapped {
			continue // helper code esbuild added, with no original position
		}
		se.Line, se.Column = pos.Line, pos.Column+1 // the source map's columns are 0-based
		return
	}
}

// locateInStack finds the author's innermost frame in an Error's stack text: a rejected
// promise carries no goja frames, only the value it was rejected with.
func (se *ScriptError) locateInStack(s *Script) {
	for line := range strings.SplitSeq(se.Stack, "\n") {
		i := strings.Index(line, s.name+":")
		if i < 0 {
			continue
		}
		rest := line[i+len(s.name)+1:]
		var l, c int
		if _, err := fmt.Sscanf(rest, "%d:%d", &l, &c); err == nil && l > 0 {
			se.Line, se.Column = l, c
			return
		}
	}
}

// goja writes frames as "file:line:column(pc)". The program counter means nothing to
// authors, and positions mapped through the source map carry the map's 0-based column.
var typePromise = reflect.TypeFor[*goja.Promise]()

var stackPosition = regexp.MustCompile(`([^\s(]+):(\d+):(\d+)\(\d+\)`)

func cleanStack(stack string, s *Script) string {
	stack = stackPosition.ReplaceAllStringFunc(stack, func(m string) string {
		sub := stackPosition.FindStringSubmatch(m)
		file, line, col := sub[1], sub[2], sub[3]
		if file == s.mapped {
			file = s.name
			if c, err := strconv.Atoi(col); err == nil {
				col = strconv.Itoa(c + 1)
			}
		}
		return file + ":" + line + ":" + col
	})
	return strings.TrimRight(stack, "\n")
}

func formatFrames(frames []goja.StackFrame, s *Script) string {
	var b strings.Builder
	stackFrames(&b, frames, s)
	return strings.TrimRight(b.String(), "\n")
}

// console sends console.* to the script's logger at the matching level.
func (in *instance) console() *goja.Object {
	console := in.vm.NewObject()
	for _, m := range [...]struct {
		name  string
		level slog.Level
	}{
		{"log", slog.LevelInfo},
		{"info", slog.LevelInfo},
		{"warn", slog.LevelWarn},
		{"error", slog.LevelError},
		{"debug", slog.LevelDebug},
		{"trace", slog.LevelDebug},
	} {
		level := m.level
		_ = console.Set(m.name, func(fc goja.FunctionCall) goja.Value {
			ctx := context.Background()
			if in.call != nil {
				ctx = in.call.ctx
			}
			if !in.logger.Enabled(ctx, level) {
				return goja.Undefined()
			}
			var b strings.Builder
			for i, a := range fc.Arguments {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(in.format(a))
				if b.Len() > maxLogMessage {
					break
				}
			}
			in.logger.Log(ctx, level, truncateLog(b.String(), maxLogMessage))
			return goja.Undefined()
		})
	}
	return console
}

const maxLogMessage = 8 << 10

func truncateLog(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// format renders a value the way console.log shows it in Node, except that objects are
// written as JSON: strings as they are, Errors as "Name: message", functions by name.
func (in *instance) format(v goja.Value) string {
	if v == nil || goja.IsUndefined(v) {
		return "undefined"
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		if _, ok := v.(*goja.Symbol); ok {
			return "Symbol(" + v.String() + ")"
		}
		return v.String()
	}
	switch obj.ClassName() {
	case "Error":
		return v.String()
	case "Function":
		if n := obj.Get("name"); n != nil && n.String() != "" {
			return "[Function: " + n.String() + "]"
		}
		return "[Function (anonymous)]"
	}
	g, err := in.export(v)
	if err != nil {
		return "[object " + obj.ClassName() + "]"
	}
	b, err := marshalJSON(g)
	if err != nil {
		return "[object " + obj.ClassName() + "]"
	}
	return string(b)
}

func isMap(v any) bool {
	switch v.(type) {
	case map[string]any, map[string]string:
		return true
	}
	return false
}
