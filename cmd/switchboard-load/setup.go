package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/runtime/store/redisstore"
)

// setupConfig says what data to prepare.
type setupConfig struct {
	RedisURL       string
	Prefix         string // switchboard's key prefix (its --redis-prefix)
	BaselinePrefix string
	Switchboard    bool
	Baseline       bool
	Integration    string
	Connector      string
	Webhook        string
	Event          string
	API            string // switchboard's base URL; "": create the integration through the store
	APIToken       string
	PublicURL      string // base of the printed webhook URL when there is no -api
	Subscriptions  int64
	PerUser        int64
	Customers      int64
	Batch          int64
	Workers        int
	Bulk           bool
}

func parseSetupFlags(args []string, stderr io.Writer) (setupConfig, error) {
	fs := flag.NewFlagSet("switchboard-load setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg setupConfig
	fs.StringVar(&cfg.RedisURL, "redis-url", "redis://127.0.0.1:6379", "the Redis every target reads (loopback only)")
	fs.StringVar(&cfg.Prefix, "prefix", redisstore.DefaultPrefix, "switchboard's Redis key prefix")
	fs.StringVar(&cfg.BaselinePrefix, "baseline-prefix", "bl", "the baselines' Redis key prefix (their -prefix)")
	fs.BoolVar(&cfg.Switchboard, "switchboard", true, "prepare switchboard's integration, connections and subscriptions")
	fs.BoolVar(&cfg.Baseline, "baseline", true, "prepare the baselines' selector sets")
	fs.StringVar(&cfg.Integration, "integration", "load", "integration key (the baselines' -integration)")
	fs.StringVar(&cfg.Connector, "connector", "example", "connector of the integration; its handle must route by user_id:${data.from_user_id}")
	fs.StringVar(&cfg.Webhook, "webhook", "webhook-key", "global webhook key (the baselines' -webhook)")
	fs.StringVar(&cfg.Event, "event", "message-posted", "event key of the subscriptions")
	fs.StringVar(&cfg.API, "api", "", "switchboard's base URL, e.g. http://127.0.0.1:8080: create the integration and read the webhook URL through its API (default: through the store)")
	fs.StringVar(&cfg.APIToken, "api-token", "", "switchboard's API token, if it has one")
	fs.StringVar(&cfg.PublicURL, "public-url", "http://127.0.0.1:8080", "switchboard's public URL, for the printed webhook URL when there is no -api")
	fs.Int64Var(&cfg.Subscriptions, "subscriptions", 1000, "subscriptions to write")
	fs.Int64Var(&cfg.PerUser, "per-user", 1, "subscriptions per subscribed user: a matched request publishes this many events")
	fs.Int64Var(&cfg.Customers, "customers", 1000, "distinct customer ids (organizationId) the connections are spread over")
	fs.Int64Var(&cfg.Batch, "batch", 1000, "users written per pipeline")
	fs.IntVar(&cfg.Workers, "workers", 4, "pipelines in flight")
	fs.BoolVar(&cfg.Bulk, "bulk", true, "write switchboard's records in pipelined batches (false: one store call each, slow)")
	if err := fs.Parse(args); err != nil {
		return setupConfig{}, err
	}
	if fs.NArg() > 0 {
		return setupConfig{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case cfg.Subscriptions <= 0 || cfg.PerUser <= 0 || cfg.Customers <= 0 || cfg.Batch <= 0 || cfg.Workers <= 0:
		return setupConfig{}, errors.New("-subscriptions, -per-user, -customers, -batch and -workers must be positive")
	case cfg.Subscriptions%cfg.PerUser != 0:
		return setupConfig{}, fmt.Errorf("-subscriptions %d is not a multiple of -per-user %d", cfg.Subscriptions, cfg.PerUser)
	case !cfg.Switchboard && !cfg.Baseline:
		return setupConfig{}, errors.New("nothing to do: -switchboard=false and -baseline=false")
	}
	for _, k := range []string{cfg.Integration, cfg.Webhook, cfg.Event} {
		if !store.ValidKey(k) {
			return setupConfig{}, fmt.Errorf("%q is not a valid key", k)
		}
	}
	if err := checkLoopback(cfg.RedisURL); err != nil {
		return setupConfig{}, fmt.Errorf("refusing -redis-url: %w", err)
	}
	if cfg.API != "" {
		if err := checkLoopback(cfg.API); err != nil {
			return setupConfig{}, fmt.Errorf("refusing -api: %w", err)
		}
	}
	return cfg, nil
}

func runSetup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseSetupFlags(args, stderr)
	if err != nil {
		return err
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("parsing -redis-url: %w", err)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, Control: dialLoopbackOnly}
	opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr)
	}
	opts.PoolSize = max(opts.PoolSize, cfg.Workers+2)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("pinging redis: %w", err)
	}

	users := cfg.Subscriptions / cfg.PerUser
	start := time.Now()
	if cfg.Switchboard {
		st := redisstore.New(rdb, cfg.Prefix)
		url, err := prepareIntegration(ctx, cfg, st)
		if err != nil {
			return err
		}
		t := time.Now()
		if cfg.Bulk {
			err = forBatches(ctx, cfg, users, stderr, "switchboard", func(ctx context.Context, first, last int64) error {
				return writeSwitchboardBatch(ctx, rdb, cfg, first, last)
			})
		} else {
			err = forBatches(ctx, cfg, users, stderr, "switchboard", func(ctx context.Context, first, last int64) error {
				return createThroughStore(ctx, st, cfg, first, last)
			})
		}
		if err != nil {
			return err
		}
		took := time.Since(t)
		if err := verifySwitchboard(ctx, st, cfg, users); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "switchboard: %d subscriptions of %d users written in %s (%.0f subscriptions/s), checked through redisstore\n",
			cfg.Subscriptions, users, took.Round(time.Millisecond), float64(cfg.Subscriptions)/took.Seconds())
		fmt.Fprintf(stdout, "switchboard webhook URL: %s\n", url)
	}
	if cfg.Baseline {
		t := time.Now()
		err := forBatches(ctx, cfg, users, stderr, "baseline", func(ctx context.Context, first, last int64) error {
			return writeBaselineBatch(ctx, rdb, cfg, first, last)
		})
		if err != nil {
			return err
		}
		took := time.Since(t)
		if err := verifyBaseline(ctx, rdb, cfg, users); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "baselines: %d selector sets %s:sel:user_id:0..%d with %d members each, written in %s\n",
			users, cfg.BaselinePrefix, users-1, cfg.PerUser, took.Round(time.Millisecond))
	}
	if mem, err := rdb.Info(ctx, "memory").Result(); err == nil {
		for line := range strings.Lines(mem) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory_human:"); ok {
				fmt.Fprintf(stdout, "redis memory: %s\n", v)
			}
		}
	}
	fmt.Fprintf(stdout, "setup took %s; run with: -users %d\n", time.Since(start).Round(time.Millisecond), users)
	return nil
}

