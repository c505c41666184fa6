package api

import (
	"sync"

	"github.com/switchboard-run/switchboard/sandbox"
)

// pools holds the runtime pools of the global webhooks' handle scripts, one per integration
// and webhook. A runtime keeps module-level state between calls, so a pool is never shared
// between integrations: one integration's handle must not see what another's left behind.
type pools struct {
	cfg sandbox.Config

	mu sync.Mutex
	m  map[poolKey]poolEntry
}

type poolKey struct{ integration, webhook string }

type poolEntry struct {
	script *sandbox.Script
	pool   *sandbox.Pool
}

func newPools(cfg sandbox.Config) *pools {
	return &pools{cfg: cfg, m: map[poolKey]poolEntry{}}
}

// get returns the pool running script for the integration's webhook, making it on first use
// or when the script changed (a connector reload, or the integration deleted and installed
// again from another connector under the same key).
func (p *pools) get(integration, webhook string, script *sandbox.Script) *sandbox.Pool {
	k := poolKey{integration, webhook}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.m[k]; ok && e.script == script {
		return e.pool
	}
	cfg := p.cfg
	if cfg.Logger != nil {
		cfg.Logger = cfg.Logger.With("integration", integration, "webhook", webhook)
	}
	e := poolEntry{script: script, pool: sandbox.NewPool(script, cfg)}
	p.m[k] = e
	return e.pool
}

// drop forgets the pools of an integration; their runtimes are garbage once calls in flight
// return.
func (p *pools) drop(integration string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.m {
		if k.integration == integration {
			delete(p.m, k)
		}
	}
}
