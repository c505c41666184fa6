package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-run/switchboard/runtime/server"
)

// envPrefix starts the environment variable of every serve flag:
// --max-body is SWITCHBOARD_MAX_BODY.
const envPrefix = "SWITCHBOARD_"

// serveSettings are the serve command's settings after flags, environment and config file
// have been merged.
type serveSettings struct {
	listen               string
	publicURL            string
	connectors           string
	dataDir              string
	redisURL             string
	natsURL              string
	embeddedNATSListen   string
	debugListen          string
	logLevel             logLevel
	apiToken             string
	allowPrivateNetworks bool
	maxBody              byteSize
	scriptTimeout        time.Duration
	reloadInterval       time.Duration
	ingestRate           float64
	ingestBurst          int
	dedupTTL             time.Duration
	deliveryTimeout      time.Duration
	deliveryRetries      durationList
	config               string
}

// serverConfig turns the settings into the server's configuration.
func (s serveSettings) serverConfig() server.Config {
	return server.Config{
		Listen:               s.listen,
		PublicURL:            s.publicURL,
		ConnectorsDir:        s.connectors,
		DataDir:              s.dataDir,
		RedisURL:             s.redisURL,
		NATSURL:              s.natsURL,
		EmbeddedNATSListen:   s.embeddedNATSListen,
		APIToken:             s.apiToken,
		AllowPrivateNetworks: s.allowPrivateNetworks,
		MaxBody:              int64(s.maxBody),
		ScriptTimeout:        s.scriptTimeout,
		ReloadInterval:       orNever(s.reloadInterval),
		IngestRate:           orNever(s.ingestRate),
		IngestBurst:          s.ingestBurst,
		DedupTTL:             s.dedupTTL,
		DeliveryTimeout:      s.deliveryTimeout,
		DeliverySchedule:     s.deliveryRetries.durations(),
	}
}

// orNever turns a setting's "0: off" into the server's "negative: off" (where zero is the
// default).
func orNever[T time.Duration | float64](v T) T {
	if v <= 0 {
		return -1
	}
	return v
}

// serveFlags declares the serve flags on fs, with their defaults, writing into s.
func serveFlags(fs *flag.FlagSet, s *serveSettings) {
	s.maxBody = 1 << 20
	s.deliveryRetries = defaultDeliveryRetries
	fs.StringVar(&s.listen, "listen", ":8080", "HTTP address")
	fs.StringVar(&s.publicURL, "public-url", "http://localhost:8080", "base of the webhook and channel URIs handed out")
	fs.StringVar(&s.connectors, "connectors", "./connectors", "connectors directory")
	fs.StringVar(&s.dataDir, "data-dir", "./data", "where the embedded store and embedded NATS keep their files")
	fs.StringVar(&s.redisURL, "redis-url", "", "Redis URL for integrations, connections and subscriptions (empty: the embedded store)")
	fs.StringVar(&s.natsURL, "nats-url", "", "NATS (JetStream) URL to publish to (empty: an in-process NATS server)")
	fs.StringVar(&s.embeddedNATSListen, "embedded-nats-listen", "", "also expose the in-process NATS on this address, e.g. 127.0.0.1:4222")
	fs.StringVar(&s.debugListen, "debug-listen", "", "serve Go's pprof profiles under /debug/pprof/ on this address, e.g. 127.0.0.1:6060 (empty: off; never expose it publicly)")
	fs.Var(&s.logLevel, "log-level", "least severe log level written: debug, info, warn or error (default info; debug adds a line per successful ingest request)")
	fs.StringVar(&s.apiToken, "api-token", "", "bearer token required on /v1 routes (empty: none, a warning is logged)")
	fs.BoolVar(&s.allowPrivateNetworks, "allow-private-networks", false, "let apiClient, channels and delivery endpoints reach loopback and private addresses")
	fs.Var(&s.maxBody, "max-body", "largest request body accepted on ingest routes (1MiB, 512KiB, 1048576)")
	fs.DurationVar(&s.scriptTimeout, "script-timeout", 5*time.Second, "deadline of one JavaScript call")
	fs.DurationVar(&s.reloadInterval, "reload-interval", 2*time.Second, "how often the connectors directory is polled for edits, which take effect without a restart (0: no hot reload)")
	fs.Float64Var(&s.ingestRate, "ingest-rate", 1000, "requests per second each global webhook URL accepts once its burst is spent; over it, 429 (0: no limit)")
	fs.IntVar(&s.ingestBurst, "ingest-burst", 2000, "requests a global webhook URL may send at once above its ingest rate")
	fs.DurationVar(&s.dedupTTL, "dedup-ttl", 7*24*time.Hour, "how long a published event's id (or sender's delivery id) is remembered, so that a retry publishes nothing")
	fs.DurationVar(&s.deliveryTimeout, "delivery-timeout", 15*time.Second, "how long a delivery endpoint has to answer one attempt")
	fs.Var(&s.deliveryRetries, "delivery-retries", "waits before each delivery attempt, comma separated; their number is the number of attempts before a dead letter")
	fs.StringVar(&s.config, "config", "", "YAML file with the same settings, keys named like the flags")
}