// Ids of the generated records: user u has connection lc_u, subscriptions ls_u_k, and
// customer cust_(u mod customers).
func connectionID(u int64) string { return "lc_" + strconv.FormatInt(u, 10) }
func subscriptionID(u, k int64) string {
	return "ls_" + strconv.FormatInt(u, 10) + "_" + strconv.FormatInt(k, 10)
}
func customerID(cfg setupConfig, u int64) string {
	return "cust_" + strconv.FormatInt(u%cfg.Customers, 10)
}
func selector(u int64) string { return "user_id:" + strconv.FormatInt(u, 10) }

func records(cfg setupConfig, u int64, now time.Time) (store.Connection, []store.Subscription) {
	c := store.Connection{
		ID:             connectionID(u),
		IntegrationKey: cfg.Integration,
		CustomerID:     customerID(cfg, u),
		Credentials:    map[string]any{"accessToken": "load-" + strconv.FormatInt(u, 10)},
		Parameters:     map[string]any{},
		CreatedAt:      now,
	}
	subs := make([]store.Subscription, cfg.PerUser)
	for k := range cfg.PerUser {
		subs[k] = store.Subscription{
			ID:               subscriptionID(u, k),
			ConnectionID:     c.ID,
			IntegrationKey:   c.IntegrationKey,
			CustomerID:       c.CustomerID,
			EventKey:         cfg.Event,
			Parameters:       map[string]any{},
			Status:           "subscribed",
			GlobalWebhookKey: cfg.Webhook,
			Selector:         selector(u),
			CreatedAt:        now,
			UpdatedAt:        now,
		}
	}
	return c, subs
}

// prepareIntegration makes sure the integration exists, through the API when there is one,
// and returns its webhook URL.
func prepareIntegration(ctx context.Context, cfg setupConfig, st *redisstore.Store) (string, error) {
	if cfg.API != "" {
		return prepareThroughAPI(ctx, cfg, st)
	}
	now := time.Now().UTC()
	err := st.CreateIntegration(ctx, store.Integration{Key: cfg.Integration, ConnectorKey: cfg.Connector,
		Parameters: map[string]any{}, CreatedAt: now, UpdatedAt: now})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return "", fmt.Errorf("creating the integration: %w", err)
	}
	if err := checkIntegration(ctx, cfg, st); err != nil {
		return "", err
	}
	token, err := st.WebhookToken(ctx, cfg.Integration, cfg.Webhook)
	if err != nil {
		return "", fmt.Errorf("reading the webhook token: %w", err)
	}
	return strings.TrimRight(cfg.PublicURL, "/") + "/webhooks/" + token, nil
}

