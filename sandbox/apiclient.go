package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/dop251/goja"
)

// maxResponseBody bounds what apiClient reads of one response.
const maxResponseBody = 10 << 20

// errNoAPI rejects apiClient requests of a call made without an Env.API.
var errNoAPI = errors.New("apiClient is not available: the connector has no api.baseUri, or this call has no connection")

// apiState is what one call's apiClient requests share.
type apiState struct {
	client *http.Client // API.Client with redirects held to the API's host
}

// apiClient builds the object handed to scripts inside their argument (every call whose
// argument is an object gets one). Its methods return promises; the HTTP work runs on
// other goroutines and settles them through the call's loop. Without an Env.API every
// request rejects with errNoAPI.
//
// Security boundary: requests go only to API.BaseURL's scheme and host, carrying the
// connection's credentials (API.Header, API.Query). Paths cannot climb out with "..",
// absolute URLs to other hosts are refused, and so are redirects to them. Which addresses
// may be dialled at all (no loopback, private or link-local ones) is API.Client's to
// enforce, on every connection including redirects; its errors reach the script as the
// rejection's message. The request carries the call's context: it is cancelled when the
// call's deadline passes or the call ends, and its response is dropped.
func (in *instance) apiClient(c *call) *goja.Object {
	obj := in.vm.NewObject()
	_ = obj.Set("get", func(fc goja.FunctionCall) goja.Value {
		return in.request(c, http.MethodGet, fc.Argument(0), fc.Argument(1), nil, fc.Argument(2))
	})
	for _, method := range [...]string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		_ = obj.Set(strings.ToLower(method), func(fc goja.FunctionCall) goja.Value {
			return in.request(c, method, fc.Argument(0), nil, fc.Argument(1), fc.Argument(2))
		})
	}
	return obj
}

// apiClientGetter is the getter of the argument's apiClient property: the client is made on
// first read, since most handle calls never touch it. One getter serves every call of the
// runtime, handing out the client of the call in progress.
func (in *instance) apiClientGetter() goja.Value {
	if in.apiGet == nil {
		in.apiGet = in.vm.ToValue(func(goja.FunctionCall) goja.Value {
			c := in.call
			if c == nil {
				return goja.Undefined()
			}
			if c.client == nil {
				c.client = in.apiClient(c)
			}
			return c.client
		})
	}
	return in.apiGet
}

// apiResponse is what the HTTP goroutine hands back; no goja values in it.
type apiResponse struct {
	status int
	body   any // nil, a string, or json.RawMessage
	err    error
}

// request runs on the runtime's goroutine: it reads the script's arguments, starts the
// HTTP request on its own goroutine, and returns the promise the loop will settle.
func (in *instance) request(c *call, method string, pathArg, queryArg, dataArg, optionsArg goja.Value) goja.Value {
	promise, resolve, reject := in.vm.NewPromise()
	label := method + " " + pathArg.String()
	if in.call != c {
		_ = reject(in.jsError(label+": apiClient used after its call ended", nil, nil))
		return in.vm.ToValue(promise)
	}
	req, err := in.buildRequest(c, method, pathArg, queryArg, dataArg, optionsArg)
	if err != nil {
		_ = reject(in.jsError(label+": "+err.Error(), nil, nil))
		return in.vm.ToValue(promise)
	}
	client := c.httpClient()
	// An Error made when the response arrives has no script frames of its own: it gets the
	// stack of the apiClient call, so a rejection names the author's line.
	frames := in.vm.CaptureCallStack(maxStackFrames, nil)
	c.goAsync(func() func() error {
		res := doRequest(client, req)
		return func() error {
			if res.err != nil {
				return reject(in.jsError(label+": "+res.err.Error(), frames, nil))
			}
			data, err := in.toValue(res.body)
			if err != nil {
				return reject(in.jsError(label+": "+err.Error(), frames, nil))
			}
			if res.status < 200 || res.status > 299 {
				return reject(in.jsError(
					fmt.Sprintf("%s: status %d %s", label, res.status, http.StatusText(res.status)),
					frames, map[string]goja.Value{"status": in.vm.ToValue(res.status), "data": data}))
			}
			return resolve(data)
		}
	})
	return in.vm.ToValue(promise)
}

