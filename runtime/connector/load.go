package connector

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-run/switchboard/sandbox"
)

// keyPattern is what connector, webhook, event and channel keys must match.
var keyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9\-_]*$`)

// Load reads a connectors directory, each subdirectory of which is a connector (folders
// whose name starts with "." and plain files are skipped). It validates everything and
// returns a *LoadError listing every problem in the tree. With problems, the returned Set
// still holds the connectors that loaded cleanly, for a caller that wants to report them;
// one that refuses a broken tree as a whole ignores it. An unreadable dir is a plain error.
func Load(dir string) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("loading connectors: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			dirs = append(dirs, filepath.Join(dir, e.Name()))
		}
	}
	// Connectors load in parallel (compiling their scripts is most of start-up), each with a
	// loader of its own; their results are merged in directory order, so the Set and the
	// problems are what loading them one by one gives.
	type loaded struct {
		c        *Connector
		problems []Problem
	}
	results := make([]loaded, len(dirs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(dirs)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(dirs); i = int(next.Add(1) - 1) {
				l := &loader{}
				c := l.connector(dirs[i])
				results[i] = loaded{c, l.problems}
			}
		})
	}
	wg.Wait()

	set := &Set{Connectors: map[string]*Connector{}}
	l := &loader{}
	for i, r := range results {
		l.problems = append(l.problems, r.problems...)
		if r.c == nil {
			continue
		}
		if prev, dup := set.Connectors[r.c.Key]; dup {
			l.add(filepath.Join(dirs[i], "connector.yml"), 0,
				fmt.Sprintf("connector key %q is already used by %s", r.c.Key, prev.Dir))
			continue
		}
		if len(r.problems) == 0 {
			set.Connectors[r.c.Key] = r.c
		}
	}
	if len(l.problems) > 0 {
		return set, l.err()
	}
	return set, nil
}

// LoadConnector reads one connector directory, validating everything; problems come back
// as a *LoadError.
func LoadConnector(dir string) (*Connector, error) {
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("loading connector: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("loading connector: %s is not a directory", dir)
	}
	l := &loader{}
	c := l.connector(dir)
	if len(l.problems) > 0 {
		return nil, l.err()
	}
	return c, nil
}

// loader collects problems while a tree loads; one is used by one goroutine.
type loader struct {
	problems []Problem
}

// err returns the problems in the order the files were visited and, within a file, by line.
func (l *loader) err() *LoadError {
	first := map[string]int{}
	for i, p := range l.problems {
		if _, ok := first[p.File]; !ok {
			first[p.File] = i
		}
	}
	ps := slices.Clone(l.problems)
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := cmp.Compare(first[a.File], first[b.File]); c != 0 {
			return c
		}
		return cmp.Compare(a.Line, b.Line)
	})
	return &LoadError{Problems: ps}
}

func (l *loader) add(file string, line int, msg string) {
	l.problems = append(l.problems, Problem{File: file, Line: line, Message: oneLine(msg)})
}

// oneLine keeps a problem on one line of output, as "path:line: message" promises: a
// message that quotes the author's text (a JSONPath parser's error, say) may hold line
// breaks, which are escaped.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\r`).Replace(s)
}

// key reads a spec's key, defaulting to its directory's name, and checks its form.
func (l *loader) key(file string, m *yaml.Node, dir string) string {
	k, n := l.str(file, m, "key")
	if n == nil {
		k = filepath.Base(dir)
		if !keyPattern.MatchString(k) {
			l.add(file, 0, fmt.Sprintf("key %q (from the directory name) must match [a-z0-9][a-z0-9-_]*", k))
		}
		return k
	}
	if !keyPattern.MatchString(k) {
		l.add(file, n.Line, fmt.Sprintf("key %q must match [a-z0-9][a-z0-9-_]*", k))
	}
	return k
}

// subdirs lists the folders of dir/sub, sorted; a missing dir/sub is no folders.
func (l *loader) subdirs(dir, sub string) []string {
	entries, err := os.ReadDir(filepath.Join(dir, sub))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			l.add(filepath.Join(dir, sub), 0, fmt.Sprintf("reading directory: %v", err))
		}
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(dir, sub, e.Name()))
		}
	}
	return out
}

