package channel

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-run/switchboard/runtime/store"
)

var (
	// ErrLeaseHeld: another instance holds the channel's lease.
	ErrLeaseHeld = errors.New("lease held by another instance")
	// errLeaseLost: the lease was taken over or expired while this instance held it.
	errLeaseLost = errors.New("lease lost")
	// errNATSDown: NATS is not connected; nothing is tried until it is again.
	errNATSDown = errors.New("nats not connected")
)

// DefaultLeaseBucket is the JetStream KeyValue bucket that holds the workers' leases.
const DefaultLeaseBucket = "SWITCHBOARD_LEASES"

// LeasesConfig configures [NewLeases]; zero values take the defaults shown.
type LeasesConfig struct {
	// Bucket is the KeyValue bucket, created when missing (DefaultLeaseBucket).
	Bucket string
	// TTL is how long a lease outlives its holder's last renewal (15s): a dead instance's
	// workers move to another instance within about TTL. It is the bucket's max age, so an
	// existing bucket's TTL wins over this one.
	TTL time.Duration
	// Owner names this instance in the leases it holds (host name, pid and random bits).
	// It must differ between instances.
	Owner  string
	Logger *slog.Logger // nil discards
}

// Leases decide which of several instances sharing one NATS runs a channel's worker: the
// holder of the channel's lease, a key in a JetStream KeyValue bucket whose value is the
// holder's instance id.
//
//   - acquire is a KV Create: it fails while the key exists, so one instance wins.
//   - the holder renews every TTL/3 with an Update on the revision it last wrote; an Update
//     that finds another revision (the key expired, or someone else created it since) means
//     the lease is lost, and the worker stops at once.
//   - a lease ends when its worker stops (a Delete on the holder's revision) or, when the
//     holder died, when its last write is older than the bucket's max age (TTL).
//   - a holder that cannot renew (NATS unreachable) for 2/3 of the TTL stops its worker
//     itself, a third of the TTL before another instance can take the lease over.
//
// The bucket is kept in memory: leases outlive no NATS restart (nor does the bucket), so a
// single instance restarted with its embedded NATS gets its leases at once. After a NATS
// restart every running worker finds its lease gone and stops, and the instances make the
// bucket again and compete for the leases. A Leases is safe for concurrent use.
type Leases struct {
	js    jetstream.JetStream
	cfg   jetstream.KeyValueConfig
	kv    jetstream.KeyValue
	owner string
	ttl   time.Duration
}

// NewLeases opens the bucket of cfg, creating it when missing.
func NewLeases(ctx context.Context, js jetstream.JetStream, cfg LeasesConfig) (*Leases, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultLeaseBucket
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 15 * time.Second
	}
	if cfg.Owner == "" {
		cfg.Owner = instanceID()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Leases{js: js, owner: cfg.Owner, cfg: jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "switchboard: which instance runs each sse and polling channel worker",
		TTL:         cfg.TTL,
		History:     1,
		Storage:     jetstream.MemoryStorage,
	}}
	kv, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the lease bucket %s: %w", cfg.Bucket, err)
	}
	ttl := st.TTL()
	if ttl <= 0 {
		return nil, fmt.Errorf("opening the lease bucket %s: it has no TTL (max age), so a dead instance's leases would never expire", cfg.Bucket)
	}
	if ttl != cfg.TTL {
		cfg.Logger.Warn("the lease bucket exists with another TTL: using its TTL", "bucket", cfg.Bucket, "ttl", ttl, "configured", cfg.TTL)
	}
	l.kv, l.ttl, l.cfg.TTL = kv, ttl, ttl
	cfg.Logger.Info("channel workers shared through leases", "bucket", cfg.Bucket, "ttl", ttl, "instance", cfg.Owner)
	return l, nil
}

// open opens the bucket, creating it when missing.
func (l *Leases) open(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := l.js.KeyValue(ctx, l.cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = l.js.CreateKeyValue(ctx, l.cfg)
		if errors.Is(err, jetstream.ErrBucketExists) { // another instance just made it
			kv, err = l.js.KeyValue(ctx, l.cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening the lease bucket %s: %w", l.cfg.Bucket, err)
	}
	return kv, nil
}

// bucketGone tells, after a failed write, whether the bucket is missing (a NATS restart
// dropped it) rather than NATS unreachable or slow: a write to a missing bucket finds no
// stream and is retried by the client until its ctx ends, like one to a slow JetStream.
func (l *Leases) bucketGone(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl/6)
	defer cancel()
	_, err := l.js.KeyValue(ctx, l.cfg.Bucket)
	return errors.Is(err, jetstream.ErrBucketNotFound)
}

// Owner is this instance's id, the value of the leases it holds.
func (l *Leases) Owner() string { return l.owner }

// TTL is how long a lease outlives its last renewal.
func (l *Leases) TTL() time.Duration { return l.ttl }

// instanceID is unique per process: the host name tells operators where a lease is held,
// the pid and random bits tell apart processes on one host and restarts of one.
func instanceID() string {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// leaseKey encodes a channel as a KV key: ids may hold characters keys may not, so each part
// is base64url, whose alphabet keys accept.
func leaseKey(ref store.ChannelRef) string {
	enc := base64.RawURLEncoding
	return "channel." + enc.EncodeToString([]byte(ref.ConnectionID)) + "." + enc.EncodeToString([]byte(ref.ChannelKey))
}

// parseLeaseKey is leaseKey's inverse; false for keys that are not a channel's lease.
func parseLeaseKey(key string) (store.ChannelRef, bool) {
	rest, ok := strings.CutPrefix(key, "channel.")
	if !ok {
		return store.ChannelRef{}, false
	}
	conn, ch, ok := strings.Cut(rest, ".")
	if !ok {
		return store.ChannelRef{}, false
	}
	enc := base64.RawURLEncoding
	c, err1 := enc.DecodeString(conn)
	k, err2 := enc.DecodeString(ch)
	if err1 != nil || err2 != nil || len(c) == 0 || len(k) == 0 {
		return store.ChannelRef{}, false
	}
	return store.ChannelRef{ConnectionID: string(c), ChannelKey: string(k)}, true
}

// watchReleases calls released with every channel whose lease an instance released (a
// worker stopped), until ctx ends, so that another instance takes it over at once rather
// than at its next lease tick. Expiries are not seen: the tick remains the backstop, and
// so it is when the watch fails.
func (l *Leases) watchReleases(ctx context.Context, released func(store.ChannelRef), log *slog.Logger) {
	w, err := l.kv.WatchAll(ctx, jetstream.UpdatesOnly(), jetstream.MetaOnly())
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("watching channel leases: taking over released channels at the next lease tick", "error", err)
		}
		return
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || (e.Operation() != jetstream.KeyValueDelete && e.Operation() != jetstream.KeyValuePurge) {
				continue
			}
			if ref, ok := parseLeaseKey(e.Key()); ok {
				released(ref)
			}
		}
	}
}

