package redisstore

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// Client settings that Open applies where the URL left them unset, so that an unreachable,
// slow or silent Redis fails a call in about a second rather than go-redis's defaults (5s
// to dial, 3s per read, three retries: over ten seconds), and so that a caller's ctx
// deadline bounds the socket reads and writes too (ContextTimeoutEnabled; without it
// go-redis ignores deadlines once a command is on the wire). Callers that must answer
// quickly (ingest) give their calls a deadline of their own on top.
//
// They also speak RESP2 unless the URL asks for another protocol: the store uses nothing of
// RESP3, under which go-redis looks for push notifications around every command and
// pipeline.
const (
	dialTimeout = time.Second
	ioTimeout   = 2 * time.Second
	poolTimeout = time.Second
	// maxRetries: one retry covers a pooled connection that died idle; more would only
	// keep a caller waiting on a Redis that is gone.
	maxRetries = 1
)

func failFast(o *redis.Options) {
	if o.Protocol == 0 {
		o.Protocol = 2
	}
	o.ContextTimeoutEnabled = true
	o.DialTimeout = orDefault(o.DialTimeout, dialTimeout)
	o.ReadTimeout = orDefault(o.ReadTimeout, ioTimeout)
	o.WriteTimeout = orDefault(o.WriteTimeout, ioTimeout)
	o.PoolTimeout = orDefault(o.PoolTimeout, poolTimeout)
	if o.MaxRetries == 0 {
		o.MaxRetries = maxRetries
	}
}

func failFastCluster(o *redis.ClusterOptions) {
	if o.Protocol == 0 {
		o.Protocol = 2
	}
	o.ContextTimeoutEnabled = true
	o.DialTimeout = orDefault(o.DialTimeout, dialTimeout)
	o.ReadTimeout = orDefault(o.ReadTimeout, ioTimeout)
	o.WriteTimeout = orDefault(o.WriteTimeout, ioTimeout)
	o.PoolTimeout = orDefault(o.PoolTimeout, poolTimeout)
	if o.MaxRetries == 0 {
		o.MaxRetries = maxRetries
	}
}

// orDefault keeps a duration the URL set (including -1, "none") and fills in an unset one.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
