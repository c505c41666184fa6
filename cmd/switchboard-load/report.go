package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// quantiles are the percentiles reported, in percent.
var quantiles = []float64{50, 90, 99, 99.9}

// summary is one target's row, the numbers the tables and the JSON output show.
type summary struct {
	Name          string           `json:"name"`
	URL           string           `json:"-"` // may hold a webhook token
	PID           int              `json:"pid,omitempty"`
	Requests      int64            `json:"requests"`
	OK            int64            `json:"ok"`
	Matched       int64            `json:"matched"`
	Dropped       int64            `json:"dropped,omitempty"`
	ElapsedSec    float64          `json:"elapsedSeconds"`
	OKPerSec      float64          `json:"okPerSecond"`
	LatencyMicros map[string]int64 `json:"latencyMicros"` // p50, p90, p99, p99.9, max
	Statuses      map[string]int64 `json:"statuses"`
	Errors        map[string]int64 `json:"errors,omitempty"`
	FirstError    string           `json:"firstError,omitempty"`
	// Server figures, from /proc; zero without a pid.
	Users                 int64   `json:"users,omitempty"` // the target's own -users-of
	ServerCPUPerReqMicros float64 `json:"serverCpuPerRequestMicros,omitempty"`
	ServerCores           float64 `json:"serverCores,omitempty"`
	ServerPeakRSSBytes    int64   `json:"serverPeakRssBytes,omitempty"`
	ServerRSSBytes        int64   `json:"serverRssBytes,omitempty"`
	ProcErr               string  `json:"procError,omitempty"`
	ClientCPUPerReqMicros float64 `json:"clientCpuPerRequestMicros"`
	// The -backend-pid processes' CPU time during the target's turns, per request.
	BackendCPUPerReqMicros float64 `json:"backendCpuPerRequestMicros,omitempty"`
	BackendErr             string  `json:"backendError,omitempty"`
	serverCPUIdle          bool    // a pid whose process used no CPU: probably not the server
}

func summarize(t target, s *stats) summary {
	sum := summary{
		Name:          t.Name,
		URL:           t.URL,
		PID:           t.PID,
		Users:         t.Users,
		Requests:      s.Sent,
		OK:            s.ok(),
		Matched:       s.Matched,
		Dropped:       s.Dropped,
		ElapsedSec:    s.Elapsed.Seconds(),
		OKPerSec:      perSecond(s.ok(), s.Elapsed),
		LatencyMicros: map[string]int64{"max": s.Hist.Max()},
		Statuses:      map[string]int64{},
		Errors:        s.Errors,
		FirstError:    s.FirstError,
		ProcErr:       s.ProcErr,
	}
	for _, q := range quantiles {
		sum.LatencyMicros[quantileName(q)] = s.Hist.ValueAtQuantile(q)
	}
	for status, n := range s.Statuses {
		sum.Statuses[strconv.Itoa(status)] = n
	}
	if s.Sent > 0 {
		sum.ClientCPUPerReqMicros = float64(s.ClientCPU.Microseconds()) / float64(s.Sent)
	}
	if s.Sent > 0 && s.BackendErr == "" {
		sum.BackendCPUPerReqMicros = float64(s.BackendCPU.Microseconds()) / float64(s.Sent)
	}
	sum.BackendErr = s.BackendErr
	if t.PID > 0 && s.ProcErr == "" {
		sum.serverCPUIdle = s.ServerCPU == 0 && s.responses() >= 100
		if n := s.responses(); n > 0 {
			sum.ServerCPUPerReqMicros = float64(s.ServerCPU.Microseconds()) / float64(n)
		}
		if s.Elapsed > 0 {
			sum.ServerCores = s.ServerCPU.Seconds() / s.Elapsed.Seconds()
		}
		sum.ServerPeakRSSBytes, sum.ServerRSSBytes = s.ServerHWM, s.ServerRSS
	}
	return sum
}

func quantileName(q float64) string { return "p" + strconv.FormatFloat(q, 'f', -1, 64) }

// baselineIndex is the index of the target the ratios are to.
func baselineIndex(cfg loadConfig) int {
	for i, t := range cfg.Targets {
		if t.Name == cfg.Baseline {
			return i
		}
	}
	return 0
}

