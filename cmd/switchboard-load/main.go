// Command switchboard-load measures a global webhook under load and compares it with
// baselines that do the same job: it POSTs realistic webhook requests to one or more
// targets, interleaved, and reports throughput, latency percentiles, the server's CPU time
// per request and its peak memory.
//
// It sends traffic to loopback addresses only (127.0.0.0/8, ::1, localhost): any other
// target, API or Redis URL is refused before anything is sent, and the dialer refuses
// non-loopback addresses again at connect time.
//
// # Usage
//
//	switchboard-load setup [flags]            write the routing data every target reads
//	switchboard-load [run] [flags] TARGET...  load the targets and print a report
//
// A TARGET is name=URL@PID, name=URL or URL; the PID (or -pid, with one target) lets the
// tool read the server's CPU time and peak RSS from /proc.
//
// Setup writes, into one Redis, (a) for switchboard an integration of the example connector
// (through switchboard's HTTP API with -api, else through the store) and one connection and
// -per-user subscriptions for each of -subscriptions/-per-user users, selector
// user_id:<n>, written in pipelined batches through redisstore's key layout and then read
// back through redisstore to prove the layout matches; and (b) for the baselines, one SET
// per selector, <baseline-prefix>:sel:user_id:<n>, whose members are the same routes. It
// prints the webhook URL and the -users flag for the run.
//
//	switchboard-load setup -redis-url redis://127.0.0.1:6379 -api http://127.0.0.1:8080 \
//	    -subscriptions 1000000
//
// Run sends POSTs of about -body-size bytes of JSON whose from_user_id is, with
// probability -match, one of the -users subscribed users, and otherwise a user nobody
// subscribed to. With -rate it is open loop: requests are sent at fixed times, whatever the
// server's speed, and latency is measured from the time a request was due, so a stalled
// server is not hidden by the load generator waiting for it (coordinated omission); at most
// -concurrency requests are in flight and the rest wait, their wait counted. Without -rate
// it is closed loop: -concurrency workers send back to back. Each target runs -n requests
// and/or for -duration in total, split into rounds of at most -round-duration run A, B, A,
// B, ... so that a machine's drifting state affects every target alike; -warmup first runs
// each target unmeasured. -users-of name=N gives one target its own subscribed users, so
// that one interleaved run compares two stores set up with different -subscriptions.
//
//	switchboard-load -rate 5000 -duration 60s -round-duration 10s -warmup 10s -users 1000000 \
//	    -backend-pid $(pgrep -x redis-server) -backend-pid $(pgrep -x nats-server) \
//	    switchboard=http://127.0.0.1:8080/webhooks/TOKEN@1234 \
//	    go=http://127.0.0.1:8081/webhooks/x@1240
//
// The report has one row per target (requests, 2xx per second, p50/p90/p99/p99.9/max,
// server CPU per request and cores used, peak RSS, the -backend-pid processes' CPU per
// request, this tool's CPU per request, statuses and transport errors) and the ratios of
// each target to the first (or to -baseline); -json prints the same as JSON. A PID must be
// the server's own (start it with exec, or take the one it prints), not a shell's: a
// target whose PID used no CPU while loaded is flagged.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "switchboard-load:", err)
		os.Exit(1)
	}
}

// run dispatches to the setup or the load command; "run" may be left out.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "setup":
			return runSetup(ctx, args[1:], stdout, stderr)
		case "run":
			return runLoad(ctx, args[1:], stdout, stderr)
		case "help", "-h", "-help", "--help":
			fmt.Fprint(stdout, usage)
			return nil
		}
	}
	return runLoad(ctx, args, stdout, stderr)
}

const usage = `switchboard-load: load a global webhook and compare it with baselines (loopback only)

  switchboard-load setup [flags]              write the routing data every target reads
  switchboard-load [run] [flags] TARGET...    load the targets, print a report

TARGET is name=URL@PID, name=URL or URL. "switchboard-load setup -h" and
"switchboard-load run -h" list the flags.
`
