package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"

	"github.com/switchboard-run/switchboard/runtime/server"
)

// serveGCPercent is the serve command's GOGC when the environment sets none.
const serveGCPercent = 300

// serveCommand runs the server until ctx ends (main cancels it on SIGINT and SIGTERM), then
// shuts it down in order. Settings come from flags, SWITCHBOARD_* variables and the
// --config file (see parseServeSettings); the log goes to stderr as text, from --log-level
// up, and its first line after start-up, "switchboard ready", tells the bound address.
func serveCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	settings, err := parseServeSettings(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return usagef("serve: %v", err)
	}
	cfg := settings.serverConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.Level(settings.logLevel)}))
	if getenv("GOGC") == "" {
		// Every ingest request allocates tens of kilobytes that die with it, and the
		// live heap is small: collecting at 4x rather than 2x the live heap cut the
		// server's CPU per request by ~15% under load, for ~30 MiB more peak RSS. GOGC
		// set in the environment wins.
		debug.SetGCPercent(serveGCPercent)
	}
	if settings.debugListen != "" {
		stop, err := serveDebug(settings.debugListen, cfg.Logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

// serveDebug serves Go's pprof handlers on addr, apart from the API's listener so that they
// are never reachable where the API is; the returned func closes it.
func serveDebug(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	log.Info("pprof listening", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
