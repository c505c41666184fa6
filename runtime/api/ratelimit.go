package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// codeRateLimited is the error code of a 429.
const codeRateLimited = "rate_limited"

// ingestLimits keeps one token bucket per global webhook URL (that is, per integration and
// webhook: each has exactly one token), so that one flooded URL is refused with 429 while
// every other URL keeps its own budget. A bucket is made the first time its token resolves,
// so unknown tokens, however many, cost no memory here; the set is bounded by the webhooks
// that exist. Limits are per process: N switchboard processes behind a load balancer accept
// up to N times the rate.
type ingestLimits struct {
	rate  rate.Limit
	burst int

	mu sync.Mutex
	m  map[poolKey]*rate.Limiter
}

// newIngestLimits returns nil, no limit, when perSecond is not positive.
func newIngestLimits(perSecond float64, burst int) *ingestLimits {
	if perSecond <= 0 {
		return nil
	}
	if burst < 1 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return &ingestLimits{rate: rate.Limit(perSecond), burst: burst, m: map[poolKey]*rate.Limiter{}}
}

// allow takes a token from the URL's bucket. When there is none it returns how long until
// there is one, for Retry-After.
func (l *ingestLimits) allow(integration, webhook string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	k := poolKey{integration, webhook}
	l.mu.Lock()
	lim, ok := l.m[k]
	if !ok {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.m[k] = lim
	}
	l.mu.Unlock()
	if lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - lim.TokensAt(now)
	return false, time.Duration(missing / float64(l.rate) * float64(time.Second))
}

// rateLimited is the 429 of an ingest URL over its rate; Retry-After (whole seconds, at
// least 1) is set on the response by the caller.
func rateLimited(wait time.Duration) (*Error, string) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	return &Error{Status: http.StatusTooManyRequests, Code: codeRateLimited,
		Message: fmt.Sprintf("too many requests to this webhook URL, retry in %ds", secs)}, strconv.Itoa(secs)
}
