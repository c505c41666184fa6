package api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/runtime/store"
)

// Dead letters of ingest: a request whose handle threw, timed out or returned an invalid
// result is answered 500 (the sender retries, SPEC 3) and also kept in the store, as
// received, so that an operator can fix the connector and replay it:
//
//	GET    /v1/integrations/{key}/dead-letters                the integration's, newest first: metadata only
//	GET    /v1/integrations/{key}/dead-letters/{id}           one, with the request (query, headers, body)
//	POST   /v1/integrations/{key}/dead-letters/{id}/replay    runs the current handle on it and routes
//	                                                          what it returns as ingest would; on success
//	                                                          the dead letter is removed
//	DELETE /v1/integrations/{key}/dead-letters/{id}           forgets it -> 204
//
// The headers are kept because handle needs them again (signatures); they are shown only
// by the route of one dead letter, behind the API token like every /v1 route. The webhook's
// path is not kept: its token is a secret. Keeping a dead letter is best effort: the sender
// has its 500 and retries whether or not the store took it. A dead letter's id is derived
// from the request (webhook key and delivery key), so the sender's retries of a request that
// keeps failing update one dead letter, counting attempts, rather than push others out.

// IngestDeadLetters keeps the requests whose handle failed. Both stores implement it.
type IngestDeadLetters interface {
	PutIngestDeadLetter(ctx context.Context, d store.IngestDeadLetter) error
	ListIngestDeadLetters(ctx context.Context, integrationKey string) ([]store.IngestDeadLetter, error)
	GetIngestDeadLetter(ctx context.Context, integrationKey, id string) (store.IngestDeadLetter, error)
	DeleteIngestDeadLetter(ctx context.Context, integrationKey, id string) error
}

// storeTimeout bounds each store call of ingest, so that a Redis that is down, slow or
// silent makes a quick 503 rather than a hanging request.
const storeTimeout = time.Second

// deliveryID returns the sender's own id of a request, from the first of a short list of
// headers that providers keep the same across their retries of one delivery and change for
// every new one, prefixed with the header's name. Empty when none is present; then events
// without ids of their own are recognised only within the bus's duplicate window.
// X-Request-Id and the like are left out on purpose: proxies make a new one per attempt.
func deliveryID(h http.Header) string {
	for _, name := range [...]string{
		"X-Github-Delivery",    // GitHub
		"X-Shopify-Webhook-Id", // Shopify
		"Webhook-Id",           // Standard Webhooks
		"Svix-Id",              // Svix
	} {
		if v := h.Get(name); v != "" {
			return name + ":" + v
		}
	}
	return ""
}

// deadLetters returns where dead letters are kept: Config.DeadLetters, else the store when
// it keeps them; false when nowhere.
func (a *API) deadLetters() (IngestDeadLetters, bool) {
	if a.cfg.DeadLetters != nil {
		return a.cfg.DeadLetters, true
	}
	d, ok := a.cfg.Store.(IngestDeadLetters)
	return d, ok
}

func (a *API) deadLetterRoutes(v1 *echo.Group) {
	v1.GET("/integrations/:key/dead-letters", a.listDeadLetters)
	v1.GET("/integrations/:key/dead-letters/:id", a.getDeadLetter)
	v1.POST("/integrations/:key/dead-letters/:id/replay", a.replayDeadLetter)
	v1.DELETE("/integrations/:key/dead-letters/:id", a.deleteDeadLetter)
}

// keepDeadLetter stores the request whose handle failed with handleErr. Only a failure of
// the script is kept: a sender that hung up has nothing to replay.
func (a *API) keepDeadLetter(ctx context.Context, integrationKey string, wh *connector.Webhook, r *http.Request, body []byte, handleErr error) {
	var e *Error
	if !errors.As(handleErr, &e) || e.Code != codeHandleFailed {
		return
	}
	dls, ok := a.deadLetters()
	if !ok {
		return
	}
	now := a.now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	d := store.IngestDeadLetter{
		ID:               deadLetterID(wh.Key, deliveryKey(r, body)),
		IntegrationKey:   integrationKey,
		WebhookKey:       wh.Key,
		Method:           r.Method,
		Query:            r.URL.RawQuery,
		Header:           r.Header.Clone(),
		Host:             r.Host,
		Body:             body,
		Error:            e.Message,
		ConnectorVersion: webhookVersion(wh),
		Attempts:         1,
		CreatedAt:        now,
		UpdatedAt:        now,
	}
	if old, err := dls.GetIngestDeadLetter(ctx, integrationKey, d.ID); err == nil {
		d.Attempts, d.CreatedAt = old.Attempts+1, old.CreatedAt // a retry of a request that failed before
	}
	if err := dls.PutIngestDeadLetter(ctx, d); err != nil {
		a.log.WarnContext(ctx, "keeping a dead letter", "integration", integrationKey, "webhook", wh.Key, "error", err)
		return
	}
	a.metrics.deadLettered.WithLabelValues(integrationKey).Inc()
	a.log.InfoContext(ctx, "request dead-lettered", "integration", integrationKey, "webhook", wh.Key, "dead_letter", d.ID)
}

