package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"
	"github.com/dop251/goja/file"
	"github.com/evanw/esbuild/pkg/api"
)

// libraryFunc builds the JavaScript library on a runtime, handing each global to define,
// and returns what the allowed imports resolve to. It is buildLibrary everywhere but in
// tests that stand in for it.
type libraryFunc func(vm *goja.Runtime, define func(name string, v goja.Value), alloc allocCheck) (modules map[string]goja.Value, err error)

// Script is one compiled ES module whose default export is a function.
type Script struct {
	name    string
	program *goja.Program
	library libraryFunc
	// goja treats file names as URLs when it applies the source map, so the program is
	// compiled as programName (name, URL-escaped) and positions come back as mapped (name
	// resolved as goja does); both differ from name only for names that are not clean
	// URL paths ("my connector/100%/handle.js").
	programName string
	mapped      string
}

// esbuild bundles the module as an IIFE assigned to moduleVar, and the banner and footer
// turn that into one function expression taking the host's import function. Allowed
// imports become tiny CommonJS modules calling importFunc, so the names require, module
// and exports never exist in a script's scope: not as globals, not as parameters.
const (
	moduleVar    = "__switchboard_module"
	importFunc   = "__switchboard_import"
	moduleBanner = "(function (" + importFunc + ") {"
	moduleFooter = "return " + moduleVar + "\n})"
	builtinSpace = "sandbox-builtin"
)

// Compile turns an ES module into a Script. name is the path shown in errors and stack
// traces (e.g. "connectors/slack/global-webhooks/events/handle.js"). Syntax errors,
// imports other than the allowed Node built-ins, and a default export that is not a
// function come back as a *CompileError with the author's original line numbers.
//
// The module's top-level code runs once here, on a frozen scratch runtime (one that an
// earlier Compile may have used: see checkRuntimes), to find its default export; it runs
// again on every runtime a Pool creates.
func Compile(name string, src []byte) (*Script, error) {
	return compileWith(name, src, buildLibrary, true)
}

// checkRuntimes holds frozen runtimes on which Compile evaluated a module without a
// problem, for the next Compile to evaluate its module on: preparing a frozen runtime
// costs ~8 ms, evaluating a module well under one, and start-up compiles every script of
// the tree. Reuse is safe because a frozen runtime is exactly what a Pool reuses across
// calls: the global object and every built-in are frozen, so a module's top-level code
// can leave nothing that the next module sees (its own state lives in its closure). A
// runtime whose evaluation failed, or may have been interrupted, is not put back. Only
// runtimes of buildLibrary are kept here (a sync.Pool, so the garbage collector releases
// them once start-up is over); a test's stand-in library gets a fresh runtime.
var checkRuntimes sync.Pool

func compile(name string, src []byte, lib libraryFunc) (*Script, error) {
	return compileWith(name, src, lib, false)
}

// compileWith compiles; reuse says whether the module may be checked on (and leave its
// runtime to) checkRuntimes, which is for lib == buildLibrary only.
func compileWith(name string, src []byte, lib libraryFunc, reuse bool) (*Script, error) {
	code, problems := bundle(name, src)
	if len(problems) > 0 {
		return nil, &CompileError{Problems: problems}
	}
	programName := (&url.URL{Path: name}).EscapedPath()
	prg, err := goja.Compile(programName, code, true)
	if err != nil {
		// esbuild accepted what goja does not: goja's positions are in the generated code.
		return nil, &CompileError{Problems: []Problem{{File: name, Message: "unsupported by the runtime: " + err.Error()}}}
	}
	s := &Script{name: name, program: prg, library: lib, programName: programName, mapped: programName}
	if u := file.ResolveSourcemapURL(programName, path.Base(name)); u != nil {
		s.mapped = u.String()
	}
	if err := s.check(reuse); err != nil {
		return nil, err
	}
	return s, nil
}

// bundle runs esbuild over the module: ES2022 in, one function expression out, with the
// syntax goja lacks lowered and an inline source map back to the author's lines.
func bundle(name string, src []byte) (string, []Problem) {
	code, problems := build(name, src, nil)
	if len(problems) > 0 || !strings.Contains(code, "__require") {
		return code, problems
	}
	// The module mentions require other than as a call (typeof require, say), and esbuild
	// stood in a __require shim for it. Scripts must see no require at all: build again
	// with require defined away. Calls to require were refused by the first build.
	return build(name, src, map[string]string{"require": "undefined"})
}

