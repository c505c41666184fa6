package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/channel"
	"github.com/switchboard-run/switchboard/runtime/connector"
	"github.com/switchboard-run/switchboard/runtime/router"
	"github.com/switchboard-run/switchboard/runtime/store"
)

// Channels is what the API needs of the channel runtime; *channel.Manager satisfies it.
type Channels interface {
	// Receive handles one request to /hooks/{channelId}; see channel.Manager.Receive.
	Receive(ctx context.Context, channelID string, header http.Header, body []byte, admit func(store.ChannelRef) error) (channel.Receipt, error)
	// ChannelID returns the id in the URL of a connection's channel, created on first use.
	ChannelID(ctx context.Context, connectionID, channelKey string) (string, error)
	// Changed reports that a connection's channel subscriptions changed (channelKey "":
	// all of the connection's), so that its worker starts or stops.
	Changed(connectionID, channelKey string)
}

// codePayloadRejected: a channel event whose payload fails its schema (422).
const codePayloadRejected = "payload_rejected"

// channelRoutes adds the channel routes when the API has a channel runtime.
func (a *API) channelRoutes() {
	if a.cfg.Channels == nil {
		return
	}
	a.echo.POST("/hooks/:channelId", a.channelIngest)
	a.v1.POST("/apps/:appId/events/subscribe", a.subscribeChannel)
	a.v1.GET("/connections/:id/channels", a.listChannels)
}

type channelSubscribeRequest struct {
	EventUID     string `json:"eventUid"`
	ConnectionID string `json:"connectionId"`
}

// subscribeChannel stores a channel subscription: POST /v1/apps/{appId}/events/subscribe
// {eventUid: "<channel-key>:<event-type>", connectionId}. appId is the integration key; the
// event type may itself hold ':' (the uid is split at the first one). An unknown app is a
// 404; a connection of another app, an unknown channel or event type a 400 naming the field.
func (a *API) subscribeChannel(c echo.Context) error {
	appID := c.Param("appId")
	if err := checkID("appId", appID); err != nil {
		return err
	}
	var req channelSubscribeRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.EventUID == "" {
		return invalid("eventUid", "required")
	}
	channelKey, eventType, ok := strings.Cut(req.EventUID, ":")
	if !ok || channelKey == "" || eventType == "" {
		return invalid("eventUid", "must be <channel-key>:<event-type>")
	}
	if err := checkID("connectionId", req.ConnectionID); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := a.cfg.Store.GetIntegration(ctx, appID); err != nil {
		return fromStore(err, fmt.Sprintf("integration %q", appID))
	}
	conn, err := a.cfg.Store.GetConnection(ctx, req.ConnectionID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return invalid("connectionId", "no connection %q", req.ConnectionID)
		}
		return unavailable("store", err)
	}
	if conn.IntegrationKey != appID {
		// The same answer as for a missing connection: an app's owner learns nothing about
		// other apps' connections.
		return invalid("connectionId", "no connection %q", req.ConnectionID)
	}
	_, cn, err := a.integrationOf(ctx, conn)
	if err != nil {
		return err
	}
	ch, ok := cn.Channels[channelKey]
	if !ok {
		return invalid("eventUid", "connector %q has no channel %q", cn.Key, channelKey)
	}
	if !hasEventType(ch, eventType) {
		return invalid("eventUid", "channel %q of connector %q has no event type %q", channelKey, cn.Key, eventType)
	}
	if _, err := router.ChannelEventSubject(conn.CustomerID, conn.IntegrationKey, channelKey, eventType); err != nil {
		return invalid("eventUid", "event type %q cannot be part of a NATS subject (empty parts, '*', '>' or white space)", eventType)
	}
	now := a.now()
	s := store.Subscription{
		ID:             newID("sub_"),
		ConnectionID:   conn.ID,
		IntegrationKey: conn.IntegrationKey,
		CustomerID:     conn.CustomerID,
		EventKey:       eventType,
		Parameters:     map[string]any{},
		Status:         statusSubscribed,
		ChannelKey:     channelKey,
		EventType:      eventType,
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	if err := a.cfg.Store.CreateSubscription(ctx, s); err != nil {
		return fromStore(err, fmt.Sprintf("connection %q", conn.ID))
	}
	a.cfg.Channels.Changed(conn.ID, channelKey)
	v := viewSubscription(s)
	a.publishState(ctx, s.CustomerID, "subscription", "created", s.ID, v)
	return c.JSON(http.StatusCreated, v)
}

func hasEventType(ch *connector.Channel, eventType string) bool {
	for _, ev := range ch.Events {
		if ev.Type == eventType {
			return true
		}
	}
	return false
}

// subscriptionsGone tells the channel runtime about deleted subscriptions, so that a
// worker whose last subscription went stops.
func (a *API) subscriptionsGone(subs ...store.Subscription) {
	if a.cfg.Channels == nil {
		return
	}
	for _, s := range subs {
		if s.ChannelKey != "" {
			a.cfg.Channels.Changed(s.ConnectionID, s.ChannelKey)
		}
	}
}

type connectionChannelView struct {
	Key  string `json:"key"`
	Kind string `json:"kind"`
	URI  string `json:"uri,omitempty"`
}