// lease is a held lease: the revision this instance last wrote.
type lease struct {
	l   *Leases
	key string
	rev uint64
	at  time.Time // when the request that wrote rev was sent: the lease lasts TTL from then at least
}

// acquire takes ref's lease; ErrLeaseHeld when another instance holds it. It fails at once
// while NATS is not connected and takes at most TTL/3 otherwise: Run waits for it.
func (l *Leases) acquire(ctx context.Context, ref store.ChannelRef) (*lease, error) {
	key := leaseKey(ref)
	if !l.js.Conn().IsConnected() {
		return nil, fmt.Errorf("acquiring lease %s: %w", key, errNATSDown)
	}
	at := time.Now()
	actx, cancel := context.WithTimeout(ctx, l.ttl/3)
	rev, err := l.kv.Create(actx, key, []byte(l.owner))
	cancel()
	if err != nil && !conflict(err) && ctx.Err() == nil && l.bucketGone(ctx) {
		// The bucket keeps its name, so the handle works again once it exists.
		actx, cancel := context.WithTimeout(ctx, l.ttl/3)
		defer cancel()
		if _, err := l.open(actx); err != nil {
			return nil, fmt.Errorf("acquiring lease %s: %w", key, err)
		}
		at = time.Now()
		rev, err = l.kv.Create(actx, key, []byte(l.owner))
	}
	if err != nil {
		if conflict(err) {
			return nil, ErrLeaseHeld
		}
		return nil, fmt.Errorf("acquiring lease %s: %w", key, err)
	}
	return &lease{l: l, key: key, rev: rev, at: at}, nil
}

// renew writes the lease again on its revision; errLeaseLost when that revision is no
// longer the key's last.
func (le *lease) renew(ctx context.Context) error {
	at := time.Now()
	rev, err := le.l.kv.Update(ctx, le.key, []byte(le.l.owner), le.rev)
	if err != nil {
		if conflict(err) || errors.Is(err, jetstream.ErrKeyNotFound) || le.l.bucketGone(ctx) {
			return errLeaseLost
		}
		return fmt.Errorf("renewing lease %s: %w", le.key, err)
	}
	le.rev, le.at = rev, at
	return nil
}

// release deletes the lease, unless another instance took it since. A renewal cut short
// by the worker stopping may have been written without this instance learning its
// revision: the key's value tells whether it is still this instance's.
func (le *lease) release(ctx context.Context) error {
	err := le.l.kv.Delete(ctx, le.key, jetstream.LastRevision(le.rev))
	if err != nil && conflict(err) {
		e, gerr := le.l.kv.Get(ctx, le.key)
		switch {
		case errors.Is(gerr, jetstream.ErrKeyNotFound):
			return nil
		case gerr != nil:
			err = gerr
		case string(e.Value()) != le.l.owner:
			return nil
		default:
			err = le.l.kv.Delete(ctx, le.key, jetstream.LastRevision(e.Revision()))
		}
	}
	if err != nil && !conflict(err) {
		return fmt.Errorf("releasing lease %s: %w", le.key, err)
	}
	return nil
}

// keep renews the lease every TTL/3 until ctx ends. When the lease is lost, or could not
// be renewed for 2/3 of the TTL (so that it may expire before long), it calls stop and
// returns false; it returns true when ctx ended with the lease held.
func (le *lease) keep(ctx context.Context, stop func(), log *slog.Logger) bool {
	ttl := le.l.ttl
	wait := ttl / 3
	for {
		if !sleep(ctx, wait) {
			return true
		}
		rctx, cancel := context.WithTimeout(ctx, ttl/6)
		err := le.renew(rctx)
		cancel()
		switch {
		case err == nil:
			wait = ttl / 3
		case ctx.Err() != nil:
			return true
		case errors.Is(err, errLeaseLost):
			log.Warn("channel lease lost: stopping the worker")
			stop()
			return false
		case time.Since(le.at) >= 2*ttl/3:
			log.Warn("channel lease not renewed in time: stopping the worker", "error", err)
			stop()
			return false
		default:
			log.Warn("renewing the channel lease failed, retrying", "error", err)
			wait = ttl / 12
		}
	}
}

// conflict tells a failed conditional write: the key's last revision was not the one
// expected (the key exists for a Create, it moved on for an Update or Delete).
func conflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