// connector loads one connector directory; it returns nil only when connector.yml cannot
// be read at all.
func (l *loader) connector(dir string) *Connector {
	file := filepath.Join(dir, "connector.yml")
	root := l.readYAML(file)
	if root == nil {
		return nil
	}
	c := &Connector{
		Dir:      dir,
		Webhooks: map[string]*Webhook{},
		Events:   map[string]*Event{},
		Channels: map[string]*Channel{},
	}
	c.Key = l.key(file, root, dir)
	c.Name, _ = l.requiredStr(file, root, "name")
	c.ParametersSchema = l.compileSchema(file, "parametersSchema", field(root, "parametersSchema"))
	c.API = l.api(file, root)

	webhookDirs, eventDirs, channelDirs := map[string]string{}, map[string]string{}, map[string]string{}
	for _, wdir := range l.subdirs(dir, "global-webhooks") {
		if w := l.webhook(wdir); w != nil {
			addUnique(l, c.Webhooks, webhookDirs, "webhook", w.Key, wdir, w)
		}
	}
	for _, edir := range l.subdirs(dir, "events") {
		if e := l.event(edir, c); e != nil {
			addUnique(l, c.Events, eventDirs, "event", e.Key, edir, e)
		}
	}
	for _, chdir := range l.subdirs(dir, "channels") {
		if ch := l.channel(chdir, c); ch != nil {
			addUnique(l, c.Channels, channelDirs, "channel", ch.Key, chdir, ch)
		}
	}
	return c
}

// addUnique adds v, loaded from dir, under key, unless another directory already has that
// key: that is a problem reported at dir's spec.yml.
func addUnique[T any](l *loader, into map[string]T, dirs map[string]string, what, key, dir string, v T) {
	if prev, dup := dirs[key]; dup {
		l.add(filepath.Join(dir, "spec.yml"), 0, fmt.Sprintf("%s key %q is already used by %s", what, key, prev))
		return
	}
	dirs[key] = dir
	into[key] = v
}

// baseURIPlaceholder is a {root.field} in api.baseUri.
var baseURIPlaceholder = regexp.MustCompile(`\{([^{}]*)\}`)

func (l *loader) api(file string, root *yaml.Node) APIConfig {
	var cfg APIConfig
	an := field(root, "api")
	if an == nil {
		cfg.Auth.Type = AuthNone
		return cfg
	}
	base, bn := l.requiredStr(file, root, "api", "baseUri")
	if bn != nil && base != "" {
		l.checkBaseURI(file, bn, base)
	}
	cfg.BaseURI = base

	if field(an, "auth") == nil {
		cfg.Auth.Type = AuthNone
		return cfg
	}
	a := &cfg.Auth
	t, tn := l.requiredStr(file, root, "api", "auth", "type")
	a.Type = t
	need := func(dst *string, key string) {
		*dst, _ = l.requiredStr(file, root, "api", "auth", key)
	}
	switch t {
	case AuthBearer:
		need(&a.Token, "token")
	case AuthBasic:
		need(&a.Username, "username")
		need(&a.Password, "password")
	case AuthHeader, AuthQuery:
		need(&a.Name, "name")
		need(&a.Value, "value")
	case AuthNone, "":
	default:
		l.add(file, tn.Line, fmt.Sprintf("api.auth.type %q must be one of bearer, basic, header, query, none", t))
	}
	return cfg
}

// checkBaseURI checks the placeholders of api.baseUri and that, filled in, it is an
// absolute http(s) URL.
func (l *loader) checkBaseURI(file string, n *yaml.Node, base string) {
	ok := true
	filled := baseURIPlaceholder.ReplaceAllStringFunc(base, func(m string) string {
		ref := m[1 : len(m)-1]
		root, rest, _ := strings.Cut(ref, ".")
		switch {
		case root != "credentials" && root != "parameters" && root != "connectorParameters":
			l.add(file, n.Line, fmt.Sprintf("api.baseUri placeholder %s must start with credentials., parameters. or connectorParameters.", m))
			ok = false
		case rest == "":
			l.add(file, n.Line, fmt.Sprintf("api.baseUri placeholder %s names no field", m))
			ok = false
		}
		return "x"
	})
	if !ok {
		return
	}
	u, err := url.Parse(filled)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.add(file, n.Line, fmt.Sprintf("api.baseUri %q must be an absolute http or https URL", base))
	}
}

