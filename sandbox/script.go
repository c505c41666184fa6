package sandbox

import (
	"context"
	"errors"
)

// Script is one compiled ES module whose default export is a function.
type Script struct {
	name string
}

// Compile turns an ES module into a Script. name is the path shown in errors and stack
// traces (e.g. "connectors/slack/global-webhooks/events/handle.js"). Syntax errors,
// imports other than the allowed Node built-ins, and a default export that is not a
// function come back as a *CompileError with the author's original line numbers.
func Compile(name string, src []byte) (*Script, error) {
	return nil, errors.New("sandbox: not implemented")
}

// Name is the path given to Compile.
func (s *Script) Name() string { return s.name }

// Pool runs one Script on a set of reusable runtimes.
type Pool struct {
	script *Script
	cfg    Config
}

// NewPool makes a pool for s. Runtimes are created on demand and kept up to cfg.Size.
func NewPool(s *Script, cfg Config) *Pool { return &Pool{script: s, cfg: cfg} }

// Call runs the script's default export with arg (plain Go values) on a pooled runtime,
// awaits a returned promise, and returns the settled value as plain Go values
// (map[string]any, []any, string, float64, bool, nil). A throw, a rejection, a timeout
// or a stack overflow is a *ScriptError.
func (p *Pool) Call(ctx context.Context, arg any, env Env) (any, error) {
	return nil, errors.New("sandbox: not implemented")
}

// CallOnce runs the script on a fresh runtime that is discarded afterwards; used where a
// call sees secrets that must not outlive it (getEventSelector sees a connection's credentials).
func (s *Script) CallOnce(ctx context.Context, cfg Config, arg any, env Env) (any, error) {
	return nil, errors.New("sandbox: not implemented")
}

// ScriptError is a failure of one call, located in the author's file.
type ScriptError struct {
	Script  string // the name given to Compile
	File    string // file of the innermost frame in the author's code
	Line    int
	Column  int
	Reason  string // "exception", "timeout", "stack overflow", "memory limit", ...
	Message string // the thrown value's message
	Stack   string // JavaScript stack, original file:line positions
	Value   any    // the thrown value as plain Go values (e.g. apiClient errors carry status and data)
}

func (e *ScriptError) Error() string {
	return Problem{File: e.File, Line: e.Line, Message: e.Reason + ": " + e.Message}.String()
}
