// Package servertest runs a switchboard server for the length of a test.
package servertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/server"
)

// ShutdownTimeout bounds how long stop waits for the server to shut down.
const ShutdownTimeout = 20 * time.Second

// Run runs srv until stop is called or the test ends. stop, which may be called more than
// once, waits for the shutdown and fails the test if Run returned an error or did not
// return within ShutdownTimeout.
func Run(t testing.TB, srv *server.Server) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("server.Run: %v", err)
				}
			case <-time.After(ShutdownTimeout):
				t.Errorf("the server did not shut down within %s", ShutdownTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
