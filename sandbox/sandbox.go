// Package sandbox compiles connector scripts (ES modules) once and runs their default
// export on pooled goja runtimes, with plain Go values in and out.
//
// It is the only package that imports goja and esbuild. Nothing here knows about
// connectors, stores or HTTP routes: callers hand in a compiled Script, an argument made of
// plain Go values (map[string]any, []any, string, float64, bool, nil, json.RawMessage) and,
// for scripts that may call the app's API, an *API describing where apiClient points.
//
// Compiling: esbuild bundles the module once, at load, into a CommonJS function with an
// inline source map, and goja compiles that once; every position a script error or stack
// trace reports is the author's original file:line. The only imports are the Node
// built-ins "crypto", "node:crypto", "buffer" and "node:buffer" (static or dynamic);
// anything else, a require() call, a syntax error, or a default export that is not a
// function is a *CompileError. Scripts see no require, module, exports, process or global.
//
// Values: arguments become native JavaScript objects and arrays (Go map keys in sorted
// order, json.RawMessage keys in document order); results come back the way JSON.stringify
// would see them: map[string]any, []any, string, float64, bool and nil, with undefined,
// functions and symbols dropped from objects (null in arrays), Dates as RFC 3339 strings
// and toJSON honoured.
//
// Ownership: a Script is immutable and safe for concurrent use. A Pool owns its runtimes; a
// runtime is used by one goroutine at a time, for one call, and is reset (interrupt cleared)
// before it goes back to the pool. The module is evaluated once per runtime, so top-level
// state lives as long as the runtime, never across runtimes. Every call runs under a
// deadline; the runtime is interrupted when it passes, and host calls (apiClient) are
// cancelled with it; host work never outlives its call. A runtime that was interrupted or
// overflowed its stack is discarded.
//
// Asynchrony: a call that returns a promise is awaited by a small event loop on the
// calling goroutine. Host work (apiClient HTTP requests) runs on its own goroutines and
// hands its outcome back to that loop, which settles the promise on the runtime's
// goroutine; goja itself is never touched from two goroutines.
package sandbox

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Problem is one thing wrong with a script, located in the author's original file.
type Problem struct {
	File    string
	Line    int // 1-based; 0 when unknown
	Column  int // 1-based; 0 when unknown
	Message string
}

// String formats the problem as "file:line: message" (the form every loader error takes).
func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Message)
}

// CompileError lists every problem found while compiling one script.
type CompileError struct {
	Problems []Problem
}

func (e *CompileError) Error() string {
	if len(e.Problems) == 0 {
		return "compiling script: unknown problem"
	}
	s := e.Problems[0].String()
	for _, p := range e.Problems[1:] {
		s += "\n" + p.String()
	}
	return s
}

// Limits bound one call. Zero values take the defaults.
type Limits struct {
	Timeout          time.Duration // deadline of one call; default 5s
	MaxCallStackSize int           // JavaScript call depth; default 1000
}

// Config configures a Pool.
type Config struct {
	Limits
	Size   int          // runtimes kept idle at most; default GOMAXPROCS
	Logger *slog.Logger // console.* goes here; nil discards
}

// API is what apiClient talks to during one call: the connector's API base URL with the
// connection's credentials already resolved into headers and query parameters.
type API struct {
	BaseURL *url.URL
	Header  http.Header  // attached to every request (e.g. Authorization)
	Query   url.Values   // attached to every request (e.g. api_key)
	Client  *http.Client // the caller decides timeouts and which addresses may be dialled
}

// Env is what one call may reach outside the runtime.
type Env struct {
	// API, when set and the call's argument is a map, puts an apiClient object into the
	// argument ({apiClient, parameters, ...}) whose requests go to API.BaseURL's host only.
	// nil: the argument carries no apiClient.
	API *API
}

// Reasons a call fails, as found in ScriptError.Reason.
const (
	ReasonException     = "exception"         // a throw or a rejected promise
	ReasonTimeout       = "timeout"           // the call ran past its deadline
	ReasonCanceled      = "canceled"          // the caller's context was canceled
	ReasonStackOverflow = "stack overflow"    // the call stack passed Limits.MaxCallStackSize
	ReasonUnsettled     = "unsettled promise" // the returned promise can never settle
	ReasonInvalidResult = "invalid result"    // the result cannot be made into plain values
)

const (
	defaultTimeout          = 5 * time.Second
	defaultMaxCallStackSize = 1000
)

func (l Limits) timeout() time.Duration {
	if l.Timeout <= 0 {
		return defaultTimeout
	}
	return l.Timeout
}

func (l Limits) maxCallStackSize() int {
	if l.MaxCallStackSize <= 0 {
		return defaultMaxCallStackSize
	}
	return l.MaxCallStackSize
}
