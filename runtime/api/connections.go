package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// connectionView is a connection as the API shows it: credentials and parameters are
// write-only (parameters may hold a shop name as well as a secret, and the API cannot tell).
type connectionView struct {
	ID             string    `json:"id"`
	IntegrationKey string    `json:"integrationKey"`
	CustomerID     string    `json:"customerId"`
	CreatedAt      time.Time `json:"createdAt"`
}

func viewConnection(c store.Connection) connectionView {
	return connectionView{ID: c.ID, IntegrationKey: c.IntegrationKey, CustomerID: c.CustomerID, CreatedAt: c.CreatedAt.UTC()}
}

type connectionRequest struct {
	ID             string         `json:"id"`
	IntegrationKey string         `json:"integrationKey"`
	CustomerID     string         `json:"customerId"`
	Credentials    map[string]any `json:"credentials"`
	Parameters     map[string]any `json:"parameters"`
}

func (a *API) createConnection(c echo.Context) error {
	var req connectionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.ID == "" {
		req.ID = newID("conn_")
	} else if err := checkID("id", req.ID); err != nil {
		return err
	}
	if err := checkID("integrationKey", req.IntegrationKey); err != nil {
		return err
	}
	if err := checkID("customerId", req.CustomerID); err != nil {
		return err
	}
	if req.Credentials == nil {
		req.Credentials = map[string]any{}
	}
	if req.Parameters == nil {
		req.Parameters = map[string]any{}
	}
	ctx := c.Request().Context()
	if _, err := a.cfg.Store.GetIntegration(ctx, req.IntegrationKey); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return invalid("integrationKey", "no integration %q", req.IntegrationKey)
		}
		return unavailable("store", err)
	}
	conn := store.Connection{
		ID:             req.ID,
		IntegrationKey: req.IntegrationKey,
		CustomerID:     req.CustomerID,
		Credentials:    req.Credentials,
		Parameters:     req.Parameters,
		CreatedAt:      a.now(),
	}
	if err := a.cfg.Store.CreateConnection(ctx, conn); err != nil {
		if errors.Is(err, store.ErrNotFound) { // the integration went away meanwhile
			return invalid("integrationKey", "no integration %q", req.IntegrationKey)
		}
		return fromStore(err, fmt.Sprintf("connection %q", req.ID))
	}
	v := viewConnection(conn)
	a.publishState(ctx, conn.CustomerID, "connection", "created", conn.ID, v)
	return c.JSON(http.StatusCreated, v)
}

// listConnections lists the connections of one integration: GET
// /v1/connections?integrationKey=K.
func (a *API) listConnections(c echo.Context) error {
	key := c.QueryParam("integrationKey")
	if err := checkID("integrationKey", key); err != nil {
		return err
	}
	conns, err := a.cfg.Store.ListConnections(c.Request().Context(), key)
	if err != nil {
		return fromStore(err, fmt.Sprintf("integration %q", key))
	}
	out := make([]connectionView, 0, len(conns))
	for _, cn := range conns {
		out = append(out, viewConnection(cn))
	}
	return c.JSON(http.StatusOK, out)
}

// connection reads the connection named by the :id path parameter.
func (a *API) connection(c echo.Context) (store.Connection, error) {
	id := c.Param("id")
	if !validID(id) {
		return store.Connection{}, invalid("id", "must match [A-Za-z0-9_-]{1,128}")
	}
	conn, err := a.cfg.Store.GetConnection(c.Request().Context(), id)
	if err != nil {
		return conn, fromStore(err, fmt.Sprintf("connection %q", id))
	}
	return conn, nil
}

func (a *API) getConnection(c echo.Context) error {
	conn, err := a.connection(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewConnection(conn))
}

// deleteConnection removes the connection and its subscriptions, publishing a deleted state
// change for each subscription and then for the connection.
func (a *API) deleteConnection(c echo.Context) error {
	conn, err := a.connection(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	subs, err := a.cfg.Store.ListSubscriptions(ctx, conn.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return unavailable("store", err)
	}
	if err := a.cfg.Store.DeleteConnection(ctx, conn.ID); err != nil {
		return fromStore(err, fmt.Sprintf("connection %q", conn.ID))
	}
	a.subscriptionsGone(subs...)
	for _, s := range subs {
		a.publishState(ctx, s.CustomerID, "subscription", "deleted", s.ID, viewSubscription(s))
	}
	a.publishState(ctx, conn.CustomerID, "connection", "deleted", conn.ID, viewConnection(conn))
	return c.NoContent(http.StatusNoContent)
}
