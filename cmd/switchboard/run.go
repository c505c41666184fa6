package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/sandbox"
)

const usage = `Usage:

  switchboard serve [flags]   run the server (see switchboard serve -h)
  switchboard check DIR       load and validate a connectors directory (or one connector's
                              directory); prints every problem as path:line: message and
                              exits 1 if there is any
  switchboard run DIR/global-webhooks/KEY [flags]
                              run a global webhook's handle once and print its events and
                              response as JSON
  switchboard version         print the version
  switchboard help            print this help
`

// usageError is a command line that cannot be run; main exits 2 on it.
type usageError struct {
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run is the whole command line: main only adds the process (signals, exit codes).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version", "-version", "--version":
		return versionCommand(stdout)
	case "check":
		return checkCommand(rest, stdout, stderr)
	case "run":
		return runCommand(ctx, rest, stdout, stderr)
	case "serve":
		return serveCommand(ctx, rest, getenv, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return usagef("unknown command %q", cmd)
}

func versionCommand(stdout io.Writer) error {
	v := version
	info, ok := debug.ReadBuildInfo()
	if ok && v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	fmt.Fprintf(stdout, "switchboard %s\n", v)
	if !ok {
		return nil
	}
	details := []string{info.GoVersion}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision", "vcs.time":
			details = append(details, s.Value)
		case "vcs.modified":
			if s.Value == "true" {
				details = append(details, "modified")
			}
		}
	}
	fmt.Fprintln(stdout, strings.Join(details, " "))
	return nil
}

// parseFlags parses fs allowing flags before and after positional arguments (Go's flag
// package stops at the first positional one), and returns the positional arguments.
// -h prints the flag set's usage and returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func checkCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "Usage: switchboard check DIR") }
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usagef("check: want one connectors directory, got %d arguments", len(pos))
	}
	// A connector's own directory is accepted too: authors check the one they edit.
	var n int
	if _, statErr := os.Stat(filepath.Join(pos[0], "connector.yml")); statErr == nil {
		_, err = connector.LoadConnector(pos[0])
		n = 1
	} else {
		var set *connector.Set
		set, err = connector.Load(pos[0])
		if set != nil {
			n = len(set.Connectors)
		}
	}
	var le *connector.LoadError
	if errors.As(err, &le) {
		for _, p := range le.Problems {
			fmt.Fprintln(stdout, p.String())
		}
		return fmt.Errorf("check: %s in %s", plural(len(le.Problems), "problem"), pos[0])
	}
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	fmt.Fprintf(stdout, "ok: %s\n", plural(n, "connector"))
	return nil
}

// repeated is a flag that may be given many times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ", ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var headers, queries, params repeated
	body := fs.String("body", "", "request body file, - for standard input (default: an empty body)")
	method := fs.String("method", http.MethodPost, "request method")
	fs.Var(&headers, "header", "request header `K:V` (repeatable); without a Content-Type, a body that is JSON is sent as application/json")
	fs.Var(&queries, "query", "query parameter `K=V` (repeatable)")
	fs.Var(&params, "param", "connector parameter `K=V`, a string (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: switchboard run DIR/global-webhooks/KEY [--body FILE] [--header K:V]... [--query K=V]... [--param K=V]... [--method M]")
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usagef("run: want one webhook directory (DIR/global-webhooks/KEY), got %d arguments", len(pos))
	}

	header := http.Header{}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return usagef("run: --header %q: want K:V", h)
		}
		header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	query := url.Values{}
	for _, q := range queries {
		k, v, ok := strings.Cut(q, "=")
		if !ok || k == "" {
			return usagef("run: --query %q: want K=V", q)
		}
		query.Add(k, v)
	}
	parameters := map[string]any{}
	for _, p := range params {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return usagef("run: --param %q: want K=V", p)
		}
		parameters[k] = v
	}

	var raw []byte
	switch *body {
	case "":
	case "-":
		raw, err = io.ReadAll(os.Stdin)
	default:
		raw, err = os.ReadFile(*body)
	}
	if err != nil {
		return fmt.Errorf("run: reading the body: %w", err)
	}
	if header.Get("Content-Type") == "" && len(raw) > 0 && json.Valid(raw) {
		header.Set("Content-Type", "application/json")
	}

	webhookDir := filepath.Clean(pos[0])
	if filepath.Base(filepath.Dir(webhookDir)) != "global-webhooks" {
		return usagef("run: %s is not a webhook directory (DIR/global-webhooks/KEY)", pos[0])
	}
	c, err := connector.LoadConnector(filepath.Dir(filepath.Dir(webhookDir)))
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	var w *connector.Webhook
	for _, cand := range c.Webhooks {
		if filepath.Clean(cand.Dir) == webhookDir {
			w = cand
		}
	}
	if w == nil {
		return fmt.Errorf("run: connector %q has no global webhook in %s", c.Key, pos[0])
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil)).With("connector", c.Key, "webhook", w.Key)
	pool := sandbox.NewPool(w.Handle, sandbox.Config{Size: 1, Logger: logger})
	in := connector.HandleInput(*method, header, query, raw, parameters)
	out, err := pool.Call(ctx, in, sandbox.Env{})
	if err != nil {
		return fmt.Errorf("running handle: %w", err)
	}
	res, err := connector.ParseHandleResult(out)
	if err != nil {
		return fmt.Errorf("checking the result of %s: %w", w.Handle.Name(), err)
	}
	return printHandleResult(stdout, res)
}

// printHandleResult prints a handle result as {"events": [...], "response": {status,
// headers, data}}: headers one value each (repeats joined with ", "), data as JSON when
// the response is JSON and as a string otherwise.
func printHandleResult(w io.Writer, res connector.HandleResult) error {
	events := res.Events
	if events == nil {
		events = []connector.HandledEvent{}
	}
	headers := map[string]string{}
	for k, vs := range res.Response.Header {
		headers[k] = strings.Join(vs, ", ")
	}
	var data any
	if len(res.Response.Body) > 0 {
		data = string(res.Response.Body)
		mt, _, _ := mime.ParseMediaType(res.Response.Header.Get("Content-Type"))
		if mt == "application/json" || strings.HasSuffix(mt, "+json") {
			var v any
			if json.Unmarshal(res.Response.Body, &v) == nil {
				data = v
			}
		}
	}
	type response struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Data    any               `json:"data"`
	}
	out := struct {
		Events   []connector.HandledEvent `json:"events"`
		Response response                 `json:"response"`
	}{events, response{Status: res.Response.Status, Headers: headers, Data: data}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("printing the result: %w", err)
	}
	return nil
}

// plural counts n things: "1 connector", "7 connectors".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
