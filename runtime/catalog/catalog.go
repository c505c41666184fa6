// Package catalog keeps the live connector set of a running server: it starts from a tree
// that loaded cleanly and, while Run runs, polls the connectors directory and reloads each
// connector whose files changed, so that an edit on disk takes effect without a restart.
//
// Reload semantics (SPEC 2: "a running server keeps serving its last good version of a
// connector whose files were edited into a broken state"):
//
//   - A connector directory whose files changed (any file's size, modification time or
//     mode, or a file added or removed anywhere under it) is loaded again with
//     connector.LoadConnector, on its own: the other connectors are not touched.
//   - A clean load replaces the connector; its earlier problems, if any, are cleared.
//   - A broken load changes nothing that is served: the last good version (if the
//     connector ever loaded) keeps serving, and every problem is logged as
//     "path:line: message" and listed by Problems (GET /v1/connectors shows them under
//     "errors") until a later edit loads cleanly or the directory goes away.
//   - A new directory is loaded like an edited one; a broken new one serves nothing.
//   - A directory that is gone from the tree is removed: the running server matches what a
//     restart would load. Integrations of a removed connector then get 503 on ingest, so
//     their senders keep the events and retry, and get them delivered once the connector is
//     back. (A connector.yml removed from a directory that is still there is a broken edit,
//     not a removal: the last good version keeps serving.)
//   - A connector whose key (from connector.yml) is already served by another directory is
//     refused with a problem; the directory that had the key first keeps it.
//
// Concurrency and ownership: readers (Connector, Connectors, Problems) never block; they
// load one immutable snapshot through an atomic pointer, so a request that looked a
// connector up finishes on that version even if a reload swaps it meanwhile. Only the
// goroutine running Run (or Reload, from tests) writes; the two must not run at once.
// Compiled scripts are never shared between versions: a reloaded connector has new
// *sandbox.Script values, which is how the API knows to drop the JavaScript pools of the old
// one.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-run/switchboard/runtime/connector"
)

// Catalog is the live connector set. Make one with New.
type Catalog struct {
	dir string
	log *slog.Logger

	cur     atomic.Pointer[snapshot]
	reloads *prometheus.CounterVec // nil until RegisterMetrics

	// Owned by the goroutine that runs Run or Reload.
	dirs    map[string]*dirState // by directory name under dir
	scanErr string               // the last failure to read dir, logged once, not at every poll
}

// dirState is what the catalog knows of one connector directory.
type dirState struct {
	print    fingerprint
	good     *connector.Connector // last version that loaded cleanly; nil if none ever did
	problems []connector.Problem  // of the latest load; nil when it was clean
}

// snapshot is what readers see; it is never changed after it is published.
type snapshot struct {
	byKey    map[string]*connector.Connector
	sorted   []*connector.Connector
	problems []string
}

// New loads the connectors directory dir. A tree with problems is refused as a whole with
// the *connector.LoadError that lists them (a server does not start half-configured); an
// unreadable dir is a plain error.
func New(dir string, logger *slog.Logger) (*Catalog, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Catalog{dir: dir, log: logger, dirs: map[string]*dirState{}}
	// Fingerprints first, load second: an edit made while the tree loads then shows as a
	// change at the first poll, never as nothing.
	prints, err := scan(dir)
	if err != nil {
		return nil, err
	}
	set, err := connector.Load(dir)
	if err != nil {
		return nil, err
	}
	for name, fp := range prints {
		c.dirs[name] = &dirState{print: fp}
	}
	for _, cn := range set.Connectors {
		name := filepath.Base(cn.Dir)
		if st, ok := c.dirs[name]; ok {
			st.good = cn
		} else {
			c.dirs[name] = &dirState{good: cn} // appeared between scan and Load: reloaded at the first poll
		}
	}
	c.publish()
	return c, nil
}

// Connector returns the connector with that key, in its current version.
func (c *Catalog) Connector(key string) (*connector.Connector, bool) {
	cn, ok := c.cur.Load().byKey[key]
	return cn, ok
}

// Connectors returns every served connector, sorted by key.
func (c *Catalog) Connectors() []*connector.Connector {
	return slices.Clone(c.cur.Load().sorted)
}

// Problems lists what the latest reload of each connector directory found wrong, as
// "path:line: message"; empty when every connector on disk is the one served.
func (c *Catalog) Problems() []string {
	return slices.Clone(c.cur.Load().problems)
}

// Run polls the connectors directory every interval and reloads what changed, until ctx
// ends; it then returns nil. An interval of zero or less returns at once: hot reload off.
func (c *Catalog) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			err := c.Reload()
			switch {
			case err != nil && err.Error() != c.scanErr:
				c.scanErr = err.Error()
				c.log.Warn("cannot read the connectors directory; serving the connectors loaded before", "dir", c.dir, "error", err)
			case err == nil && c.scanErr != "":
				c.scanErr = ""
				c.log.Info("connectors directory readable again", "dir", c.dir)
			}
		}
	}
}

// Reload compares the connectors directory with what was last loaded and reloads every
// connector directory that changed, appeared or went away; it returns an error only when
// the directory itself cannot be read, in which case nothing changes. It must not run
// concurrently with itself or Run.
func (c *Catalog) Reload() error {
	prints, err := scan(c.dir)
	if err != nil {
		return err
	}
	changed := false
	for name, st := range c.dirs {
		if _, ok := prints[name]; ok {
			continue
		}
		delete(c.dirs, name)
		changed = true
		if st.good != nil {
			c.log.Warn("connector directory removed; connector no longer served",
				"connector", st.good.Key, "dir", filepath.Join(c.dir, name))
		}
	}
	names := make([]string, 0, len(prints))
	for name := range prints {
		names = append(names, name)
	}
	slices.Sort(names) // a stable order for key conflicts between new directories
	for _, name := range names {
		fp := prints[name]
		st, ok := c.dirs[name]
		if ok && st.print.equal(fp) {
			continue
		}
		if !ok {
			st = &dirState{}
			c.dirs[name] = st
		}
		st.print = fp
		c.load(name, st)
		changed = true
	}
	if changed {
		c.publish()
	}
	return nil
}

