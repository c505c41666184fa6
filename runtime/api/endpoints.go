package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// Delivery endpoints (SPEC 3 and 5). Routes, all under /v1/integrations/{key}/endpoints:
//
//	POST   .../endpoints                                 {url, eventKeys?, description?} -> 201, with the secret
//	GET    .../endpoints                                 list, no secrets
//	GET    .../endpoints/{id}                            one, no secret
//	PATCH  .../endpoints/{id}                            {url?, eventKeys?, description?, enabled?, rotateSecret?}
//	DELETE .../endpoints/{id}                            -> 204
//	POST   .../endpoints/{id}/test                       -> {status, durationMs, body, error?}
//	GET    .../endpoints/{id}/attempts                   the newest 100 attempts, newest first
//	GET    .../endpoints/{id}/dead-letters               dead letters, newest first
//	POST   .../endpoints/{id}/dead-letters/{dlId}/replay -> 202 {replayed: 1}
//	POST   .../endpoints/{id}/replay                     {since?, until?} (RFC 3339) -> 202 {replayed: n}

// Deliverer is what the endpoint routes need of the delivery service.
type Deliverer interface {
	// CheckURL reports what makes rawURL unfit as an endpoint URL.
	CheckURL(ctx context.Context, rawURL string) error
	// Test sends ep a signed test event now and returns the attempt, response included.
	Test(ctx context.Context, ep store.Endpoint) (store.Attempt, error)
	// Replay enqueues dead letters again, deleting each once enqueued, and says how many.
	Replay(ctx context.Context, ep store.Endpoint, dls []store.DeadLetter) (int, error)
}

// EndpointsConfig is what the endpoint routes are handed. Store and Deliverer are required.
type EndpointsConfig struct {
	Store     store.EndpointStore
	Deliverer Deliverer
	// MaxPerIntegration is the most endpoints an integration may have; default 5.
	MaxPerIntegration int
	// RotationGrace is how long a rotated-out secret keeps signing; default 24h.
	RotationGrace time.Duration
}

// Defaults of EndpointsConfig.
const (
	defaultMaxEndpoints  = 5
	defaultRotationGrace = 24 * time.Hour
	maxDescription       = 1024
	maxEventKeys         = 100
	secretBytes          = 24
)

// AddEndpointRoutes adds the delivery endpoint routes to /v1.
func (a *API) AddEndpointRoutes(cfg EndpointsConfig) {
	if cfg.MaxPerIntegration <= 0 {
		cfg.MaxPerIntegration = defaultMaxEndpoints
	}
	if cfg.RotationGrace <= 0 {
		cfg.RotationGrace = defaultRotationGrace
	}
	r := &endpointRoutes{a: a, cfg: cfg}
	g := a.v1.Group("/integrations/:key/endpoints")
	g.POST("", r.create)
	g.GET("", r.list)
	g.GET("/:id", r.get)
	g.PATCH("/:id", r.update)
	g.DELETE("/:id", r.delete)
	g.POST("/:id/test", r.test)
	g.GET("/:id/attempts", r.attempts)
	g.GET("/:id/dead-letters", r.deadLetters)
	g.POST("/:id/dead-letters/:dlId/replay", r.replayOne)
	g.POST("/:id/replay", r.replayRange)
}

type endpointRoutes struct {
	a   *API
	cfg EndpointsConfig
}

// endpointView is an endpoint as the API shows it. Secret is set only in the responses
// that create it: the creation and a rotation.
type endpointView struct {
	ID                      string     `json:"id"`
	IntegrationKey          string     `json:"integrationKey"`
	URL                     string     `json:"url"`
	EventKeys               []string   `json:"eventKeys"`
	Description             string     `json:"description"`
	Enabled                 bool       `json:"enabled"`
	DisabledReason          string     `json:"disabledReason,omitempty"`
	Secret                  string     `json:"secret,omitempty"`
	PreviousSecretExpiresAt *time.Time `json:"previousSecretExpiresAt,omitempty"`
	CreatedAt               time.Time  `json:"createdAt"`
	UpdatedAt               time.Time  `json:"updatedAt"`
}

func viewEndpoint(ep store.Endpoint, now time.Time) endpointView {
	v := endpointView{
		ID: ep.ID, IntegrationKey: ep.IntegrationKey, URL: ep.URL, EventKeys: ep.EventKeys,
		Description: ep.Description, Enabled: ep.Enabled, DisabledReason: ep.DisabledReason,
		CreatedAt: ep.CreatedAt.UTC(), UpdatedAt: ep.UpdatedAt.UTC(),
	}
	if v.EventKeys == nil {
		v.EventKeys = []string{}
	}
	if ep.PreviousSecret != "" && now.Before(ep.PreviousSecretExpiresAt) {
		t := ep.PreviousSecretExpiresAt.UTC()
		v.PreviousSecretExpiresAt = &t
	}
	return v
}

