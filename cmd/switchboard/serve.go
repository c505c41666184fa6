package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"

	"github.com/switchboard-run/switchboard/runtime/server"
)

// serveCommand runs the server until ctx ends (main cancels it on SIGINT and SIGTERM), then
// shuts it down in order. Settings come from flags, SWITCHBOARD_* variables and the
// --config file (see parseServeSettings); the log goes to stderr as text, and its first
// line after start-up, "switchboard ready", tells the bound address.
func serveCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	settings, err := parseServeSettings(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return usagef("serve: %v", err)
	}
	cfg := settings.serverConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}