// parseServeSettings merges the serve settings from, in order of precedence, the command
// line, the environment (SWITCHBOARD_*), the YAML file named by --config (or
// SWITCHBOARD_CONFIG), and the defaults. flag.ErrHelp is returned after printing usage for
// -h.
func parseServeSettings(args []string, getenv func(string) string, stderr io.Writer) (serveSettings, error) {
	var s serveSettings
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serveFlags(fs, &s)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: switchboard serve [flags]\n\nEvery flag can also be set with SWITCHBOARD_<FLAG> (e.g. SWITCHBOARD_MAX_BODY)\nor in the YAML file given to --config (e.g. max-body: 512KiB).\nPrecedence: flag, environment, config file, default.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	// Environment next: it fills only what the command line left unset.
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		name := envName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		set[f.Name] = true
	})
	if err := errors.Join(errs...); err != nil {
		return s, err
	}

	if s.config == "" {
		return s, nil
	}
	values, err := readConfigFile(s.config)
	if err != nil {
		return s, err
	}
	for _, kv := range values {
		f := fs.Lookup(kv.name)
		if f == nil || kv.name == "config" {
			errs = append(errs, fmt.Errorf("%s:%d: unknown setting %q", s.config, kv.line, kv.name))
			continue
		}
		if set[kv.name] {
			continue
		}
		if err := fs.Set(kv.name, kv.value); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %s: %w", s.config, kv.line, kv.name, err))
		}
	}
	return s, errors.Join(errs...)
}

// envName is the environment variable of a flag: SWITCHBOARD_ + name in upper case, - as _.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

type configValue struct {
	name, value string
	line        int
}

// readConfigFile reads a YAML mapping of flag names to scalar values, in file order.
func readConfigFile(path string) ([]configValue, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parsing config file %s: %w", path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // empty file
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping of setting names to values", path, m.Line)
	}
	var out []configValue
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s:%d: %s: want a single value", path, v.Line, k.Value)
		}
		if v.Tag == "!!null" {
			continue
		}
		out = append(out, configValue{name: k.Value, value: v.Value, line: k.Line})
	}
	return out, nil
}

// byteSize is a flag.Value for sizes written as 1048576, 1MiB, 512KiB, 1MB or 10kB.
type byteSize int64

func (b *byteSize) String() string {
	n := int64(*b)
	switch {
	case n > 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n > 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n > 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}

func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// byteUnit is the size of a unit, case-insensitive: binary (KiB, MiB, GiB) or decimal (kB,
// MB, GB); no unit is bytes.
func byteUnit(u string) (int64, bool) {
	switch strings.ToLower(u) {
	case "", "b":
		return 1, true
	case "kib":
		return 1 << 10, true
	case "mib":
		return 1 << 20, true
	case "gib":
		return 1 << 30, true
	case "k", "kb":
		return 1000, true
	case "m", "mb":
		return 1000 * 1000, true
	case "g", "gb":
		return 1000 * 1000 * 1000, true
	}
	return 0, false
}

func parseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes, optionally with a unit such as KiB or MiB", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	unit, ok := byteUnit(strings.TrimSpace(t[i:]))
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB, kB, MB or GB)", s, strings.TrimSpace(t[i:]))
	}
	if n <= 0 {
		return 0, fmt.Errorf("size %q: must be positive", s)
	}
	if n > math.MaxInt64/unit {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * unit, nil
}

// logLevel is a flag.Value for the log's level: debug, info, warn or error. Its zero value is
// info.
type logLevel slog.Level

func (l *logLevel) String() string { return strings.ToLower(slog.Level(*l).String()) }

func (l *logLevel) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		*l = logLevel(slog.LevelDebug)
	case "info":
		*l = logLevel(slog.LevelInfo)
	case "warn":
		*l = logLevel(slog.LevelWarn)
	case "error":
		*l = logLevel(slog.LevelError)
	default:
		return fmt.Errorf("log-level %q: want debug, info, warn or error", s)
	}
	return nil
}

// defaultDeliveryRetries is SPEC 5's schedule: the first attempt at once, then retries.
const defaultDeliveryRetries = "0s,5s,5m,30m,2h,5h,10h,14h,20h,24h"

// durationList is a flag.Value for a comma-separated list of durations, such as the delivery
// retry schedule. It keeps the text (checked when set), so that settings stay comparable.
type durationList string

func (d *durationList) String() string { return string(*d) }

func (d *durationList) Set(s string) error {
	if _, err := parseDurations(s); err != nil {
		return err
	}
	*d = durationList(s)
	return nil
}

// durations returns the list; Set has checked it.
func (d durationList) durations() []time.Duration {
	list, _ := parseDurations(string(d))
	return list
}

func parseDurations(s string) ([]time.Duration, error) {
	var list []time.Duration
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		if d < 0 {
			return nil, fmt.Errorf("negative duration %s", d)
		}
		list = append(list, d)
	}
	return list, nil
}
