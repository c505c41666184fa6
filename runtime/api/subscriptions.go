package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/runtime/store"
	"github.com/switchboard-run/switchboard/sandbox"
)

// statusSubscribed is the status of a subscription whose selector is computed and routed.
const statusSubscribed = "subscribed"

// subscriptionView is a subscription as the API shows it: parameters are write-only.
type subscriptionView struct {
	ID               string    `json:"id"`
	ConnectionID     string    `json:"connectionId"`
	IntegrationKey   string    `json:"integrationKey"`
	CustomerID       string    `json:"customerId"`
	EventKey         string    `json:"eventKey"`
	Status           string    `json:"status"`
	GlobalWebhookKey string    `json:"globalWebhookKey,omitempty"`
	Selector         string    `json:"globalWebhookEventSelector,omitempty"`
	ChannelKey       string    `json:"channelKey,omitempty"`
	EventType        string    `json:"eventType,omitempty"`
	CreatedAt        time.Time `json:"createdAt"`
	UpdatedAt        time.Time `json:"updatedAt"`
}

func viewSubscription(s store.Subscription) subscriptionView {
	return subscriptionView{
		ID:               s.ID,
		ConnectionID:     s.ConnectionID,
		IntegrationKey:   s.IntegrationKey,
		CustomerID:       s.CustomerID,
		EventKey:         s.EventKey,
		Status:           s.Status,
		GlobalWebhookKey: s.GlobalWebhookKey,
		Selector:         s.Selector,
		ChannelKey:       s.ChannelKey,
		EventType:        s.EventType,
		CreatedAt:        s.CreatedAt.UTC(),
		UpdatedAt:        s.UpdatedAt.UTC(),
	}
}

type subscriptionRequest struct {
	EventKey   string         `json:"eventKey"`
	Parameters map[string]any `json:"parameters"`
}

// createSubscription runs the event's getEventSelector for the connection and stores the
// subscription under the selector it returns. A failing getEventSelector is a 422 and
// nothing is stored.
func (a *API) createSubscription(c echo.Context) error {
	conn, err := a.connection(c)
	if err != nil {
		return err
	}
	var req subscriptionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.EventKey == "" {
		return invalid("eventKey", "required")
	}
	if req.Parameters == nil {
		req.Parameters = map[string]any{}
	}
	ctx := c.Request().Context()
	in, cn, err := a.integrationOf(ctx, conn)
	if err != nil {
		return err
	}
	ev, ok := cn.Events[req.EventKey]
	if !ok {
		return invalid("eventKey", "connector %q has no event %q", cn.Key, req.EventKey)
	}
	if err := ev.ValidateParameters(req.Parameters); err != nil {
		var ve *connector.ValidationError
		if errors.As(err, &ve) {
			return invalid("parameters", "%s", strings.Join(ve.Issues, "; "))
		}
		return invalid("parameters", "%v", err)
	}
	sel, err := a.selection(ctx, in, cn, conn, ev, req.Parameters)
	if err != nil {
		return err
	}
	now := a.now()
	s := store.Subscription{
		ID:               newID("sub_"),
		ConnectionID:     conn.ID,
		IntegrationKey:   conn.IntegrationKey,
		CustomerID:       conn.CustomerID,
		EventKey:         ev.Key,
		Parameters:       req.Parameters,
		Status:           statusSubscribed,
		GlobalWebhookKey: sel.GlobalWebhookKey,
		Selector:         sel.GlobalWebhookEventSelector,
		CreatedAt:        now,
		UpdatedAt:        now,
	}
	if err := a.cfg.Store.CreateSubscription(ctx, s); err != nil {
		return fromStore(err, fmt.Sprintf("connection %q", conn.ID))
	}
	v := viewSubscription(s)
	a.publishState(ctx, s.CustomerID, "subscription", "created", s.ID, v)
	return c.JSON(http.StatusCreated, v)
}

// integrationOf reads the connection's integration and finds its connector.
func (a *API) integrationOf(ctx context.Context, conn store.Connection) (store.Integration, *connector.Connector, error) {
	in, err := a.cfg.Store.GetIntegration(ctx, conn.IntegrationKey)
	if err != nil {
		return in, nil, fromStore(err, fmt.Sprintf("integration %q", conn.IntegrationKey))
	}
	cn, ok := a.cfg.Connectors.Connector(in.ConnectorKey)
	if !ok {
		return in, nil, &Error{Status: http.StatusConflict, Code: codeConflict,
			Message: fmt.Sprintf("connector %q of integration %q is not loaded", in.ConnectorKey, in.Key)}
	}
	return in, cn, nil
}

