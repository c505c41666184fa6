package main

import (
	"io"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-run/switchboard/runtime/delivery"
)

func TestServeDeliverySettings(t *testing.T) {
	for _, tt := range []struct {
		name        string
		args        []string
		env         map[string]string
		wantTimeout time.Duration
		wantRetries []time.Duration
		wantErr     bool
	}{
		{name: "defaults", wantTimeout: 15 * time.Second, wantRetries: delivery.DefaultSchedule()},
		{name: "flags", args: []string{"--delivery-timeout", "2s", "--delivery-retries", "0s, 10ms,1s"},
			wantTimeout: 2 * time.Second, wantRetries: []time.Duration{0, 10 * time.Millisecond, time.Second}},
		{name: "environment", env: map[string]string{"SWITCHBOARD_DELIVERY_RETRIES": "0s"},
			wantTimeout: 15 * time.Second, wantRetries: []time.Duration{0}},
		{name: "bad duration", args: []string{"--delivery-retries", "0s,soon"}, wantErr: true},
		{name: "negative", args: []string{"--delivery-retries", "-1s"}, wantErr: true},
		{name: "empty", args: []string{"--delivery-retries", ""}, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseServeSettings(tt.args, mapEnv(tt.env), io.Discard)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg := s.serverConfig()
			if cfg.DeliveryTimeout != tt.wantTimeout || !slices.Equal(cfg.DeliverySchedule, tt.wantRetries) {
				t.Errorf("DeliveryTimeout %v, DeliverySchedule %v; want %v, %v", cfg.DeliveryTimeout, cfg.DeliverySchedule, tt.wantTimeout, tt.wantRetries)
			}
		})
	}
}
