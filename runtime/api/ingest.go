package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/runtime/router"
	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/sandbox"
)

// ingest serves /webhooks/{token}, called by external apps with any method. The steps and
// their failures, in order:
//
//  1. a declared body over MaxBody: 413;
//  2. the token resolved to an integration and webhook, and the integration read: unknown
//     404, store down 503; over the URL's rate (IngestRate): 429 with Retry-After;
//  3. the body read, at most MaxBody bytes: 413;
//  4. handle run on the pool of that integration and webhook: a throw or timeout 500;
//  5. the events routed and published, waiting for every acknowledgement: store or bus
//     down 503;
//  6. handle's response sent as it gave it (status, headers, body).
//
// So a 2xx is never sent for events that are not durably on the bus, and the external app's
// retry of a failed request is published with the same delivery key (a hash of method,
// path, query and body), which the bus uses to drop what it already has. Events already
// published, known by their id or the sender's delivery id header (see deliveryID), are
// dropped for days after (router.Seen). A request whose handle failed is kept as a dead
// letter for replay (deadletters.go). The store reads before handle are bounded by
// storeTimeout together: a Redis that is down or silent makes a quick 503, not a hanging
// request.
func (a *API) ingest(c echo.Context) error {
	integration := "unknown"
	start := time.Now()
	err := a.ingestRequest(c, &integration)
	status := c.Response().Status
	if err != nil {
		status = apiError(err).Status
	}
	a.metrics.ingestRequests.WithLabelValues(integration, strconv.Itoa(status)).Inc()
	a.metrics.ingestDuration.WithLabelValues(integration).Observe(time.Since(start).Seconds())
	return err
}

func (a *API) ingestRequest(c echo.Context, integrationKey *string) error {
	r := c.Request()
	ctx := r.Context()
	if r.ContentLength > a.cfg.MaxBody {
		return &http.MaxBytesError{Limit: a.cfg.MaxBody}
	}

	token := c.Param("token")
	// One deadline for the two reads before handle: both are usually answered from the
	// store's cache, where a timer per read costs more than the read.
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	ik, wk, err := a.cfg.Store.ResolveWebhookToken(sctx, token)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("no webhook at this URL")
		}
		return unavailable("store", err)
	}
	*integrationKey = ik
	c.Set(ctxIntegration, ik)
	c.Set(ctxWebhook, wk)
	if ok, wait := a.limits.allow(ik, wk, a.cfg.Now()); !ok {
		e, secs := rateLimited(wait)
		c.Response().Header().Set("Retry-After", secs)
		return e
	}

	in, err := a.cfg.Store.GetIntegration(sctx, ik)
	cancel()
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("no webhook at this URL")
		}
		return unavailable("store", err)
	}

	// Read into a buffer sized for the declared length: no growing and copying on the way.
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err = buf.ReadFrom(http.MaxBytesReader(c.Response(), r.Body, a.cfg.MaxBody))
	body := buf.Bytes()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return invalid("", "reading the request body: %v", err)
	}
	// A connector missing from the tree (removed or renamed while the integration stays) is
	// a 503: the sender keeps its events and retries while an operator fixes the tree.
	cn, ok := a.cfg.Connectors.Connector(in.ConnectorKey)
	if !ok {
		return unavailable(fmt.Sprintf("connector %q", in.ConnectorKey), nil)
	}
	wh, ok := cn.Webhooks[wk]
	if !ok {
		return unavailable(fmt.Sprintf("webhook %q of connector %q", wk, cn.Key), nil)
	}

	res, err := a.runHandle(ctx, in, wh, r, body)
	if err != nil {
		a.keepDeadLetter(ctx, in.Key, wh, r, body, err)
		return err
	}
	if _, err := a.routeEvents(ctx, ik, wk, r, body, res); err != nil {
		return err
	}
	return writeHandleResponse(c, res.Response)
}

