package main

import (
	"cmp"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1µs to 10 minutes, to 3 significant
// digits: a percentile is exact to 0.1%.
const (
	histMin     = 1
	histMax     = int64(10 * time.Minute / time.Microsecond)
	histSigFigs = 3
)

// stats is what one target's requests came to. Workers each fill their own and merge them
// at the end of a slot, so recording takes no lock.
type stats struct {
	Hist       *hdrhistogram.Histogram // latency of every response, whatever its status, µs
	Statuses   map[int]int64
	Errors     map[string]int64 // transport failures by kind: no response, no latency recorded
	FirstError string           // one example of an "other" error
	Sent       int64            // requests attempted
	Matched    int64            // of them, for a user with subscriptions
	Dropped    int64            // open loop: due, but the slot ended before they could be sent
	Elapsed    time.Duration    // time the target was under load
	ServerCPU  time.Duration    // the server's user+system time during its slots
	ClientCPU  time.Duration    // this process's user+system time during the target's slots
	BackendCPU time.Duration    // the -backend-pid processes' time during the target's slots
	ServerHWM  int64            // the server's VmHWM at the end, bytes
	ServerRSS  int64            // the server's VmRSS at the end, bytes
	ProcErr    string           // why there are no server figures
	BackendErr string           // why there are no backend figures
}

func newStats() *stats {
	return &stats{
		Hist:     hdrhistogram.New(histMin, histMax, histSigFigs),
		Statuses: map[int]int64{},
		Errors:   map[string]int64{},
	}
}

// record counts one request's outcome: a response (status > 0), or a transport error.
func (s *stats) record(status int, err error, latency time.Duration) {
	s.Sent++
	if err != nil {
		kind := errorKind(err)
		s.Errors[kind]++
		if kind == "other" && s.FirstError == "" {
			s.FirstError = err.Error()
		}
		return
	}
	s.Statuses[status]++
	us := min(max(latency.Microseconds(), histMin), histMax)
	s.Hist.RecordValue(us) //nolint:errcheck // clamped into range above
}

// merge adds o's counts to s.
func (s *stats) merge(o *stats) {
	s.Hist.Merge(o.Hist)
	for k, v := range o.Statuses {
		s.Statuses[k] += v
	}
	for k, v := range o.Errors {
		s.Errors[k] += v
	}
	if s.FirstError == "" {
		s.FirstError = o.FirstError
	}
	s.Sent += o.Sent
	s.Matched += o.Matched
	s.Dropped += o.Dropped
	s.Elapsed += o.Elapsed
	s.ServerCPU += o.ServerCPU
	s.ClientCPU += o.ClientCPU
	s.BackendCPU += o.BackendCPU
	s.ProcErr = cmp.Or(s.ProcErr, o.ProcErr)
	s.BackendErr = cmp.Or(s.BackendErr, o.BackendErr)
}

// ok counts the 2xx responses.
func (s *stats) ok() int64 {
	var n int64
	for status, c := range s.Statuses {
		if status >= 200 && status < 300 {
			n += c
		}
	}
	return n
}

// responses counts every response, whatever its status.
func (s *stats) responses() int64 {
	var n int64
	for c := range maps.Values(s.Statuses) {
		n += c
	}
	return n
}

// errorKind names a transport failure for the report.
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, errNotLoopback):
		return "not-loopback"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no-local-ports"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "other"
}