// checkIntegration makes sure the stored integration is of the expected connector: data
// left by an earlier setup with another connector would not route.
func checkIntegration(ctx context.Context, cfg setupConfig, st *redisstore.Store) error {
	in, err := st.GetIntegration(ctx, cfg.Integration)
	if err != nil {
		return fmt.Errorf("reading the integration back from redis (prefix %q): %w", cfg.Prefix, err)
	}
	if in.ConnectorKey != cfg.Connector {
		return fmt.Errorf("integration %q exists with connector %q, not %q: use another -integration", cfg.Integration, in.ConnectorKey, cfg.Connector)
	}
	return nil
}

func prepareThroughAPI(ctx context.Context, cfg setupConfig, st *redisstore.Store) (string, error) {
	c := newClient(2, 30*time.Second)
	defer c.CloseIdleConnections()
	base := strings.TrimRight(cfg.API, "/")
	call := func(method, path string, in, out any) (int, error) {
		var body io.Reader
		if in != nil {
			data, err := json.Marshal(in)
			if err != nil {
				return 0, err
			}
			body = bytes.NewReader(data)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, body)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		if cfg.APIToken != "" {
			req.Header.Set("Authorization", "Bearer "+cfg.APIToken)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return resp.StatusCode, err
		}
		if resp.StatusCode/100 != 2 {
			return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
		}
		if out != nil {
			return resp.StatusCode, json.Unmarshal(data, out)
		}
		return resp.StatusCode, nil
	}

	status, err := call(http.MethodPost, "/v1/integrations", map[string]any{
		"key": cfg.Integration, "connectorKey": cfg.Connector, "parameters": map[string]any{},
	}, nil)
	if err != nil && status != http.StatusConflict {
		return "", fmt.Errorf("creating the integration through the api: %w", err)
	}
	if err := checkIntegration(ctx, cfg, st); err != nil {
		return "", fmt.Errorf("%w (is switchboard at -api using -redis-url and -prefix?)", err)
	}
	var hooks []struct{ Key, URI string }
	if _, err := call(http.MethodGet, "/v1/integrations/"+cfg.Integration+"/webhooks", nil, &hooks); err != nil {
		return "", fmt.Errorf("reading the webhook URL through the api: %w", err)
	}
	for _, h := range hooks {
		if h.Key == cfg.Webhook {
			return h.URI, nil
		}
	}
	return "", fmt.Errorf("integration %q has no webhook %q", cfg.Integration, cfg.Webhook)
}

// forBatches calls write for users [0, users) in batches of cfg.Batch on cfg.Workers
// goroutines, printing progress now and then; the first error stops it.
func forBatches(ctx context.Context, cfg setupConfig, users int64, progress io.Writer, what string,
	write func(ctx context.Context, first, last int64) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				first := next.Add(cfg.Batch) - cfg.Batch
				if first >= users {
					return
				}
				last := min(first+cfg.Batch, users)
				if err := write(ctx, first, last); err != nil {
					cancel(fmt.Errorf("writing %s data of users %d..%d: %w", what, first, last-1, err))
					return
				}
				done.Add(last - first)
			}
		})
	}
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				fmt.Fprintf(progress, "%s: %d/%d users written\n", what, done.Load(), users)
			}
		}
	}()
	wg.Wait()
	close(stop)
	return context.Cause(ctx)
}

// writeSwitchboardBatch writes the connections and subscriptions of users [first, last) in
// one pipeline, in redisstore's key layout (see its package doc): the global owner pointers,
// the records, the integration's and each connection's id sets, and the selector index.
// verifySwitchboard reads them back through redisstore, so a layout that drifted fails the
// setup instead of silently routing nothing.
func writeSwitchboardBatch(ctx context.Context, rdb *redis.Client, cfg setupConfig, first, last int64) error {
	slot := cfg.Prefix + ":{int:" + cfg.Integration + "}"
	now := time.Now().UTC()
	pairs := make([]any, 0, (last-first)*(2+4*cfg.PerUser))
	connIDs := make([]any, 0, last-first)
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for u := first; u < last; u++ {
			c, subs := records(cfg, u, now)
			data, err := json.Marshal(c)
			if err != nil {
				return err
			}
			pairs = append(pairs, cfg.Prefix+":connection:"+c.ID, cfg.Integration, slot+":connection:"+c.ID, data)
			connIDs = append(connIDs, c.ID)
			subIDs := make([]any, len(subs))
			for k, s := range subs {
				data, err := json.Marshal(s)
				if err != nil {
					return err
				}
				route, err := json.Marshal(store.RouteOf(s))
				if err != nil {
					return err
				}
				pairs = append(pairs, cfg.Prefix+":subscription:"+s.ID, cfg.Integration, slot+":subscription:"+s.ID, data)
				subIDs[k] = s.ID
				p.HSet(ctx, slot+":routes:"+cfg.Webhook+":"+s.Selector, s.ID, route)
			}
			p.SAdd(ctx, slot+":connection:"+c.ID+":subscriptions", subIDs...)
		}
		p.MSet(ctx, pairs...)
		p.SAdd(ctx, slot+":connections", connIDs...)
		return nil
	})
	return err
}