// deadLetterID is the id of the dead letter of a request to webhook webhookKey with the
// given delivery key: the same for the sender's retries of the request.
func deadLetterID(webhookKey, deliveryKey string) string {
	sum := sha256.Sum256([]byte(webhookKey + "\x00" + deliveryKey))
	return "dl_" + hex.EncodeToString(sum[:16])
}

// webhookVersion identifies the code of a webhook: a hash of the files of its directory
// (spec.yml, handle.js) as they are when it is called, which is the loaded version unless
// they were edited since and not reloaded.
func webhookVersion(wh *connector.Webhook) string {
	entries, err := os.ReadDir(wh.Dir)
	if err != nil {
		return "unknown"
	}
	h := sha256.New()
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(wh.Dir, e.Name()))
		if err != nil {
			return "unknown"
		}
		fmt.Fprintf(h, "%s\x00%d\x00", e.Name(), len(b))
		h.Write(b)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// deadLetterSummary is a dead letter as the list shows it: no headers, no body.
type deadLetterSummary struct {
	ID               string    `json:"id"`
	IntegrationKey   string    `json:"integrationKey"`
	WebhookKey       string    `json:"webhookKey"`
	Method           string    `json:"method"`
	Error            string    `json:"error"`
	ConnectorVersion string    `json:"connectorVersion"`
	Attempts         int       `json:"attempts"`
	BodySize         int       `json:"bodySize"`
	CreatedAt        time.Time `json:"createdAt"`
	UpdatedAt        time.Time `json:"updatedAt"`
}

// deadLetterView is one dead letter with its request. The body is a string when it is
// UTF-8 (bodyEncoding "utf8"), else base64 ("base64").
type deadLetterView struct {
	deadLetterSummary
	Query        string              `json:"query"`
	Headers      map[string][]string `json:"headers"`
	Body         string              `json:"body"`
	BodyEncoding string              `json:"bodyEncoding"`
}

func summarize(d store.IngestDeadLetter) deadLetterSummary {
	return deadLetterSummary{
		ID: d.ID, IntegrationKey: d.IntegrationKey, WebhookKey: d.WebhookKey, Method: d.Method,
		Error: d.Error, ConnectorVersion: d.ConnectorVersion, Attempts: d.Attempts, BodySize: len(d.Body),
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
	}
}

func viewDeadLetter(d store.IngestDeadLetter) deadLetterView {
	v := deadLetterView{deadLetterSummary: summarize(d), Query: d.Query, Headers: d.Header, BodyEncoding: "utf8"}
	if v.Headers == nil {
		v.Headers = map[string][]string{}
	}
	if utf8.Valid(d.Body) {
		v.Body = string(d.Body)
	} else {
		v.Body, v.BodyEncoding = base64.StdEncoding.EncodeToString(d.Body), "base64"
	}
	return v
}

// deadLetterStore checks the integration of the request's path and returns the store of
// its dead letters.
func (a *API) deadLetterStore(c echo.Context) (IngestDeadLetters, store.Integration, error) {
	key := c.Param("key")
	dls, ok := a.deadLetters()
	if !ok {
		return nil, store.Integration{}, notFound("this store keeps no dead letters")
	}
	if !validID(key) {
		return nil, store.Integration{}, notFound("integration %q not found", key)
	}
	in, err := a.cfg.Store.GetIntegration(c.Request().Context(), key)
	if err != nil {
		return nil, in, fromStore(err, fmt.Sprintf("integration %q", key))
	}
	return dls, in, nil
}

func (a *API) listDeadLetters(c echo.Context) error {
	dls, in, err := a.deadLetterStore(c)
	if err != nil {
		return err
	}
	list, err := dls.ListIngestDeadLetters(c.Request().Context(), in.Key)
	if err != nil {
		return fromStore(err, "dead letters")
	}
	out := make([]deadLetterSummary, 0, len(list))
	for _, d := range list {
		out = append(out, summarize(d))
	}
	return c.JSON(http.StatusOK, out)
}

