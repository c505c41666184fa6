package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadConfig is what one run does.
type loadConfig struct {
	Targets       []target
	Rate          float64 // requests per second per target; 0: closed loop
	Concurrency   int     // workers (closed loop) or most requests in flight (open loop)
	N             int64   // requests per target; 0: bounded by Duration only
	Duration      time.Duration
	RoundDuration time.Duration
	Rounds        int
	Warmup        time.Duration
	Timeout       time.Duration // of one request
	Baseline      string        // the target the ratios are to; "": the first
	Shape         bodyShape
	JSON          bool
	Quiet         bool  // no progress lines
	BackendPIDs   []int // Redis, NATS: their CPU time during each target's slots is counted for it
}

// shapeOf is the body shape of t's requests: cfg.Shape, with t's own users if it has them.
func (cfg loadConfig) shapeOf(t target) bodyShape {
	shape := cfg.Shape
	if t.Users > 0 {
		shape.Users = t.Users
	}
	return shape
}

func parseLoadFlags(args []string, stderr io.Writer) (loadConfig, error) {
	fs := flag.NewFlagSet("switchboard-load run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: switchboard-load [run] [flags] name=URL[@PID]...\n\n")
		fs.PrintDefaults()
	}
	cfg := loadConfig{}
	var pid int
	var targets []string
	fs.Func("target", "a target, name=URL[@PID] (repeatable; positional arguments are targets too)", func(s string) error {
		targets = append(targets, s)
		return nil
	})
	fs.Func("backend-pid", "PID of a process every target uses (redis-server, nats-server), whose CPU time during a target's turns is counted for it (repeatable)", func(s string) error {
		p, err := strconv.Atoi(s)
		if err != nil || p <= 0 {
			return fmt.Errorf("-backend-pid %q is not a pid", s)
		}
		cfg.BackendPIDs = append(cfg.BackendPIDs, p)
		return nil
	})
	fs.IntVar(&pid, "pid", 0, "the server's PID, for /proc figures, when there is one target without @PID")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: requests per second to each target; 0: closed loop")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "closed loop: workers sending back to back; open loop: most requests in flight")
	fs.Int64Var(&cfg.N, "n", 0, "requests per target (0: bounded by -duration only)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "load time per target, over all rounds (0: bounded by -n only)")
	fs.DurationVar(&cfg.RoundDuration, "round-duration", 10*time.Second, "longest turn of one target before the next takes over")
	fs.IntVar(&cfg.Rounds, "rounds", 0, "rounds (0: from -duration / -round-duration, else 1)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "unmeasured load on each target before the first round")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.StringVar(&cfg.Baseline, "baseline", "", "target the ratios are computed against (default: the first)")
	fs.IntVar(&cfg.Shape.Size, "body-size", 1024, "approximate request body size, bytes")
	fs.Int64Var(&cfg.Shape.Users, "users", 1000, "users 0..users-1 have subscriptions (as printed by setup)")
	usersOf := map[string]int64{}
	fs.Func("users-of", "name=N: target name's subscribed users are 0..N-1, whatever -users says (repeatable)", func(s string) error {
		name, v, _ := strings.Cut(s, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if name == "" || err != nil || n <= 0 {
			return fmt.Errorf("-users-of %q is not name=N with N positive", s)
		}
		usersOf[name] = n
		return nil
	})
	fs.Float64Var(&cfg.Shape.Match, "match", 0.5, "fraction of requests from a user with subscriptions")
	fs.BoolVar(&cfg.JSON, "json", false, "print the results as JSON instead of tables")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "no progress lines on stderr")
	// Flags may come after targets too: parse, take a target, parse the rest.
	for {
		if err := fs.Parse(args); err != nil {
			return loadConfig{}, err
		}
		if fs.NArg() == 0 {
			break
		}
		targets = append(targets, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(targets) == 0 {
		fs.Usage()
		return loadConfig{}, errors.New("no targets")
	}
	for _, s := range targets {
		t, err := parseTarget(s)
		if err != nil {
			return loadConfig{}, err
		}
		cfg.Targets = append(cfg.Targets, t)
	}
	seen := map[string]bool{}
	for _, t := range cfg.Targets {
		if seen[t.Name] {
			return loadConfig{}, fmt.Errorf("two targets named %q", t.Name)
		}
		seen[t.Name] = true
	}
	for name, n := range usersOf {
		i := slices.IndexFunc(cfg.Targets, func(t target) bool { return t.Name == name })
		if i < 0 {
			return loadConfig{}, fmt.Errorf("-users-of %s=%d: no target is named %q", name, n, name)
		}
		cfg.Targets[i].Users = n
	}
	if pid != 0 {
		if len(cfg.Targets) != 1 || cfg.Targets[0].PID != 0 {
			return loadConfig{}, errors.New("-pid needs exactly one target, without @PID")
		}
		cfg.Targets[0].PID = pid
	}
	switch {
	case cfg.Rate < 0 || math.IsInf(cfg.Rate, 0) || math.IsNaN(cfg.Rate):
		return loadConfig{}, fmt.Errorf("-rate %v is not a rate", cfg.Rate)
	case cfg.Concurrency <= 0:
		return loadConfig{}, errors.New("-concurrency must be positive")
	case cfg.Timeout <= 0:
		return loadConfig{}, errors.New("-timeout must be positive")
	case cfg.Shape.Match < 0 || cfg.Shape.Match > 1:
		return loadConfig{}, errors.New("-match must be between 0 and 1")
	case cfg.Baseline != "" && !seen[cfg.Baseline]:
		return loadConfig{}, fmt.Errorf("-baseline %q is none of the targets", cfg.Baseline)
	}
	return cfg, nil
}

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseLoadFlags(args, stderr)
	if err != nil {
		return err
	}
	results, err := load(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if cfg.JSON {
		return writeJSON(stdout, cfg, results)
	}
	writeReport(stdout, cfg, results)
	return nil
}

// load runs the schedule and returns one stats per target, in cfg.Targets' order.
func load(ctx context.Context, cfg loadConfig, progress io.Writer) ([]*stats, error) {
	slots, err := schedule(len(cfg.Targets), cfg.N, cfg.Duration, cfg.RoundDuration, cfg.Rounds)
	if err != nil {
		return nil, err
	}
	if cfg.Warmup > 0 {
		warm := make([]slot, len(cfg.Targets))
		for i := range warm {
			warm[i] = slot{Target: i, Round: -1, Duration: cfg.Warmup, Warmup: true}
		}
		slots = append(warm, slots...)
	}
	if cfg.Quiet {
		progress = io.Discard
	}
	if cfg.Shape.Nonce == "" {
		cfg.Shape.Nonce = strconv.FormatInt(time.Now().UnixNano(), 36)
	}

	clients := make([]*http.Client, len(cfg.Targets))
	for i := range clients {
		clients[i] = newClient(cfg.Concurrency, cfg.Timeout)
		defer clients[i].CloseIdleConnections()
	}
	results := make([]*stats, len(cfg.Targets))
	for i := range results {
		results[i] = newStats()
	}
	rounds := slots[len(slots)-1].Round + 1
	var seed atomic.Uint64
	for _, sl := range slots {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("interrupted: %w", err)
		}
		t := cfg.Targets[sl.Target]
		s := runSlot(ctx, cfg, t, clients[sl.Target], sl, &seed)
		what := fmt.Sprintf("round %d/%d", sl.Round+1, rounds)
		if sl.Warmup {
			what = "warmup"
		}
		fmt.Fprintf(progress, "%-12s %-16s %7d requests in %6.2fs: %8.0f 2xx/s, p99 %s%s\n",
			what, t.Name, s.Sent, s.Elapsed.Seconds(), perSecond(s.ok(), s.Elapsed),
			formatMicros(s.Hist.ValueAtQuantile(99)), problems(s))
		if !sl.Warmup {
			results[sl.Target].merge(s)
		}
	}
	for i, t := range cfg.Targets {
		if t.PID == 0 {
			results[i].ProcErr = "no pid"
			continue
		}
		p, err := readProc(t.PID)
		if err != nil {
			results[i].ProcErr = err.Error()
			continue
		}
		results[i].ServerHWM, results[i].ServerRSS = p.HWM, p.RSS
	}
	return results, nil
}

// problems summarises a slot's failures for its progress line.
func problems(s *stats) string {
	bad := s.Sent - s.ok()
	if bad == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d not 2xx: %s)", bad, formatCounts(s))
}

// runSlot loads one target for one slot and measures it, the server's CPU time and this
// process's included.
func runSlot(ctx context.Context, cfg loadConfig, t target, c *http.Client, sl slot, seed *atomic.Uint64) *stats {
	var srvBefore, cliBefore procSample
	var procErr error
	if t.PID > 0 {
		srvBefore, procErr = readProc(t.PID)
	}
	cliBefore, _ = readProc(0)
	backendBefore, backendErr := backendCPU(cfg.BackendPIDs)
	start := time.Now()

	var s *stats
	if cfg.Rate > 0 {
		s = openLoop(ctx, cfg, t, c, sl, start, seed)
	} else {
		s = closedLoop(ctx, cfg, t, c, sl, start, seed)
	}

	s.Elapsed = time.Since(start)
	if cliAfter, err := readProc(0); err == nil && cliBefore.Valid {
		s.ClientCPU = cliAfter.CPU - cliBefore.CPU
	}
	if backendAfter, err := backendCPU(cfg.BackendPIDs); err == nil && backendErr == nil {
		s.BackendCPU = backendAfter - backendBefore
	} else {
		s.BackendErr = cmp.Or(backendErr, err).Error()
	}
	if t.PID > 0 && procErr == nil {
		var after procSample
		if after, procErr = readProc(t.PID); procErr == nil {
			s.ServerCPU = after.CPU - srvBefore.CPU
		}
	}
	if procErr != nil {
		s.ProcErr = procErr.Error()
	}
	return s
}

// backendCPU is the CPU time the backend processes have used so far.
func backendCPU(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		p, err := readProc(pid)
		if err != nil {
			return 0, fmt.Errorf("backend pid %d: %w", pid, err)
		}
		total += p.CPU
	}
	return total, nil
}