// jsError makes an Error with extra enumerable properties, using the Error constructor the
// runtime started with; frames, when given, become its stack.
func (in *instance) jsError(msg string, frames []goja.StackFrame, props map[string]goja.Value) goja.Value {
	obj, err := in.newError(nil, in.vm.ToValue(msg))
	if err != nil {
		return in.vm.ToValue(msg)
	}
	if len(frames) > 0 {
		stack := "Error: " + msg + "\n" + formatFrames(frames, in.script)
		_ = obj.DefineDataProperty("stack", in.vm.ToValue(stack), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	}
	for _, k := range [...]string{"status", "data"} {
		if v, ok := props[k]; ok {
			_ = defineData(obj, k, v)
		}
	}
	return obj
}

func (in *instance) buildRequest(c *call, method string, pathArg, queryArg, dataArg, optionsArg goja.Value) (*http.Request, error) {
	api := c.env.API
	if api == nil {
		return nil, errNoAPI
	}
	if api.BaseURL == nil {
		return nil, errors.New("the connector has no API base URL")
	}
	if goja.IsUndefined(pathArg) || goja.IsNull(pathArg) {
		return nil, errors.New("a path is required")
	}
	u, err := apiURL(api.BaseURL, pathArg.String())
	if err != nil {
		return nil, err
	}
	q := u.Query()
	for k, vs := range api.Query {
		q[k] = append(q[k], vs...)
	}
	header := api.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	if err := in.addValues(q, queryArg); err != nil {
		return nil, fmt.Errorf("reading query: %w", err)
	}
	if obj, ok := optionsArg.(*goja.Object); ok {
		if err := in.addValues(q, obj.Get("query")); err != nil {
			return nil, fmt.Errorf("reading options.query: %w", err)
		}
		h := url.Values{}
		if err := in.addValues(h, obj.Get("headers")); err != nil {
			return nil, fmt.Errorf("reading options.headers: %w", err)
		}
		for k, vs := range h {
			header.Del(k)
			for _, v := range vs {
				header.Add(k, v)
			}
		}
	}
	u.RawQuery = q.Encode()

	var body io.Reader
	if dataArg != nil && !goja.IsUndefined(dataArg) {
		if s, ok := dataArg.Export().(string); ok {
			body = strings.NewReader(s)
			setHeaderDefault(header, "Content-Type", "text/plain; charset=utf-8")
		} else {
			g, err := in.export(dataArg)
			if err != nil {
				return nil, fmt.Errorf("converting data: %w", err)
			}
			b, err := marshalJSON(g)
			if err != nil {
				return nil, fmt.Errorf("encoding data: %w", err)
			}
			body = bytes.NewReader(b)
			setHeaderDefault(header, "Content-Type", "application/json")
		}
	}
	setHeaderDefault(header, "Accept", "application/json")
	req, err := http.NewRequestWithContext(c.ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header = header
	return req, nil
}

func setHeaderDefault(h http.Header, k, v string) {
	if h.Get(k) == "" {
		h.Set(k, v)
	}
}

// addValues adds a script's {name: value | [values]} object to vs; null and undefined
// values are skipped.
func (in *instance) addValues(vs url.Values, v goja.Value) error {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil
	}
	if _, ok := v.(*goja.Object); !ok {
		return errors.New("not an object")
	}
	g, err := in.export(v)
	if err != nil {
		return err
	}
	m, ok := g.(map[string]any)
	if !ok {
		return errors.New("not an object")
	}
	for k, e := range m {
		if list, ok := e.([]any); ok {
			for _, item := range list {
				if item != nil {
					vs.Add(k, queryString(item))
				}
			}
		} else if e != nil {
			vs.Add(k, queryString(e))
		}
	}
	return nil
}

// queryString writes a plain value the way JavaScript's String() would.
func queryString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := marshalJSON(v)
	return string(b)
}

// apiURL joins p under base: "users/me" and "/users/me" both land below base's path.
// An absolute URL is accepted only for base's own scheme and host (pagination links).
func apiURL(base *url.URL, p string) (*url.URL, error) {
	ref, err := url.Parse(p)
	if err != nil {
		return nil, fmt.Errorf("parsing path: %w", err)
	}
	if ref.Scheme != "" || ref.Host != "" || ref.Opaque != "" {
		if ref.Scheme != base.Scheme || ref.Host != base.Host || ref.User != nil {
			return nil, fmt.Errorf("refusing a URL outside the API at %s://%s", base.Scheme, base.Host)
		}
		u := *ref
		u.Fragment, u.RawFragment = "", ""
		return &u, nil
	}
	for seg := range strings.SplitSeq(ref.Path, "/") {
		if seg == ".." {
			return nil, errors.New(`refusing a path with ".." segments`)
		}
	}
	var u *url.URL
	if p := strings.TrimLeft(ref.EscapedPath(), "/"); p != "" {
		u = base.JoinPath(p)
	} else {
		c := *base // JoinPath("") would drop base's trailing slash
		u = &c
	}
	u.Fragment, u.RawFragment = "", ""
	if ref.RawQuery != "" {
		q := u.Query()
		for k, vs := range ref.Query() {
			q[k] = append(q[k], vs...)
		}
		u.RawQuery = q.Encode()
	}
	return u, nil
}

// httpClient is the call's API.HTTPClient, made on the first apiClient request.
func (c *call) httpClient() *http.Client {
	if c.api == nil {
		c.api = &apiState{client: c.env.API.HTTPClient()}
	}
	return c.api.client
}

// doRequest runs on its own goroutine.
func doRequest(client *http.Client, req *http.Request) apiResponse {
	resp, err := client.Do(req)
	if err != nil {
		// url.Error repeats the URL, which may carry credentials in its query.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = errors.New("deadline exceeded")
		}
		return apiResponse{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return apiResponse{err: fmt.Errorf("reading response: %w", err)}
	}
	if len(b) > maxResponseBody {
		return apiResponse{err: fmt.Errorf("response body larger than %d MiB", maxResponseBody>>20)}
	}
	return apiResponse{status: resp.StatusCode, body: parseBody(b)}
}

// parseBody: JSON when it parses, whatever the Content-Type says (APIs often send JSON as
// text/plain), else the text; an empty body is null. The JSON is decoded later, on the
// runtime's goroutine, straight into JavaScript values.
func parseBody(b []byte) any {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	return string(b)
}