func (a *API) getDeadLetter(c echo.Context) error {
	dls, in, err := a.deadLetterStore(c)
	if err != nil {
		return err
	}
	id := c.Param("id")
	d, err := dls.GetIngestDeadLetter(c.Request().Context(), in.Key, id)
	if err != nil {
		return fromStore(err, fmt.Sprintf("dead letter %q", id))
	}
	return c.JSON(http.StatusOK, viewDeadLetter(d))
}

func (a *API) deleteDeadLetter(c echo.Context) error {
	dls, in, err := a.deadLetterStore(c)
	if err != nil {
		return err
	}
	id := c.Param("id")
	if err := dls.DeleteIngestDeadLetter(c.Request().Context(), in.Key, id); err != nil {
		return fromStore(err, fmt.Sprintf("dead letter %q", id))
	}
	return c.NoContent(http.StatusNoContent)
}

// replayResult is the answer of a replay: what routing did, and the status handle answered.
type replayResult struct {
	ID         string `json:"id"`
	Published  int    `json:"published"`
	Unmatched  int    `json:"unmatched"`
	Duplicates int    `json:"duplicates"`
	Response   struct {
		Status int `json:"status"`
	} `json:"response"`
}

// replayDeadLetter runs the current handle on a dead letter's request and routes what it
// returns as ingest would: with the request's delivery key and delivery id, so that a
// sender's retry that got through meanwhile is not published twice. A handle that fails
// again is a 422 (the dead letter stays, its error and attempts updated); a store or bus
// that is down a 503; on success the dead letter is removed.
func (a *API) replayDeadLetter(c echo.Context) error {
	dls, in, err := a.deadLetterStore(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	id := c.Param("id")
	d, err := dls.GetIngestDeadLetter(ctx, in.Key, id)
	if err != nil {
		return fromStore(err, fmt.Sprintf("dead letter %q", id))
	}
	cn, ok := a.cfg.Connectors.Connector(in.ConnectorKey)
	if !ok {
		return unprocessable(codeUnprocessable, fmt.Sprintf("connector %q of integration %q is not loaded", in.ConnectorKey, in.Key), nil)
	}
	wh, ok := cn.Webhooks[d.WebhookKey]
	if !ok {
		return unprocessable(codeUnprocessable, fmt.Sprintf("connector %q has no webhook %q", cn.Key, d.WebhookKey), nil)
	}
	// The request again, at the path it was sent to, so that its delivery key is the one
	// ingest computed.
	token, err := a.cfg.Store.WebhookToken(ctx, in.Key, d.WebhookKey)
	if err != nil {
		return fromStore(err, fmt.Sprintf("integration %q", in.Key))
	}
	u := &url.URL{Path: "/webhooks/" + token, RawQuery: d.Query}
	r, err := http.NewRequestWithContext(ctx, d.Method, u.String(), nil)
	if err != nil {
		return invalid("", "dead letter %q holds a request that cannot be rebuilt: %v", d.ID, err)
	}
	r.Header = http.Header(d.Header).Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.Host = d.Host

	res, err := a.runHandle(ctx, in, wh, r, d.Body)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || e.Code != codeHandleFailed {
			return err
		}
		d.Attempts++
		d.Error, d.ConnectorVersion, d.UpdatedAt = e.Message, webhookVersion(wh), a.now()
		if perr := dls.PutIngestDeadLetter(ctx, d); perr != nil {
			a.log.WarnContext(ctx, "updating a dead letter", "integration", in.Key, "dead_letter", d.ID, "error", perr)
		}
		return &Error{Status: http.StatusUnprocessableEntity, Code: codeHandleFailed, Message: e.Message}
	}
	if s := res.Response.Status; s >= 300 {
		// handle refused the request (a bad signature, say): nothing to replay.
		a.log.InfoContext(ctx, "replayed dead letter answered non-2xx", "integration", in.Key, "dead_letter", d.ID, "status", s)
	}
	routed, err := a.routeEvents(ctx, in.Key, d.WebhookKey, r, d.Body, res)
	if err != nil {
		return err
	}
	if err := dls.DeleteIngestDeadLetter(context.WithoutCancel(ctx), in.Key, d.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		// The events are out; replaying it again would publish nothing new.
		a.log.WarnContext(ctx, "removing a replayed dead letter", "integration", in.Key, "dead_letter", d.ID, "error", err)
	}
	out := replayResult{ID: d.ID, Published: routed.Published, Unmatched: routed.Unmatched, Duplicates: routed.Duplicates}
	out.Response.Status = cmp.Or(res.Response.Status, http.StatusOK)
	return c.JSON(http.StatusOK, out)
}