// createThroughStore creates the records of users [first, last) one store call at a time;
// records already there are left as they are.
func createThroughStore(ctx context.Context, st *redisstore.Store, cfg setupConfig, first, last int64) error {
	now := time.Now().UTC()
	for u := first; u < last; u++ {
		c, subs := records(cfg, u, now)
		if err := st.CreateConnection(ctx, c); err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
		for _, s := range subs {
			if err := st.CreateSubscription(ctx, s); err != nil && !errors.Is(err, store.ErrExists) {
				return err
			}
		}
	}
	return nil
}

// verifySwitchboard reads a few users' records back through redisstore, and checks that no
// user outside the range routes (left over from an earlier, larger setup: the unmatched
// requests would then match).
func verifySwitchboard(ctx context.Context, st *redisstore.Store, cfg setupConfig, users int64) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("checking switchboard's data through redisstore: "+format, args...)
	}
	for _, u := range []int64{0, users / 2, users - 1} {
		want, wantSubs := records(cfg, u, time.Time{})
		c, err := st.GetConnection(ctx, want.ID)
		if err != nil {
			return fail("%w (has redisstore's key layout changed? try -bulk=false)", err)
		}
		if c.IntegrationKey != cfg.Integration || c.CustomerID != want.CustomerID {
			return fail("connection %q reads back as integration %q, customer %q", c.ID, c.IntegrationKey, c.CustomerID)
		}
		subs, err := st.ListSubscriptions(ctx, want.ID)
		if err != nil {
			return fail("%w", err)
		}
		if int64(len(subs)) != cfg.PerUser {
			return fail("connection %q has %d subscriptions, want %d", want.ID, len(subs), cfg.PerUser)
		}
		routes, err := st.MatchRoutes(ctx, cfg.Integration, cfg.Webhook, []string{selector(u)})
		if err != nil {
			return fail("%w", err)
		}
		if got := routes[selector(u)]; int64(len(got)) != cfg.PerUser || got[0] != store.RouteOf(wantSubs[0]) {
			return fail("selector %q routes to %v, want %d routes like %v", selector(u), got, cfg.PerUser, store.RouteOf(wantSubs[0]))
		}
	}
	stray := []string{selector(users), selector(2*users - 1)}
	routes, err := st.MatchRoutes(ctx, cfg.Integration, cfg.Webhook, stray)
	if err != nil {
		return fail("%w", err)
	}
	if len(routes) > 0 {
		return fail("users beyond %d still have subscriptions from an earlier setup: use a fresh Redis database, -prefix or -integration", users-1)
	}
	return nil
}

// writeBaselineBatch writes the selector sets of users [first, last): one SET per selector
// whose members are the routes, in the JSON switchboard's index holds.
func writeBaselineBatch(ctx context.Context, rdb *redis.Client, cfg setupConfig, first, last int64) error {
	now := time.Time{}
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for u := first; u < last; u++ {
			_, subs := records(cfg, u, now)
			members := make([]any, len(subs))
			for k, s := range subs {
				route, err := json.Marshal(store.RouteOf(s))
				if err != nil {
					return err
				}
				members[k] = route
			}
			p.SAdd(ctx, baselineKey(cfg.BaselinePrefix, selector(u)), members...)
		}
		return nil
	})
	return err
}

func baselineKey(prefix, selector string) string { return prefix + ":sel:" + selector }

func verifyBaseline(ctx context.Context, rdb *redis.Client, cfg setupConfig, users int64) error {
	for u, want := range map[int64]int64{0: cfg.PerUser, users - 1: cfg.PerUser, users: 0, 2*users - 1: 0} {
		n, err := rdb.SCard(ctx, baselineKey(cfg.BaselinePrefix, selector(u))).Result()
		if err != nil {
			return fmt.Errorf("checking the baselines' data: %w", err)
		}
		if n != want {
			return fmt.Errorf("checking the baselines' data: %s has %d members, want %d (left from an earlier setup? use a fresh Redis database or -baseline-prefix)",
				baselineKey(cfg.BaselinePrefix, selector(u)), n, want)
		}
	}
	return nil
}
