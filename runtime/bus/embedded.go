package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedConfig configures the in-process NATS server.
type EmbeddedConfig struct {
	// DataDir is switchboard's data directory; JetStream keeps its files in DataDir/nats.
	DataDir string
	// Listen, when set (host:port), also serves NATS clients there, e.g. for `nats sub`;
	// port 0 picks a free port. Empty: no network listener, in-process clients only.
	Listen string
	// Logger receives the server's log, at debug level for its debug output; nil discards it.
	Logger *slog.Logger
}

// Embedded is an in-process nats-server with JetStream. Messages are written to files under
// DataDir/nats as they are acknowledged and fsynced by the server's periodic sync (every
// two minutes by default), so they survive a process restart; a machine crash may lose the
// last unsynced ones.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts the server and waits, until ctx ends, for it to accept clients.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("starting embedded nats: no data directory")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := &server.Options{
		ServerName: "switchboard",
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		NoSigs:     true,
		DontListen: cfg.Listen == "",
	}
	if cfg.Listen != "" {
		host, portStr, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("parsing embedded nats listen address %q: %w", cfg.Listen, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port < 0 || port > 65535 {
			return nil, fmt.Errorf("parsing embedded nats listen address %q: bad port", cfg.Listen)
		}
		if port == 0 {
			port = server.RANDOM_PORT // nats-server reads 0 as its default, 4222
		}
		if host == "" {
			host = "0.0.0.0"
		}
		opts.Host, opts.Port = host, port
	}

	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("starting embedded nats: %w", err)
	}
	srv.SetLoggerV2(serverLogger{log.With("component", "nats-server")},
		log.Enabled(ctx, slog.LevelDebug), false, false)
	srv.Start()

	// ReadyForConnections takes a duration, not a ctx: poll in short steps.
	for !srv.ReadyForConnections(100 * time.Millisecond) {
		if ctx.Err() != nil {
			srv.Shutdown()
			return nil, fmt.Errorf("starting embedded nats: %w", ctx.Err())
		}
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, errors.New("starting embedded nats: jetstream did not start (see the server log)")
	}
	return &Embedded{srv: srv}, nil
}

// ClientURL returns the URL the server listens on for NATS clients, or "" when it has no
// listener (EmbeddedConfig.Listen empty).
func (e *Embedded) ClientURL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// Connect returns a Bus connected to this server in-process (no TCP); cfg.URL is ignored.
// The Bus must be closed before the server shuts down.
func (e *Embedded) Connect(ctx context.Context, cfg Config) (*Bus, error) {
	return connect(ctx, cfg, nats.InProcessServer(e.srv))
}

// Shutdown stops the server, closing its client connections, and waits until ctx ends for
// it to finish writing its files.
func (e *Embedded) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shutting down embedded nats: %w", ctx.Err())
	}
}

// serverLogger adapts slog to nats-server's logger.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
