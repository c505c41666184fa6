// Package sandbox compiles connector scripts (ES modules) once and runs their default
// export on pooled goja runtimes, with plain Go values in and out.
//
// It is the only package that imports goja and esbuild. Nothing here knows about
// connectors, stores or HTTP routes: callers hand in a compiled Script, an argument made of
// plain Go values (map[string]any, []any, string, float64, bool, nil, json.RawMessage,
// JSONOrText) and, for scripts that may call the app's API, an *API describing where
// apiClient points.
//
// Compiling: esbuild bundles the module once, at load, into a CommonJS function with an
// inline source map, and goja compiles that once; every position a script error or stack
// trace reports is the author's original file:line. The only imports are the Node
// built-ins "crypto", "node:crypto", "buffer" and "node:buffer" (static or dynamic);
// anything else, a require() call, a syntax error, or a default export that is not a
// function is a *CompileError. Scripts see no require, module, exports, process or global.
//
// Values: arguments become native JavaScript objects and arrays (Go map keys in sorted
// order), JSON text (json.RawMessage, JSONOrText) objects and arrays decoded as the script
// reads them (lazyjson.go); results come back the way JSON.stringify would see them:
// map[string]any, []any, string, float64, bool and nil, with undefined, functions and
// symbols dropped from objects (null in arrays), Dates as RFC 3339 strings and toJSON
// honoured, and, in a call's result, JSON from its argument that the script left unchanged
// as a json.RawMessage of the bytes received.
//
// Ownership: a Script is immutable and safe for concurrent use. A Pool owns its runtimes; a
// runtime is used by one goroutine at a time, for one call, and is reset (interrupt cleared)
// before it goes back to the pool. The module is evaluated once per runtime, so top-level
// state lives as long as the runtime, never across runtimes. Every call runs under a
// deadline; the runtime is interrupted when it passes, and host calls (apiClient) are
// cancelled with it; host work never outlives its call. A runtime that was interrupted,
// overflowed its stack, passed its memory limit or saw a Go function panic is discarded.
//
// Isolation (harden.go): a script's global object holds exactly the ECMAScript built-ins,
// console and the library (URL, URLSearchParams, TextEncoder, TextDecoder, atob, btoa,
// Buffer, crypto, webhooks); it is frozen, so no global can be added, replaced or deleted.
// In a runtime that serves many calls (a Pool's) every built-in object a script can reach
// is frozen too: no call can change Object.prototype, JSON.parse or crypto.createHmac for
// the calls after it. What a script keeps in module-level variables persists across the
// calls of one runtime, within one Pool; callers keep one Pool per integration (pools are
// never shared between integrations), and a call that sees secrets that must not outlive
// it uses Script.CallOnce, whose fresh runtime is discarded. Function and eval compile code
// in the same sandbox: Function('return this')() is the same clean global object.
//
// Limits (Limits): the deadline (Timeout, 5s), the JavaScript call depth
// (MaxCallStackSize, 1000), memory (MaxMemory, 64 MiB: single allocations a script asks
// for are vetted before they happen, and a process-wide watchdog stops calls during which
// the live heap grew by more; memory.go), and the size of what a call returns
// (MaxResultBytes, 10 MiB). Each fails the call alone with its ScriptError.Reason;
// a panic in Go code a script reached fails it with ReasonInternal; the process keeps
// serving.
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
	// MaxMemory bounds what one call may allocate, in bytes: a single allocation a
	// script asks for (a string, array or buffer of a chosen size), and the growth of the
	// process's live heap while the call runs (see memory.go); default 64 MiB, negative
	// for no limit.
	MaxMemory int64
	// MaxResultBytes bounds the size of what a call returns (and of any value converted
	// out of the runtime), measured as its JSON encoding; default 10 MiB.
	MaxResultBytes int
}

// Config configures a Pool.
type Config struct {
	Limits
	Size   int          // runtimes a Pool keeps however long they idle; default GOMAXPROCS
	Logger *slog.Logger // console.* goes here; nil discards
	// Max bounds a Pool's runtimes, in calls or idle (at least Size); a call waits for a
	// free one beyond it. Default 2 * GOMAXPROCS.
	Max int
	// IdleTimeout is how long a Pool keeps the runtimes beyond Size once it no longer
	// needs them; default 30s.
	IdleTimeout time.Duration
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
	// API is where the apiClient in the call's argument ({apiClient, parameters, ...},
	// for an argument that is a map) sends its requests: API.BaseURL's host only. nil:
	// apiClient is still there, and every request rejects with an Error saying there is
	// no API.
	API *API
}

// Reasons a call fails, as found in ScriptError.Reason.
const (
	ReasonException      = "exception"         // a throw or a rejected promise
	ReasonTimeout        = "timeout"           // the call ran past its deadline
	ReasonCanceled       = "canceled"          // the caller's context was canceled
	ReasonStackOverflow  = "stack overflow"    // the call stack passed Limits.MaxCallStackSize
	ReasonUnsettled      = "unsettled promise" // the returned promise can never settle
	ReasonInvalidResult  = "invalid result"    // the result cannot be made into plain values
	ReasonMemoryLimit    = "memory limit"      // the call passed Limits.MaxMemory
	ReasonResultTooLarge = "result too large"  // the result passed Limits.MaxResultBytes
	ReasonInternal       = "internal error"    // a Go function the script called panicked
)

const (
	defaultTimeout          = 5 * time.Second
	defaultMaxCallStackSize = 1000
	defaultMaxMemory        = 64 << 20
	defaultMaxResultBytes   = 10 << 20
)

func (l Limits) maxMemory() int64 {
	if l.MaxMemory == 0 {
		return defaultMaxMemory
	}
	return l.MaxMemory
}

func (l Limits) maxResultBytes() int {
	if l.MaxResultBytes <= 0 {
		return defaultMaxResultBytes
	}
	return l.MaxResultBytes
}

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