// newSecret returns "whsec_" and the base64 of 192 random bits.
func newSecret() store.Secret {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return store.Secret("whsec_" + base64.StdEncoding.EncodeToString(b))
}

type endpointRequest struct {
	URL          *string   `json:"url"`
	EventKeys    *[]string `json:"eventKeys"`
	Description  *string   `json:"description"`
	Enabled      *bool     `json:"enabled"`
	RotateSecret bool      `json:"rotateSecret"`
}

// apply checks req's fields and sets them on ep.
func (r *endpointRoutes) apply(c echo.Context, req endpointRequest, ep *store.Endpoint) error {
	if req.URL != nil {
		if *req.URL == "" {
			return invalid("url", "required")
		}
		if err := r.cfg.Deliverer.CheckURL(c.Request().Context(), *req.URL); err != nil {
			return invalid("url", "%v", err)
		}
		ep.URL = *req.URL
	}
	if req.EventKeys != nil {
		keys := []string{}
		seen := map[string]bool{}
		for i, k := range *req.EventKeys {
			if k == "" {
				return invalid(fmt.Sprintf("eventKeys[%d]", i), "must not be empty")
			}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		if len(keys) > maxEventKeys {
			return invalid("eventKeys", "at most %d", maxEventKeys)
		}
		ep.EventKeys = keys
	}
	if req.Description != nil {
		if len(*req.Description) > maxDescription {
			return invalid("description", "at most %d bytes", maxDescription)
		}
		ep.Description = *req.Description
	}
	if req.Enabled != nil {
		ep.Enabled = *req.Enabled
		if ep.Enabled {
			ep.DisabledReason = ""
		}
	}
	return nil
}

func (r *endpointRoutes) create(c echo.Context) error {
	in, err := r.a.integration(c)
	if err != nil {
		return err
	}
	var req endpointRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.URL == nil {
		return invalid("url", "required")
	}
	if req.Enabled != nil || req.RotateSecret {
		return invalid("", "enabled and rotateSecret are for PATCH")
	}
	now := r.a.now()
	ep := store.Endpoint{
		ID: newID("ep_"), IntegrationKey: in.Key, EventKeys: []string{}, Enabled: true,
		Secret: newSecret(), CreatedAt: now, UpdatedAt: now,
	}
	if err := r.apply(c, req, &ep); err != nil {
		return err
	}
	err = r.cfg.Store.CreateEndpoint(c.Request().Context(), ep, r.cfg.MaxPerIntegration)
	if errors.Is(err, store.ErrLimit) {
		return &Error{Status: http.StatusConflict, Code: codeConflict, Message: fmt.Sprintf(
			"integration %q already has %d endpoints, the most allowed; delete one first", in.Key, r.cfg.MaxPerIntegration)}
	}
	if err != nil {
		return fromStore(err, fmt.Sprintf("integration %q", in.Key))
	}
	v := viewEndpoint(ep, now)
	v.Secret = string(ep.Secret)
	return c.JSON(http.StatusCreated, v)
}

func (r *endpointRoutes) list(c echo.Context) error {
	in, err := r.a.integration(c)
	if err != nil {
		return err
	}
	eps, err := r.cfg.Store.ListEndpoints(c.Request().Context(), in.Key)
	if err != nil {
		return unavailable("store", err)
	}
	now := r.a.now()
	out := make([]endpointView, 0, len(eps))
	for _, ep := range eps {
		out = append(out, viewEndpoint(ep, now))
	}
	return c.JSON(http.StatusOK, out)
}

// endpoint reads the endpoint named by the :key and :id path parameters.
func (r *endpointRoutes) endpoint(c echo.Context) (store.Endpoint, error) {
	key, id := c.Param("key"), c.Param("id")
	if !validID(key) {
		return store.Endpoint{}, invalid("key", "must match [A-Za-z0-9_-]{1,128}")
	}
	c.Set(ctxIntegration, key)
	ep, err := r.cfg.Store.GetEndpoint(c.Request().Context(), key, id)
	if err != nil {
		return ep, fromStore(err, fmt.Sprintf("endpoint %q of integration %q", id, key))
	}
	return ep, nil
}

func (r *endpointRoutes) get(c echo.Context) error {
	ep, err := r.endpoint(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewEndpoint(ep, r.a.now()))
}

// update changes the fields given. {"rotateSecret": true} makes a new secret, returned in
// this response only; the old one keeps signing, beside it, for RotationGrace.
func (r *endpointRoutes) update(c echo.Context) error {
	ep, err := r.endpoint(c)
	if err != nil {
		return err
	}
	var req endpointRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := r.apply(c, req, &ep); err != nil {
		return err
	}
	now := r.a.now()
	if req.RotateSecret {
		ep.PreviousSecret, ep.PreviousSecretExpiresAt = ep.Secret, now.Add(r.cfg.RotationGrace)
		ep.Secret = newSecret()
	}
	ep.UpdatedAt = now
	if err := r.cfg.Store.UpdateEndpoint(c.Request().Context(), ep); err != nil {
		return fromStore(err, fmt.Sprintf("endpoint %q", ep.ID))
	}
	v := viewEndpoint(ep, now)
	if req.RotateSecret {
		v.Secret = string(ep.Secret)
	}
	return c.JSON(http.StatusOK, v)
}

func (r *endpointRoutes) delete(c echo.Context) error {
	ep, err := r.endpoint(c)
	if err != nil {
		return err
	}
	if err := r.cfg.Store.DeleteEndpoint(c.Request().Context(), ep.IntegrationKey, ep.ID); err != nil {
		return fromStore(err, fmt.Sprintf("endpoint %q", ep.ID))
	}
	return c.NoContent(http.StatusNoContent)
}

type testView struct {
	Status     int    `json:"status"`
	DurationMs int64  `json:"durationMs"`
	Body       string `json:"body"`
	Error      string `json:"error,omitempty"`
}

// test sends a signed test event now; the reply describes the endpoint's answer (status 0:
// none), so a failing endpoint is still a 200 here.
func (r *endpointRoutes) test(c echo.Context) error {
	ep, err := r.endpoint(c)
	if err != nil {
		return err
	}
	a, err := r.cfg.Deliverer.Test(c.Request().Context(), ep)
	if err != nil {
		r.a.log.Warn("test delivery", "integration", ep.IntegrationKey, "endpoint", ep.ID, "err", err)
	}
	return c.JSON(http.StatusOK, testView{Status: a.Status, DurationMs: a.DurationMs, Body: a.Response, Error: a.Error})
}

func (r *endpointRoutes) attempts(c echo.Context) error {
	ep, err := r.endpoint(c)
	if err != nil {
		return err
	}
	list, err := r.cfg.Store.ListAttempts(c.Request().Context(), ep.IntegrationKey, ep.ID)
	if err != nil {
		return fromStore(err, fmt.Sprintf("endpoint %q", ep.ID))
	}
	return c.JSON(http.StatusOK, list)
}

func (r *endpointRoutes) deadLetters(c echo.Context) error {
	ep, err := r.endpoint(c)
	if err != nil {
		return err
	}
	list, err := r.cfg.Store.ListDeadLetters(c.Request().Context(), ep.IntegrationKey, ep.ID)
	if err != nil {
		return fromStore(err, fmt.Sprintf("endpoint %q", ep.ID))
	}
	return c.JSON(http.StatusOK, list)
}

type replayView struct {
	Replayed int `json:"replayed"`
}

// replayable reads the endpoint and refuses a disabled one: its replayed messages would
// only be dead-lettered again.
func (r *endpointRoutes) replayable(c echo.Context) (store.Endpoint, error) {
	ep, err := r.endpoint(c)
	if err != nil {
		return ep, err
	}
	if !ep.Enabled {
		return ep, &Error{Status: http.StatusConflict, Code: codeConflict,
			Message: fmt.Sprintf("endpoint %q is disabled; enable it (PATCH {\"enabled\": true}) before replaying", ep.ID)}
	}
	return ep, nil
}

func (r *endpointRoutes) replay(c echo.Context, ep store.Endpoint, dls []store.DeadLetter) error {
	n, err := r.cfg.Deliverer.Replay(c.Request().Context(), ep, dls)
	if err != nil {
		return unavailable("event bus", err)
	}
	return c.JSON(http.StatusAccepted, replayView{Replayed: n})
}

func (r *endpointRoutes) replayOne(c echo.Context) error {
	ep, err := r.replayable(c)
	if err != nil {
		return err
	}
	id := c.Param("dlId")
	d, err := r.cfg.Store.GetDeadLetter(c.Request().Context(), ep.IntegrationKey, ep.ID, id)
	if err != nil {
		return fromStore(err, fmt.Sprintf("dead letter %q", id))
	}
	return r.replay(c, ep, []store.DeadLetter{d})
}

type replayRequest struct {
	Since *time.Time `json:"since"`
	Until *time.Time `json:"until"`
}

// replayRange replays the endpoint's dead letters created in [since, until]; either bound
// may be left out. An empty body replays them all.
func (r *endpointRoutes) replayRange(c echo.Context) error {
	ep, err := r.replayable(c)
	if err != nil {
		return err
	}
	var req replayRequest
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	if req.Since != nil && req.Until != nil && req.Until.Before(*req.Since) {
		return invalid("until", "is before since")
	}
	list, err := r.cfg.Store.ListDeadLetters(c.Request().Context(), ep.IntegrationKey, ep.ID)
	if err != nil {
		return fromStore(err, fmt.Sprintf("endpoint %q", ep.ID))
	}
	var picked []store.DeadLetter
	for i := len(list) - 1; i >= 0; i-- { // oldest first, the order they failed in
		d := list[i]
		if (req.Since == nil || !d.CreatedAt.Before(*req.Since)) && (req.Until == nil || !d.CreatedAt.After(*req.Until)) {
			picked = append(picked, d)
		}
	}
	return r.replay(c, ep, picked)
}
