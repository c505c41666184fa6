package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSchedule(t *testing.T) {
	tests := []struct {
		name          string
		targets       int
		n             int64
		duration      time.Duration
		roundDuration time.Duration
		rounds        int
		want          string // target:requests/duration per slot
	}{
		{"one round by count", 2, 100, 0, 10 * time.Second, 0, "0:100/0s 1:100/0s"},
		{"rounds from duration", 2, 0, 30 * time.Second, 10 * time.Second, 0,
			"0:0/10s 1:0/10s 0:0/10s 1:0/10s 0:0/10s 1:0/10s"},
		{"uneven duration is split evenly", 2, 0, 25 * time.Second, 10 * time.Second, 0,
			"0:0/8.333333333s 1:0/8.333333333s 0:0/8.333333333s 1:0/8.333333333s 0:0/8.333333334s 1:0/8.333333334s"},
		{"count split over the rounds", 3, 10, 20 * time.Second, 10 * time.Second, 0,
			"0:5/10s 1:5/10s 2:5/10s 0:5/10s 1:5/10s 2:5/10s"},
		{"explicit rounds", 2, 7, 0, 0, 3, "0:2/0s 1:2/0s 0:2/0s 1:2/0s 0:3/0s 1:3/0s"},
		{"never more rounds than requests", 2, 2, 0, 0, 5, "0:1/0s 1:1/0s 0:1/0s 1:1/0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			slots, err := schedule(tt.targets, tt.n, tt.duration, tt.roundDuration, tt.rounds)
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			var total = map[int]int64{}
			var totalDur = map[int]time.Duration{}
			for i, s := range slots {
				parts = append(parts, fmt.Sprintf("%d:%d/%s", s.Target, s.Requests, s.Duration))
				if want := i / tt.targets; s.Round != want {
					t.Errorf("slot %d is in round %d, want %d", i, s.Round, want)
				}
				total[s.Target] += s.Requests
				totalDur[s.Target] += s.Duration
			}
			if got := strings.Join(parts, " "); got != tt.want {
				t.Errorf("schedule:\n got %s\nwant %s", got, tt.want)
			}
			for target := range tt.targets {
				if total[target] != tt.n || totalDur[target] != tt.duration {
					t.Errorf("target %d gets %d requests, %s in all, want %d, %s", target, total[target], totalDur[target], tt.n, tt.duration)
				}
			}
		})
	}
}

func TestScheduleErrors(t *testing.T) {
	for name, f := range map[string]func() ([]slot, error){
		"no targets": func() ([]slot, error) { return schedule(0, 10, 0, 0, 0) },
		"unbounded":  func() ([]slot, error) { return schedule(2, 0, 0, time.Second, 0) },
		"negative":   func() ([]slot, error) { return schedule(2, -1, 0, 0, 0) },
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
