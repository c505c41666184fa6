package main

import (
	"errors"
	"time"
)

// slot is one turn of one target: it ends after Requests requests or Duration, whichever
// comes first (a zero bound is no bound).
type slot struct {
	Target   int // index into the targets
	Round    int
	Requests int64
	Duration time.Duration
	Warmup   bool // not measured
}

// schedule interleaves the targets: round 0 runs target 0, 1, ..., then round 1 the same,
// and so on, each target getting an equal share of its n requests and of its duration in
// every round. rounds 0 means as many as it takes for no slot to be longer than
// roundDuration (1 without a duration or a round duration); there are never more rounds
// than requests. Shares differ by at most one request or one nanosecond.
func schedule(targets int, n int64, duration, roundDuration time.Duration, rounds int) ([]slot, error) {
	switch {
	case targets <= 0:
		return nil, errors.New("no targets")
	case n < 0 || duration < 0 || roundDuration < 0 || rounds < 0:
		return nil, errors.New("negative -n, -duration, -round-duration or -rounds")
	case n == 0 && duration == 0:
		return nil, errors.New("unbounded run: set -n or -duration")
	}
	if rounds == 0 {
		rounds = 1
		if duration > 0 && roundDuration > 0 {
			rounds = int((duration + roundDuration - 1) / roundDuration)
		}
	}
	if n > 0 && int64(rounds) > n {
		rounds = int(n)
	}
	out := make([]slot, 0, rounds*targets)
	for r := range rounds {
		share := func(total int64) int64 {
			return total*int64(r+1)/int64(rounds) - total*int64(r)/int64(rounds)
		}
		for t := range targets {
			out = append(out, slot{
				Target:   t,
				Round:    r,
				Requests: share(n),
				Duration: time.Duration(share(int64(duration))),
			})
		}
	}
	return out, nil
}