// routeEvents routes and publishes what handle returned for request r, the route of both
// ingest and the replay of a dead letter.
func (a *API) routeEvents(ctx context.Context, ik, wk string, r *http.Request, body []byte, res connector.HandleResult) (router.Result, error) {
	if len(res.Events) == 0 {
		return router.Result{}, nil
	}
	events := make([]router.Event, 0, len(res.Events))
	for _, ev := range res.Events {
		events = append(events, router.Event{Selector: ev.Selector, Payload: ev.Payload, ID: ev.ID})
	}
	routed, err := a.cfg.Router.Route(ctx, router.Input{
		IntegrationKey: ik,
		WebhookKey:     wk,
		Events:         events,
		DeliveryKey:    deliveryKey(r, body),
		DeliveryID:     deliveryID(r.Header),
	})
	if err != nil {
		if errors.Is(err, router.ErrInvalidSubjectToken) {
			return routed, fmt.Errorf("routing events of integration %q: %w", ik, err) // a 500: retrying cannot help
		}
		// Anything else is the store (matching) or the bus (publishing) failing to answer:
		// the sender keeps the events and retries.
		return routed, unavailable("event bus", err)
	}
	a.metrics.eventsPublished.WithLabelValues(ik).Add(float64(routed.Published))
	if routed.Duplicates > 0 {
		a.metrics.eventsDuplicate.WithLabelValues(ik).Add(float64(routed.Duplicates))
	}
	return routed, nil
}

// runHandle runs the webhook's handle for one request. A failure is a 500 naming the
// script and line, scrubbed of the integration's parameters.
func (a *API) runHandle(ctx context.Context, in store.Integration, wh *connector.Webhook, r *http.Request, body []byte) (connector.HandleResult, error) {
	header := r.Header.Clone()
	if r.Host != "" {
		header.Set("Host", r.Host)
	}
	arg := connector.HandleInput(r.Method, header, r.URL.Query(), body, in.Parameters)
	pool := a.pools.get(in.Key, wh.Key, wh.Handle)

	start := time.Now()
	out, err := pool.Call(ctx, arg, sandbox.Env{})
	a.metrics.handleDuration.WithLabelValues(in.Key, wh.Key).Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return connector.HandleResult{}, err // the sender went away
		}
		a.metrics.scriptErrors.WithLabelValues(in.Key, "handle").Inc()
		return connector.HandleResult{}, &Error{Status: http.StatusInternalServerError, Code: codeHandleFailed,
			Message: redact("handle failed: "+err.Error(), in.Parameters)}
	}
	res, err := connector.ParseHandleResult(out)
	if err != nil {
		a.metrics.scriptErrors.WithLabelValues(in.Key, "handle").Inc()
		return res, &Error{Status: http.StatusInternalServerError, Code: codeHandleFailed,
			Message: redact(fmt.Sprintf("handle of %s returned an invalid result: %v", wh.Handle.Name(), err), in.Parameters)}
	}
	if s := res.Response.Status; s != 0 && s < 200 {
		// An informational status cannot end an HTTP exchange; refuse it before anything
		// is published.
		a.metrics.scriptErrors.WithLabelValues(in.Key, "handle").Inc()
		return res, &Error{Status: http.StatusInternalServerError, Code: codeHandleFailed,
			Message: fmt.Sprintf("handle of %s returned an invalid result: response.status %d is informational", wh.Handle.Name(), s)}
	}
	return res, nil
}

// deliveryKey identifies a request so that an external app's retry of it is recognised:
// the same method, path, query and body give the same key.
func deliveryKey(r *http.Request, body []byte) string {
	h := sha256.New()
	io.WriteString(h, r.Method)
	h.Write([]byte{0})
	io.WriteString(h, r.URL.RequestURI())
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// isHopHeader tells the headers that the HTTP server manages, not handle.
func isHopHeader(canonical string) bool {
	switch canonical {
	case "Connection", "Content-Length", "Keep-Alive", "Transfer-Encoding", "Te", "Trailer", "Upgrade", "Proxy-Connection":
		return true
	}
	return false
}

// writeHandleResponse sends handle's response as it gave it; without one, 200 and no body.
func writeHandleResponse(c echo.Context, resp connector.Response) error {
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	h := c.Response().Header()
	for k, vs := range resp.Header {
		if isHopHeader(http.CanonicalHeaderKey(k)) {
			continue
		}
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	// 204 and 304 carry no body in HTTP; handle's data is dropped rather than failing a
	// request whose events are already published.
	if len(resp.Body) == 0 || status == http.StatusNoContent || status == http.StatusNotModified {
		return c.NoContent(status)
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	c.Response().WriteHeader(status)
	_, err := c.Response().Write(resp.Body)
	return err
}
