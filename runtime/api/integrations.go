package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/runtime/store"
)

// integrationView is an integration as the API shows it: parameters are write-only.
type integrationView struct {
	Key          string    `json:"key"`
	ConnectorKey string    `json:"connectorKey"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

func viewIntegration(in store.Integration) integrationView {
	return integrationView{Key: in.Key, ConnectorKey: in.ConnectorKey, CreatedAt: in.CreatedAt.UTC(), UpdatedAt: in.UpdatedAt.UTC()}
}

type integrationRequest struct {
	Key          string         `json:"key"`
	ConnectorKey string         `json:"connectorKey"`
	Parameters   map[string]any `json:"parameters"`
}

// checkParameters validates connector parameters against the connector's schema; a
// mismatch is a 400 listing each failing location.
func checkParameters(cn *connector.Connector, params map[string]any) error {
	err := cn.ValidateParameters(params)
	if err == nil {
		return nil
	}
	var ve *connector.ValidationError
	if errors.As(err, &ve) {
		return invalid("parameters", "%s", strings.Join(ve.Issues, "; "))
	}
	return invalid("parameters", "%v", err)
}

func (a *API) createIntegration(c echo.Context) error {
	var req integrationRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := checkID("key", req.Key); err != nil {
		return err
	}
	if req.ConnectorKey == "" {
		return invalid("connectorKey", "required")
	}
	cn, ok := a.cfg.Connectors.Connector(req.ConnectorKey)
	if !ok {
		return invalid("connectorKey", "no connector %q is loaded", req.ConnectorKey)
	}
	if req.Parameters == nil {
		req.Parameters = map[string]any{}
	}
	if err := checkParameters(cn, req.Parameters); err != nil {
		return err
	}
	now := a.now()
	in := store.Integration{Key: req.Key, ConnectorKey: req.ConnectorKey, Parameters: req.Parameters, CreatedAt: now, UpdatedAt: now}
	ctx := c.Request().Context()
	if err := a.cfg.Store.CreateIntegration(ctx, in); err != nil {
		return fromStore(err, fmt.Sprintf("integration %q", req.Key))
	}
	v := viewIntegration(in)
	a.publishState(ctx, "", "integration", "created", in.Key, v)
	return c.JSON(http.StatusCreated, v)
}

func (a *API) listIntegrations(c echo.Context) error {
	ins, err := a.cfg.Store.ListIntegrations(c.Request().Context())
	if err != nil {
		return unavailable("store", err)
	}
	out := make([]integrationView, 0, len(ins))
	for _, in := range ins {
		out = append(out, viewIntegration(in))
	}
	return c.JSON(http.StatusOK, out)
}

// integration reads the integration named by the :key path parameter.
func (a *API) integration(c echo.Context) (store.Integration, error) {
	key := c.Param("key")
	if !validID(key) {
		return store.Integration{}, invalid("key", "must match [A-Za-z0-9_-]{1,128}")
	}
	in, err := a.cfg.Store.GetIntegration(c.Request().Context(), key)
	if err != nil {
		return in, fromStore(err, fmt.Sprintf("integration %q", key))
	}
	return in, nil
}

func (a *API) getIntegration(c echo.Context) error {
	in, err := a.integration(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewIntegration(in))
}

// updateIntegration replaces the integration's parameters ({"parameters": {...}}), checked
// against the connector's schema again. The key and connector cannot change.
func (a *API) updateIntegration(c echo.Context) error {
	in, err := a.integration(c)
	if err != nil {
		return err
	}
	var req integrationRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Key != "" && req.Key != in.Key {
		return invalid("key", "cannot be changed")
	}
	if req.ConnectorKey != "" && req.ConnectorKey != in.ConnectorKey {
		return invalid("connectorKey", "cannot be changed; install the connector as a new integration")
	}
	if req.Parameters == nil {
		return invalid("parameters", "required")
	}
	cn, ok := a.cfg.Connectors.Connector(in.ConnectorKey)
	if !ok {
		return &Error{Status: http.StatusConflict, Code: codeConflict,
			Message: fmt.Sprintf("connector %q of integration %q is not loaded", in.ConnectorKey, in.Key)}
	}
	if err := checkParameters(cn, req.Parameters); err != nil {
		return err
	}
	in.Parameters = req.Parameters
	in.UpdatedAt = a.now()
	if err := a.cfg.Store.UpdateIntegration(c.Request().Context(), in); err != nil {
		return fromStore(err, fmt.Sprintf("integration %q", in.Key))
	}
	return c.JSON(http.StatusOK, viewIntegration(in))
}

// deleteIntegration removes the integration with its connections and subscriptions; a
// deleted state change is published for each of them, then for the integration.
func (a *API) deleteIntegration(c echo.Context) error {
	in, err := a.integration(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	conns, err := a.cfg.Store.ListConnections(ctx, in.Key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return unavailable("store", err)
	}
	var subs [][]store.Subscription
	for _, cn := range conns {
		ss, err := a.cfg.Store.ListSubscriptions(ctx, cn.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return unavailable("store", err)
		}
		subs = append(subs, ss)
	}
	if err := a.cfg.Store.DeleteIntegration(ctx, in.Key); err != nil {
		return fromStore(err, fmt.Sprintf("integration %q", in.Key))
	}
	a.pools.drop(in.Key)
	for i, cn := range conns {
		a.subscriptionsGone(subs[i]...)
		for _, s := range subs[i] {
			a.publishState(ctx, s.CustomerID, "subscription", "deleted", s.ID, viewSubscription(s))
		}
		a.publishState(ctx, cn.CustomerID, "connection", "deleted", cn.ID, viewConnection(cn))
	}
	a.publishState(ctx, "", "integration", "deleted", in.Key, viewIntegration(in))
	return c.NoContent(http.StatusNoContent)
}

type webhookView struct {
	Key  string `json:"key"`
	Name string `json:"name"`
	URI  string `json:"uri"`
}

// listWebhooks hands out the integration's global webhook URIs, creating their tokens on
// first use.
func (a *API) listWebhooks(c echo.Context) error {
	in, err := a.integration(c)
	if err != nil {
		return err
	}
	cn, ok := a.cfg.Connectors.Connector(in.ConnectorKey)
	if !ok {
		return &Error{Status: http.StatusConflict, Code: codeConflict,
			Message: fmt.Sprintf("connector %q of integration %q is not loaded", in.ConnectorKey, in.Key)}
	}
	out := []webhookView{}
	for _, k := range sortedKeys(cn.Webhooks) {
		token, err := a.cfg.Store.WebhookToken(c.Request().Context(), in.Key, k)
		if err != nil {
			return fromStore(err, fmt.Sprintf("integration %q", in.Key))
		}
		out = append(out, webhookView{Key: k, Name: cn.Webhooks[k].Name, URI: a.cfg.PublicURL + "/webhooks/" + token})
	}
	return c.JSON(http.StatusOK, out)
}

func (a *API) now() time.Time { return a.cfg.Now().UTC() }
