package main

import (
	"io"
	"testing"
	"time"
)

// TestServeOffSettings checks that 0 turns hot reload and the ingest rate limit off: the
// server's Config takes zero as "the default", so cmd passes a negative value.
func TestServeOffSettings(t *testing.T) {
	for _, tt := range []struct {
		name       string
		args       []string
		wantReload time.Duration
		wantRate   float64
	}{
		{name: "defaults", wantReload: 2 * time.Second, wantRate: 1000},
		{name: "zero is off", args: []string{"--reload-interval", "0", "--ingest-rate", "0"}, wantReload: -1, wantRate: -1},
		{name: "values", args: []string{"--reload-interval", "250ms", "--ingest-rate", "0.5"}, wantReload: 250 * time.Millisecond, wantRate: 0.5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseServeSettings(tt.args, mapEnv(nil), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			cfg := s.serverConfig()
			if cfg.ReloadInterval != tt.wantReload || cfg.IngestRate != tt.wantRate {
				t.Errorf("ReloadInterval %v, IngestRate %v; want %v, %v", cfg.ReloadInterval, cfg.IngestRate, tt.wantReload, tt.wantRate)
			}
		})
	}
}