// writeReport prints the table of results and the table of ratios to the baseline.
func writeReport(w io.Writer, cfg loadConfig, results []*stats) {
	sums := make([]summary, len(results))
	for i, s := range results {
		sums[i] = summarize(cfg.Targets[i], s)
	}
	mode := fmt.Sprintf("closed loop, %d workers", cfg.Concurrency)
	if cfg.Rate > 0 {
		mode = fmt.Sprintf("open loop, %g requests/s per target, at most %d in flight; latency from each request's due time", cfg.Rate, cfg.Concurrency)
	}
	users := strconv.FormatInt(cfg.Shape.Users, 10)
	var own []string
	for _, t := range cfg.Targets {
		if t.Users > 0 {
			own = append(own, fmt.Sprintf("%s: %d", t.Name, t.Users))
		}
	}
	if len(own) > 0 {
		users += " (" + strings.Join(own, ", ") + ")"
	}
	fmt.Fprintf(w, "%s; bodies ~%d bytes, %.0f%% from %s subscribed users\n\n", mode, cfg.Shape.Size, 100*cfg.Shape.Match, users)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\trequests\t2xx/s\tp50\tp90\tp99\tp99.9\tmax\tsrv cpu/req\tsrv cores\tsrv peak rss\tbackend cpu/req\tclient cpu/req\tstatuses\terrors\t")
	for _, s := range sums {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			s.Name, s.Requests, s.OKPerSec,
			formatMicros(s.LatencyMicros["p50"]), formatMicros(s.LatencyMicros["p90"]),
			formatMicros(s.LatencyMicros["p99"]), formatMicros(s.LatencyMicros["p99.9"]),
			formatMicros(s.LatencyMicros["max"]),
			orDash(s.ServerCPUPerReqMicros > 0, fmt.Sprintf("%.0fµs", s.ServerCPUPerReqMicros)),
			orDash(s.ServerCores > 0, fmt.Sprintf("%.2f", s.ServerCores)),
			orDash(s.ServerPeakRSSBytes > 0, formatBytes(s.ServerPeakRSSBytes)),
			orDash(len(cfg.BackendPIDs) > 0 && s.BackendErr == "", fmt.Sprintf("%.0fµs", s.BackendCPUPerReqMicros)),
			fmt.Sprintf("%.0fµs", s.ClientCPUPerReqMicros),
			formatMap(s.Statuses), orDash(len(s.Errors) > 0, formatMap(s.Errors)))
	}
	tw.Flush()
	for _, s := range sums {
		if s.FirstError != "" {
			fmt.Fprintf(w, "%s: first other error: %s\n", s.Name, s.FirstError)
		}
		if s.PID > 0 && s.ProcErr != "" {
			fmt.Fprintf(w, "%s: no server figures: %s\n", s.Name, s.ProcErr)
		}
		if s.serverCPUIdle {
			fmt.Fprintf(w, "%s: pid %d used no CPU time while loaded: is it the server's pid (not a shell's)?\n", s.Name, s.PID)
		}
		if s.BackendErr != "" {
			fmt.Fprintf(w, "%s: no backend figures: %s\n", s.Name, s.BackendErr)
		}
		if s.Dropped > 0 {
			fmt.Fprintf(w, "%s: %d requests dropped: still unsent one -timeout after the slot's last was due\n", s.Name, s.Dropped)
		}
	}

	if len(sums) < 2 {
		return
	}
	b := sums[baselineIndex(cfg)]
	fmt.Fprintf(w, "\nratios to %s (2xx/s: higher is better; the rest: lower is better)\n", b.Name)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\t2xx/s\tp50\tp99\tp99.9\tsrv cpu/req\tsrv peak rss\tbackend cpu/req\t")
	for _, s := range sums {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Name,
			ratio(s.OKPerSec, b.OKPerSec),
			ratio(float64(s.LatencyMicros["p50"]), float64(b.LatencyMicros["p50"])),
			ratio(float64(s.LatencyMicros["p99"]), float64(b.LatencyMicros["p99"])),
			ratio(float64(s.LatencyMicros["p99.9"]), float64(b.LatencyMicros["p99.9"])),
			ratio(s.ServerCPUPerReqMicros, b.ServerCPUPerReqMicros),
			ratio(float64(s.ServerPeakRSSBytes), float64(b.ServerPeakRSSBytes)),
			ratio(s.BackendCPUPerReqMicros, b.BackendCPUPerReqMicros))
	}
	tw.Flush()
}

// writeJSON prints the results as one JSON document.
func writeJSON(w io.Writer, cfg loadConfig, results []*stats) error {
	out := struct {
		Mode        string    `json:"mode"`
		Rate        float64   `json:"rate,omitempty"`
		Concurrency int       `json:"concurrency"`
		BodySize    int       `json:"bodySize"`
		Users       int64     `json:"users"`
		Match       float64   `json:"match"`
		Baseline    string    `json:"baseline"`
		Targets     []summary `json:"targets"`
	}{Mode: "closed", Rate: cfg.Rate, Concurrency: cfg.Concurrency, BodySize: cfg.Shape.Size,
		Users: cfg.Shape.Users, Match: cfg.Shape.Match, Baseline: cfg.Targets[baselineIndex(cfg)].Name}
	if cfg.Rate > 0 {
		out.Mode = "open"
	}
	for i, s := range results {
		out.Targets = append(out.Targets, summarize(cfg.Targets[i], s))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("writing the results: %w", err)
	}
	return nil
}

func ratio(v, base float64) string {
	if v <= 0 || base <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v/base)
}

func orDash(ok bool, s string) string {
	if !ok {
		return "-"
	}
	return s
}

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// formatMicros prints a latency in µs with three significant digits.
func formatMicros(us int64) string {
	switch {
	case us <= 0:
		return "-"
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 1_000_000:
		return strconv.FormatFloat(float64(us)/1000, 'g', 3, 64) + "ms"
	}
	return strconv.FormatFloat(float64(us)/1e6, 'g', 3, 64) + "s"
}

func formatBytes(b int64) string {
	return fmt.Sprintf("%.0fMiB", float64(b)/(1<<20))
}

// formatMap prints counts as "k:v k:v", most frequent first.
func formatMap(m map[string]int64) string {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ":" + strconv.FormatInt(m[k], 10)
	}
	return strings.Join(parts, " ")
}

// formatCounts prints the statuses and errors of s.
func formatCounts(s *stats) string {
	m := make(map[string]int64, len(s.Statuses)+len(s.Errors))
	for k, v := range s.Statuses {
		m[strconv.Itoa(k)] = v
	}
	maps.Copy(m, s.Errors)
	return formatMap(m)
}