// closedLoop runs cfg.Concurrency workers that each send a request as soon as their last
// one is answered, until the slot's requests are used up or its time is over. Latency is
// from send to the end of the response body.
func closedLoop(ctx context.Context, cfg loadConfig, t target, c *http.Client, sl slot, start time.Time, seed *atomic.Uint64) *stats {
	remaining := atomic.Int64{}
	remaining.Store(math.MaxInt64)
	if sl.Requests > 0 {
		remaining.Store(sl.Requests)
	}
	var deadline time.Time
	if sl.Duration > 0 {
		deadline = start.Add(sl.Duration)
	}
	return fanOut(cfg.Concurrency, func(s *stats) {
		bodies := newBodyMaker(cfg.shapeOf(t), seed.Add(1))
		for ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) && remaining.Add(-1) >= 0 {
			body, matched := bodies.next()
			if matched {
				s.Matched++
			}
			sent := time.Now()
			status, err := send(ctx, c, t.URL, body)
			s.record(status, err, time.Since(sent))
		}
	})
}

// openLoop sends the slot's requests at fixed times, rate per second, whatever the server
// does; a dispatcher hands each request's due time to cfg.Concurrency workers. When they
// are all busy the requests wait in the queue, and the dispatcher behind it, but every
// latency is measured from the request's due time, so the wait counts. The slot ends when
// every request was sent and answered, or, for requests still not sent one timeout after
// the last was due, dropped (and counted).
func openLoop(ctx context.Context, cfg loadConfig, t target, c *http.Client, sl slot, start time.Time, seed *atomic.Uint64) *stats {
	total := sl.Requests
	if sl.Duration > 0 {
		byTime := int64(cfg.Rate * sl.Duration.Seconds())
		if total == 0 || byTime < total {
			total = byTime
		}
	}
	due := func(i int64) time.Time { return start.Add(time.Duration(float64(i) * float64(time.Second) / cfg.Rate)) }
	giveUp := due(total).Add(cfg.Timeout)

	queue := make(chan time.Time, 4096)
	go func() {
		defer close(queue)
		timer := time.NewTimer(0)
		defer timer.Stop()
		for i := range total {
			at := due(i)
			if wait := time.Until(at); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			select {
			case queue <- at:
			case <-ctx.Done():
				return
			}
		}
	}()
	return fanOut(cfg.Concurrency, func(s *stats) {
		bodies := newBodyMaker(cfg.shapeOf(t), seed.Add(1))
		for at := range queue {
			if ctx.Err() != nil || time.Now().After(giveUp) {
				s.Dropped++
				continue
			}
			body, matched := bodies.next()
			if matched {
				s.Matched++
			}
			status, err := send(ctx, c, t.URL, body)
			s.record(status, err, time.Since(at))
		}
	})
}

// fanOut runs work on n goroutines, each with its own stats, and merges them.
func fanOut(n int, work func(s *stats)) *stats {
	parts := make([]*stats, n)
	var wg sync.WaitGroup
	for i := range parts {
		parts[i] = newStats()
		wg.Go(func() { work(parts[i]) })
	}
	wg.Wait()
	total := newStats()
	for _, p := range parts {
		total.merge(p)
	}
	return total
}

// send POSTs one body and reads the whole response.
func send(ctx context.Context, c *http.Client, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "switchboard-load")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("reading the response: %w", err)
	}
	return resp.StatusCode, nil
}

// newClient returns a keep-alive client for one target: up to conc connections, no proxy
// (an environment proxy could send the load elsewhere), no redirects, and a dialer that
// refuses any address that is not loopback.
func newClient(conc int, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: dialLoopbackOnly}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			MaxIdleConns:        conc,
			MaxIdleConnsPerHost: conc,
			MaxConnsPerHost:     conc,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