// selection runs the event's getEventSelector (script or mapping) with the connection's
// credentials and an apiClient on the connector's API, and checks that the webhook it names
// exists. Every failure is a 422 whose message is scrubbed of the secrets the script saw.
func (a *API) selection(ctx context.Context, in store.Integration, cn *connector.Connector, conn store.Connection, ev *connector.Event, params map[string]any) (connector.Selection, error) {
	secrets := []map[string]any{conn.Credentials, in.Parameters, conn.Parameters, params}
	// Only a script has an apiClient; a mapping needs no API, and a connection whose
	// credentials lack what api.auth names can still subscribe through one.
	var api *sandbox.API
	if ev.SelectorScript != nil {
		var err error
		api, err = cn.ResolveAPI(conn.Credentials, conn.Parameters, in.Parameters, a.cfg.HTTPClient)
		if err != nil {
			return connector.Selection{}, unprocessable(codeUnprocessable,
				redact("resolving the connector's API: "+err.Error(), secrets...), nil)
		}
	}
	sel, err := ev.Selector(ctx, connector.SelectorInput{
		Parameters:          params,
		Credentials:         conn.Credentials,
		ConnectorParameters: in.Parameters,
		Connection: map[string]any{
			"id":             conn.ID,
			"integrationKey": conn.IntegrationKey,
			"customerId":     conn.CustomerID,
			"parameters":     conn.Parameters,
		},
		API:    api,
		Config: sandbox.Config{Limits: a.cfg.Script, Logger: a.log.With("connector", cn.Key, "event", ev.Key)},
	})
	if err != nil {
		var se *sandbox.ScriptError
		if errors.As(err, &se) {
			a.metrics.scriptErrors.WithLabelValues(in.Key, "getEventSelector").Inc()
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return sel, err
		}
		return sel, unprocessable(codeSelectorFailed, redact("getEventSelector failed: "+err.Error(), secrets...), nil)
	}
	if sel.GlobalWebhookKey == "" || sel.GlobalWebhookEventSelector == "" {
		return sel, unprocessable(codeSelectorFailed, "getEventSelector failed: it must return a globalWebhookKey and a globalWebhookEventSelector", nil)
	}
	if _, ok := cn.Webhooks[sel.GlobalWebhookKey]; !ok {
		return sel, unprocessable(codeSelectorFailed,
			fmt.Sprintf("getEventSelector failed: connector %q has no global webhook %q", cn.Key, sel.GlobalWebhookKey), nil)
	}
	return sel, nil
}

func (a *API) listSubscriptions(c echo.Context) error {
	conn, err := a.connection(c)
	if err != nil {
		return err
	}
	subs, err := a.cfg.Store.ListSubscriptions(c.Request().Context(), conn.ID)
	if err != nil {
		return fromStore(err, fmt.Sprintf("connection %q", conn.ID))
	}
	out := make([]subscriptionView, 0, len(subs))
	for _, s := range subs {
		out = append(out, viewSubscription(s))
	}
	return c.JSON(http.StatusOK, out)
}

// subscription reads the subscription named by the :id path parameter.
func (a *API) subscription(c echo.Context) (store.Subscription, error) {
	id := c.Param("id")
	if !validID(id) {
		return store.Subscription{}, invalid("id", "must match [A-Za-z0-9_-]{1,128}")
	}
	s, err := a.cfg.Store.GetSubscription(c.Request().Context(), id)
	if err != nil {
		return s, fromStore(err, fmt.Sprintf("subscription %q", id))
	}
	return s, nil
}

func (a *API) getSubscription(c echo.Context) error {
	s, err := a.subscription(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewSubscription(s))
}

func (a *API) deleteSubscription(c echo.Context) error {
	s, err := a.subscription(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := a.cfg.Store.DeleteSubscription(ctx, s.ID); err != nil {
		return fromStore(err, fmt.Sprintf("subscription %q", s.ID))
	}
	a.subscriptionsGone(s)
	a.publishState(ctx, s.CustomerID, "subscription", "deleted", s.ID, viewSubscription(s))
	return c.NoContent(http.StatusNoContent)
}

// resubscribe runs getEventSelector again (credentials or the account may have changed) and
// moves the subscription to the new selector atomically. On failure the subscription keeps
// its old selector.
func (a *API) resubscribe(c echo.Context) error {
	s, err := a.subscription(c)
	if err != nil {
		return err
	}
	if s.GlobalWebhookKey == "" {
		return &Error{Status: http.StatusConflict, Code: codeConflict,
			Message: fmt.Sprintf("subscription %q is a channel subscription: it has no selector to compute", s.ID)}
	}
	ctx := c.Request().Context()
	conn, err := a.cfg.Store.GetConnection(ctx, s.ConnectionID)
	if err != nil {
		return fromStore(err, fmt.Sprintf("connection %q", s.ConnectionID))
	}
	in, cn, err := a.integrationOf(ctx, conn)
	if err != nil {
		return err
	}
	ev, ok := cn.Events[s.EventKey]
	if !ok {
		return &Error{Status: http.StatusConflict, Code: codeConflict,
			Message: fmt.Sprintf("connector %q has no event %q any more", cn.Key, s.EventKey)}
	}
	sel, err := a.selection(ctx, in, cn, conn, ev, s.Parameters)
	if err != nil {
		return err
	}
	s.GlobalWebhookKey = sel.GlobalWebhookKey
	s.Selector = sel.GlobalWebhookEventSelector
	s.Status = statusSubscribed
	s.UpdatedAt = a.now()
	if err := a.cfg.Store.UpdateSubscription(ctx, s); err != nil {
		return fromStore(err, fmt.Sprintf("subscription %q", s.ID))
	}
	v := viewSubscription(s)
	a.publishState(ctx, s.CustomerID, "subscription", "updated", s.ID, v)
	return c.JSON(http.StatusOK, v)
}

// redact replaces every string value found in the secret maps (at any depth) with
// [redacted], so that an error message a script built from its inputs cannot hand a secret
// back to the client or the log. Very short values are left alone: they would mangle the
// message and reveal nothing.
func redact(msg string, secrets ...map[string]any) string {
	var walk func(v any)
	var values []string
	walk = func(v any) {
		switch t := v.(type) {
		case string:
			if len(t) >= 4 {
				values = append(values, t)
			}
		case map[string]any:
			for _, x := range t {
				walk(x)
			}
		case []any:
			for _, x := range t {
				walk(x)
			}
		}
	}
	for _, m := range secrets {
		walk(m)
	}
	// Longest first, so that a secret containing another is replaced whole.
	slices.SortFunc(values, func(a, b string) int { return len(b) - len(a) })
	for _, v := range values {
		msg = strings.ReplaceAll(msg, v, "[redacted]")
	}
	return msg
}