func build(name string, src []byte, define map[string]string) (string, []Problem) {
	res := api.Build(api.BuildOptions{
		Stdin: &api.StdinOptions{
			Contents: string(src),
			// The source map names the file relative to name's directory, which is how
			// goja resolves it back into name.
			Sourcefile: path.Base(name),
			Loader:     api.LoaderJS,
		},
		Bundle:     true,
		Format:     api.FormatIIFE,
		GlobalName: moduleVar,
		Platform:   api.PlatformNeutral,
		Target:     api.ES2022,
		Supported: map[string]bool{
			// goja runs ES2022 natively except for these; esbuild lowers them.
			"async-generator":      false,
			"for-await":            false,
			"regexp-match-indices": false,
			"dynamic-import":       false,
		},
		Define:         define,
		Sourcemap:      api.SourceMapInline,
		SourcesContent: api.SourcesContentExclude,
		Banner:         map[string]string{"js": moduleBanner},
		Footer:         map[string]string{"js": moduleFooter},
		LogLevel:       api.LogLevelSilent,
		Charset:        api.CharsetUTF8,
		Plugins:        []api.Plugin{importGuard()},
	})
	if len(res.Errors) > 0 {
		problems := make([]Problem, 0, len(res.Errors))
		for _, m := range res.Errors {
			p := Problem{File: name, Message: m.Text}
			if m.Location != nil {
				p.Line = m.Location.Line
				p.Column = m.Location.Column + 1
			}
			problems = append(problems, p)
		}
		return "", problems
	}
	for _, f := range res.OutputFiles {
		return string(f.Contents), nil
	}
	return "", []Problem{{File: name, Message: "bundling produced no output"}}
}

// importGuard resolves the allowed Node built-ins to modules served at run time by the
// host's import function, and refuses every other import, relative files included, and
// every require() call: scripts are ES modules.
func importGuard() api.Plugin {
	return api.Plugin{
		Name: "sandbox-imports",
		Setup: func(b api.PluginBuild) {
			b.OnResolve(api.OnResolveOptions{Filter: ".*"}, func(a api.OnResolveArgs) (api.OnResolveResult, error) {
				var msg string
				switch {
				case a.Kind == api.ResolveJSRequireCall || a.Kind == api.ResolveJSRequireResolve:
					msg = fmt.Sprintf("require(%q) is not available in an ES module: use import", a.Path)
				case !allowedImport(a.Path):
					msg = fmt.Sprintf("import %q is not allowed: only crypto, node:crypto, buffer and node:buffer can be imported", a.Path)
				default:
					return api.OnResolveResult{Path: a.Path, Namespace: builtinSpace}, nil
				}
				return api.OnResolveResult{Errors: []api.Message{{Text: msg}}}, nil
			})
			b.OnLoad(api.OnLoadOptions{Filter: ".*", Namespace: builtinSpace}, func(a api.OnLoadArgs) (api.OnLoadResult, error) {
				contents := fmt.Sprintf("module.exports = %s(%q)", importFunc, a.Path)
				return api.OnLoadResult{Contents: &contents, Loader: api.LoaderJS}, nil
			})
		},
	}
}

func allowedImport(name string) bool {
	switch name {
	case "crypto", "node:crypto", "buffer", "node:buffer":
		return true
	}
	return false
}

// check evaluates the module on a scratch runtime to see that it loads and that its
// default export is a function.
func (s *Script) check(reuse bool) error {
	var in *instance
	if reuse {
		in, _ = checkRuntimes.Get().(*instance)
	}
	if in == nil {
		var err error
		if in, err = newInstance(s, discardLogger(), Limits{}, true); err != nil {
			return &CompileError{Problems: []Problem{{File: s.name, Message: err.Error()}}}
		}
	}
	in.script, in.handle = s, nil
	// Top-level code may loop forever; it gets the default call deadline.
	t := time.AfterFunc(defaultTimeout, func() { in.vm.Interrupt(context.DeadlineExceeded) })
	err := in.load()
	stopped := t.Stop() // false: the interrupt fired, or is firing
	if err == nil {
		if reuse && stopped && !in.broken && in.memErr.Load() == nil {
			in.script, in.handle = nil, nil
			checkRuntimes.Put(in)
		}
		return nil
	}
	var le *loadError
	if errors.As(err, &le) {
		return &CompileError{Problems: []Problem{{File: s.name, Message: le.msg}}}
	}
	se := in.scriptError(context.Background(), err)
	return &CompileError{Problems: []Problem{{
		File:    se.File,
		Line:    se.Line,
		Column:  se.Column,
		Message: "evaluating module: " + se.Reason + ": " + se.Message,
	}}}
}

// Name is the path given to Compile.
func (s *Script) Name() string { return s.name }

// Pool runs one Script on a set of reusable runtimes.
//
// Preparing a runtime costs milliseconds, a call of a typical handle a tenth of one, so a
// pool makes at most Config.Max runtimes and a call finds one free or waits for one,
// rather than making a runtime for every concurrent call and dropping it afterwards. The
// runtimes beyond Config.Size are dropped once the pool has gone Config.IdleTimeout
// without needing them.
type Pool struct {
	script *Script
	cfg    Config
	logger *slog.Logger
	keep   int
	idle   chan *instance // capacity max: a runtime that is put back never blocks
	slots  chan struct{}  // one token per live runtime
	// busyAt is when a call last found no idle runtime (unix nanoseconds): the pool needed
	// more than it had.
	busyAt atomic.Int64
}

// Defaults of Config's pool fields.
const (
	defaultIdleTimeout = 30 * time.Second
)

