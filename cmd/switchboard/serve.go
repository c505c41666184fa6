package main

import (
	"context"
	"errors"
	"io"
)

// serveCommand runs the server. It is a stub until the server lands.
func serveCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return errors.New("serve: not implemented yet")
}