func (l *loader) webhook(dir string) *Webhook {
	file := filepath.Join(dir, "spec.yml")
	root := l.readYAML(file)
	if root == nil {
		return nil
	}
	w := &Webhook{Dir: dir}
	w.Key = l.key(file, root, dir)
	w.Name, _ = l.requiredStr(file, root, "name")
	impl, n := l.requiredStr(file, root, "methods", "handle", "implementationType")
	switch {
	case n == nil:
	case impl != ImplementationJavaScript:
		l.add(file, n.Line, fmt.Sprintf("methods.handle.implementationType %q must be javascript", impl))
	default:
		w.Handle = l.script(filepath.Join(dir, "handle.js"), file, n.Line)
	}
	return w
}

func (l *loader) event(dir string, c *Connector) *Event {
	file := filepath.Join(dir, "spec.yml")
	root := l.readYAML(file)
	if root == nil {
		return nil
	}
	e := &Event{Dir: dir, connector: c}
	e.Key = l.key(file, root, dir)
	e.Name, _ = l.requiredStr(file, root, "name")
	if impl, n := l.requiredStr(file, root, "implementationType"); n != nil && impl != "global-webhook" {
		l.add(file, n.Line, fmt.Sprintf("implementationType %q must be global-webhook", impl))
	}
	e.ParametersSchema = l.compileSchema(file, "parametersSchema", field(root, "parametersSchema"))
	e.Schema = l.compileSchema(file, "schema", field(root, "schema"))

	impl, n := l.requiredStr(file, root, "methods", "get-event-selector", "implementationType")
	switch {
	case n == nil:
	case impl == ImplementationJavaScript:
		e.SelectorScript = l.script(filepath.Join(dir, "get-event-selector.js"), file, n.Line)
	case impl == ImplementationMapping:
		mn, _ := child(root, "methods", "get-event-selector", "mapping")
		if mn == nil {
			l.add(file, n.Line, "methods.get-event-selector.mapping is required when implementationType is mapping")
			break
		}
		e.Mapping = l.selectorMapping(file, mn, c)
	default:
		l.add(file, n.Line, fmt.Sprintf("methods.get-event-selector.implementationType %q must be javascript or mapping", impl))
	}
	return e
}

// selectorMapping compiles a get-event-selector mapping, which must produce an object
// with globalWebhookKey and globalWebhookEventSelector; a literal globalWebhookKey must
// name a webhook of the connector (the webhooks are loaded before the events).
func (l *loader) selectorMapping(file string, mn *yaml.Node, c *Connector) *Mapping {
	if mn.Kind != yaml.MappingNode || strings.HasPrefix(firstKey(mn), "$") {
		l.add(file, mn.Line, "methods.get-event-selector.mapping must be an object with globalWebhookKey and globalWebhookEventSelector")
		return nil
	}
	for _, k := range []string{"globalWebhookKey", "globalWebhookEventSelector"} {
		if field(mn, k) == nil {
			l.add(file, mn.Line, fmt.Sprintf("methods.get-event-selector.mapping.%s is required", k))
		}
	}
	if kn := field(mn, "globalWebhookKey"); kn != nil && kn.Kind == yaml.ScalarNode {
		if _, ok := c.Webhooks[kn.Value]; !ok {
			l.add(file, kn.Line, fmt.Sprintf("globalWebhookKey %q names no global webhook of connector %q", kn.Value, c.Key))
		}
	}
	return l.compileMapping(file, mn)
}

func firstKey(m *yaml.Node) string {
	if len(m.Content) == 0 {
		return ""
	}
	return m.Content[0].Value
}

// script reads and compiles a script; a missing file is reported at the spec line that
// asked for it.
func (l *loader) script(path, specFile string, specLine int) *sandbox.Script {
	src, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			l.add(specFile, specLine, fmt.Sprintf("%s is missing", filepath.Base(path)))
		} else {
			l.add(path, 0, fmt.Sprintf("reading script: %v", err))
		}
		return nil
	}
	s, err := sandbox.Compile(path, src)
	if err != nil {
		var ce *sandbox.CompileError
		if errors.As(err, &ce) && len(ce.Problems) > 0 {
			for _, p := range ce.Problems {
				p.Message = oneLine(p.Message)
				l.problems = append(l.problems, p)
			}
		} else {
			l.add(path, 0, fmt.Sprintf("compiling script: %v", err))
		}
		return nil
	}
	return s
}