// NewPool makes a pool for s. Runtimes are created on demand, at most cfg.Max.
func NewPool(s *Script, cfg Config) *Pool {
	keep := cfg.Size
	if keep <= 0 {
		keep = runtime.GOMAXPROCS(0)
	}
	limit := cfg.Max
	if limit <= 0 {
		limit = 2 * runtime.GOMAXPROCS(0)
	}
	limit = max(limit, keep)
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	return &Pool{
		script: s,
		cfg:    cfg,
		logger: scriptLogger(cfg.Logger, s.name),
		keep:   keep,
		idle:   make(chan *instance, limit),
		slots:  make(chan struct{}, limit),
	}
}

// Call runs the script's default export with arg (plain Go values) on a pooled runtime,
// awaits a returned promise, and returns the settled value as plain Go values
// (map[string]any, []any, string, float64, bool, nil). A throw, a rejection, a timeout
// or a stack overflow is a *ScriptError; an argument that cannot be converted is a plain
// error. The call's deadline is the sooner of ctx's and cfg.Timeout; waiting for a free
// runtime counts towards it.
func (p *Pool) Call(ctx context.Context, arg any, env Env) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.timeout())
	defer cancel()

	in, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	result, reusable, err := in.run(ctx, arg, env)
	p.put(in, reusable)
	return result, err
}

// get returns an idle runtime, else a new one while there are fewer than the pool's
// maximum, else waits for one to be put back.
func (p *Pool) get(ctx context.Context) (*instance, error) {
	select {
	case in := <-p.idle:
		return in, nil
	default:
	}
	p.busyAt.Store(time.Now().UnixNano())
	select {
	case in := <-p.idle:
		return in, nil
	case p.slots <- struct{}{}:
		in, err := newInstance(p.script, p.logger, p.cfg.Limits, true)
		if err != nil {
			<-p.slots
			return nil, err
		}
		return in, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a free runtime of %s: %w", p.script.name, ctx.Err())
	}
}

// put gives a runtime back after a call, or drops it: when it may not serve again, or when
// it is one beyond Size and the pool has not needed that many for IdleTimeout.
func (p *Pool) put(in *instance, reusable bool) {
	if reusable && (len(p.idle) < p.keep || time.Since(time.Unix(0, p.busyAt.Load())) < p.cfg.IdleTimeout) {
		p.idle <- in
		return
	}
	<-p.slots
}

// CallOnce runs the script on a fresh runtime that is discarded afterwards; used where a
// call sees secrets that must not outlive it (getEventSelector sees a connection's credentials).
func (s *Script) CallOnce(ctx context.Context, cfg Config, arg any, env Env) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	in, err := newInstance(s, scriptLogger(cfg.Logger, s.name), cfg.Limits, false)
	if err != nil {
		return nil, err
	}
	result, _, err := in.run(ctx, arg, env)
	return result, err
}

func scriptLogger(l *slog.Logger, name string) *slog.Logger {
	if l == nil {
		return discardLogger()
	}
	return l.With("script", name)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// ScriptError is a failure of one call, located in the author's file.
type ScriptError struct {
	Script  string // the name given to Compile
	File    string // file of the innermost frame in the author's code
	Line    int
	Column  int
	Reason  string // one of the Reason constants: "exception", "timeout", "memory limit", ...
	Message string // the thrown value's message
	Stack   string // JavaScript stack, original file:line positions
	Value   any    // the thrown value as plain Go values (e.g. apiClient errors carry status and data)

	err error // the context's error for timeouts and cancellations
}

func (e *ScriptError) Error() string {
	return Problem{File: e.File, Line: e.Line, Message: e.Reason + ": " + e.Message}.String()
}

// Unwrap gives context.DeadlineExceeded or context.Canceled for calls stopped by their
// context, so errors.Is works on them.
func (e *ScriptError) Unwrap() error { return e.err }

// stackFrames formats goja frames the way Error.prototype.stack reads, without goja's
// program counters, and at most maxStackFrames of them.
func stackFrames(b *strings.Builder, frames []goja.StackFrame, s *Script) {
	for i, f := range frames {
		if i == maxStackFrames {
			fmt.Fprintf(b, "\t... %d more\n", len(frames)-i)
			break
		}
		b.WriteString("\tat ")
		if f.SrcName() == "<native>" {
			if n := f.FuncName(); n != "<native>" {
				b.WriteString(n)
				b.WriteString(" (native)\n")
			} else {
				b.WriteString("native\n")
			}
			continue
		}
		pos := f.Position()
		file, col := pos.Filename, pos.Column
		if file == s.mapped {
			file, col = s.name, col+1 // the source map's columns are 0-based
		}
		if n := f.FuncName(); n != "<anonymous>" && n != "" {
			fmt.Fprintf(b, "%s (%s:%d:%d)\n", n, file, pos.Line, col)
		} else {
			fmt.Fprintf(b, "%s:%d:%d\n", file, pos.Line, col)
		}
	}
}

const maxStackFrames = 30