// load reloads one connector directory into st.
func (c *Catalog) load(name string, st *dirState) {
	dir := filepath.Join(c.dir, name)
	cn, err := connector.LoadConnector(dir)
	if err == nil {
		if other := c.owner(cn.Key, name); other != "" {
			err = &connector.LoadError{Problems: []connector.Problem{{
				File:    filepath.Join(dir, "connector.yml"),
				Message: fmt.Sprintf("connector key %q is already used by %s", cn.Key, filepath.Join(c.dir, other)),
			}}}
		}
	}
	if err != nil {
		var le *connector.LoadError
		if errors.As(err, &le) {
			st.problems = le.Problems
		} else if errors.Is(err, fs.ErrNotExist) {
			return // gone between the scan and the load: the next scan removes it
		} else {
			st.problems = []connector.Problem{{File: dir, Message: err.Error()}}
		}
		log := c.log.With("dir", dir)
		if st.good != nil {
			log = log.With("connector", st.good.Key)
		}
		c.count("failed")
		for _, p := range st.problems {
			log.Error("connector reload failed", "problem", p.String())
		}
		if st.good != nil {
			log.Warn("connector edited into a broken state; serving its last good version", "problems", len(st.problems))
		} else {
			log.Warn("connector does not load; not served", "problems", len(st.problems))
		}
		return
	}
	verb := "connector reloaded"
	if st.good == nil {
		verb = "connector loaded"
	}
	st.good, st.problems = cn, nil
	c.count("ok")
	c.log.Info(verb, "connector", cn.Key, "dir", dir,
		"webhooks", len(cn.Webhooks), "events", len(cn.Events), "channels", len(cn.Channels))
}

func (c *Catalog) count(result string) {
	if c.reloads != nil {
		c.reloads.WithLabelValues(result).Inc()
	}
}

// owner names the directory, other than name, whose served connector has key; "" if none.
func (c *Catalog) owner(key, name string) string {
	for n, st := range c.dirs {
		if n != name && st.good != nil && st.good.Key == key {
			return n
		}
	}
	return ""
}

// publish makes the current state of c.dirs what readers see.
func (c *Catalog) publish() {
	s := &snapshot{byKey: map[string]*connector.Connector{}}
	names := make([]string, 0, len(c.dirs))
	for name := range c.dirs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		st := c.dirs[name]
		if st.good != nil {
			if _, dup := s.byKey[st.good.Key]; !dup {
				s.byKey[st.good.Key] = st.good
				s.sorted = append(s.sorted, st.good)
			}
		}
		for _, p := range st.problems {
			s.problems = append(s.problems, p.String())
		}
	}
	slices.SortFunc(s.sorted, func(a, b *connector.Connector) int { return strings.Compare(a.Key, b.Key) })
	c.cur.Store(s)
}

// fingerprint is what a stat walk sees of one connector directory: every entry's relative
// path, size, modification time and mode. Content is not read: a cheap walk every second or
// two is the point, and editors and deploy tools all change at least one of these.
//
// A file's modification time has a coarse granularity (a few milliseconds on Linux, up to
// seconds on some file systems), so two writes of the same size close together can leave
// the same stat. A fingerprint holding a time that recent is racy (as git calls it): it
// never equals another, so the directory is loaded once more at the next poll, after the
// writes have settled.
type fingerprint struct {
	files map[string]fileStat
	racy  bool
}

type fileStat struct {
	size    int64
	modTime time.Time
	mode    fs.FileMode
}

// racyWindow is how recent a modification time makes a fingerprint racy.
const racyWindow = 2 * time.Second

func (f fingerprint) equal(g fingerprint) bool {
	if f.racy || g.racy || len(f.files) != len(g.files) {
		return false
	}
	for k, a := range f.files {
		b, ok := g.files[k]
		if !ok || a.size != b.size || a.mode != b.mode || !a.modTime.Equal(b.modTime) {
			return false
		}
	}
	return true
}

// scan fingerprints every connector directory under dir, with the same rules as
// connector.Load: plain files and names starting with "." are skipped.
func scan(dir string) (map[string]fingerprint, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading connectors directory: %w", err)
	}
	now := time.Now()
	out := map[string]fingerprint{}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		root := filepath.Join(dir, e.Name())
		fp := fingerprint{files: map[string]fileStat{}}
		// Errors inside a connector (a file removed mid-walk, an unreadable folder) are not
		// the scan's: they make a fingerprint that differs, and the load reports them.
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			rel, _ := filepath.Rel(root, path)
			var info fs.FileInfo
			if err == nil {
				info, err = d.Info()
			}
			if err != nil {
				fp.files[rel] = fileStat{size: -1}
				return nil
			}
			fp.files[rel] = fileStat{size: info.Size(), modTime: info.ModTime(), mode: info.Mode()}
			// A time in the future (a clock skewed, an archive unpacked) is not racy: it
			// would stay so until the clock caught up, reloading at every poll.
			if mt := info.ModTime(); mt.After(now.Add(-racyWindow)) && mt.Before(now.Add(racyWindow)) {
				fp.racy = true
			}
			return nil
		})
		out[e.Name()] = fp
	}
	return out, nil
}