// listChannels lists a connection's channels: GET /v1/connections/{id}/channels. Webhook and
// cloudevents channels carry the connection's URI, its id created on first use.
func (a *API) listChannels(c echo.Context) error {
	conn, err := a.connection(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	_, cn, err := a.integrationOf(ctx, conn)
	if err != nil {
		return err
	}
	out := make([]connectionChannelView, 0, len(cn.Channels))
	for _, key := range sortedKeys(cn.Channels) {
		ch := cn.Channels[key]
		v := connectionChannelView{Key: key, Kind: ch.Kind}
		if ch.Kind == connector.ChannelWebhook || ch.Kind == connector.ChannelCloudEvents {
			id, err := a.cfg.Channels.ChannelID(ctx, conn.ID, key)
			if err != nil {
				return fromStore(err, fmt.Sprintf("connection %q", conn.ID))
			}
			v.URI = a.cfg.PublicURL + "/hooks/" + id
		}
		out = append(out, v)
	}
	return c.JSON(http.StatusOK, out)
}

// receiptView is the answer to a channel ingest request.
type receiptView struct {
	Status    string         `json:"status"` // "published", "no_subscribers", "ignored" or "rejected"
	Channel   string         `json:"channel"`
	Events    []receiptEvent `json:"events"`
	Published int            `json:"published"` // messages on the bus, one per (event, subscription)
	Unmatched int            `json:"unmatched"`
	Rejected  []rejection    `json:"rejected,omitempty"`
	Note      string         `json:"note,omitempty"`
}

type receiptEvent struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

type rejection struct {
	Type   string   `json:"type"`
	ID     string   `json:"id,omitempty"`
	Issues []string `json:"issues"`
}

// channelIngest serves POST /hooks/{channelId}, called by external apps without an API
// token. Statuses, in order: a body over MaxBody 413; an unknown id 404; a body that is not
// JSON (webhook) or not CloudEvents (cloudevents) 400; the store or bus unreachable 503
// with Retry-After; every event rejected by its schema 422 (code payload_rejected, nothing
// published: the sender's retry cannot help, but it should see the refusal); otherwise 200
// with a receipt, also when no event definition matched (the sender did nothing wrong:
// "ignored", with a note) or no subscription wanted the event. A 200 is sent only after the
// bus acknowledged every message.
func (a *API) channelIngest(c echo.Context) error {
	r := c.Request()
	if r.ContentLength > a.cfg.MaxBody {
		return &http.MaxBytesError{Limit: a.cfg.MaxBody}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, a.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return invalid("", "reading the request body: %v", err)
	}
	ctx := r.Context()
	// Each channel URL has its own token bucket, as each global webhook URL does; ':' cannot
	// appear in a webhook key, so the two kinds of bucket never share a key.
	admit := func(ref store.ChannelRef) error {
		if ok, wait := a.limits.allow(ref.IntegrationKey, "channel:"+ref.ConnectionID+":"+ref.ChannelKey, a.cfg.Now()); !ok {
			e, secs := rateLimited(wait)
			c.Response().Header().Set("Retry-After", secs)
			return e
		}
		return nil
	}
	rc, err := a.cfg.Channels.Receive(ctx, c.Param("channelId"), r.Header, body, admit)
	var limited *Error
	switch {
	case err == nil:
	case errors.As(err, &limited):
		return limited
	case errors.Is(err, channel.ErrUnknownChannel):
		return notFound("no channel at this URL")
	case errors.Is(err, channel.ErrMalformed):
		return invalid("", "%v", err)
	case errors.Is(err, channel.ErrConnectorMissing):
		// As for global webhooks: the sender keeps its events while an operator fixes the tree.
		return unavailable("channel", err)
	case errors.Is(err, router.ErrInvalidSubjectToken):
		return fmt.Errorf("publishing channel events of integration %q: %w", rc.IntegrationKey, err) // a 500
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return err
	default:
		return unavailable("event bus", err)
	}
	c.Set(ctxIntegration, rc.IntegrationKey)

	v := receiptView{Channel: rc.ChannelKey, Events: []receiptEvent{}, Published: rc.Published, Unmatched: rc.Unmatched}
	for _, ev := range rc.Events {
		v.Events = append(v.Events, receiptEvent{Type: ev.Type, ID: ev.ID})
	}
	for _, re := range rc.Rejected {
		v.Rejected = append(v.Rejected, rejection{Type: re.Type, ID: re.ID, Issues: re.Issues})
	}
	switch {
	case len(rc.Rejected) > 0 && len(rc.Events) == 0 && rc.Unmatched == 0:
		return &Error{Status: http.StatusUnprocessableEntity, Code: codePayloadRejected,
			Message: fmt.Sprintf("payload of event type %q fails its schema: %s", rc.Rejected[0].Type, strings.Join(rc.Rejected[0].Issues, "; "))}
	case len(rc.Events) == 0 && len(rc.Rejected) == 0:
		v.Status = "ignored"
		v.Note = fmt.Sprintf("no event definition of channel %q matched; nothing was published", rc.ChannelKey)
	case rc.Published > 0:
		v.Status = "published"
	case len(rc.Events) > 0:
		v.Status = "no_subscribers"
	default:
		v.Status = "rejected"
	}
	return c.JSON(http.StatusOK, v)
}
