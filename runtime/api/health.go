package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/switchboard-run/switchboard/runtime/router"
)

// checkTimeout bounds each readiness check.
const checkTimeout = 2 * time.Second

// healthz answers as long as the process serves HTTP.
func (a *API) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// readyz runs every check concurrently: 200 when all pass, else 503 naming which failed.
func (a *API) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), checkTimeout)
	defer cancel()
	out := readiness{Status: "ok", Checks: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ch := range a.cfg.Checks {
		wg.Go(func() {
			result := "ok"
			if err := ch.Ping(ctx); err != nil {
				result = "unavailable: " + err.Error()
			}
			mu.Lock()
			out.Checks[ch.Name] = result
			mu.Unlock()
		})
	}
	wg.Wait()
	status := http.StatusOK
	for name, r := range out.Checks {
		if r != "ok" {
			status = http.StatusServiceUnavailable
			out.Status = "unavailable"
			a.log.Warn("not ready", "check", name, "reason", r)
		}
	}
	if status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", "5")
	}
	return c.JSON(status, out)
}

// systemOrganization is the organizationId of state changes that belong to no customer
// (integrations): events._system.apps.integration.created.{key}. Customer ids that want to
// avoid it simply are not named "_system".
const systemOrganization = "_system"

// stateChangeTimeout bounds the publication of one state change.
const stateChangeTimeout = 5 * time.Second

// publishState publishes a state change (SPEC 4) for a change already stored. It is best
// effort: the change happened whether or not consumers hear of it, so a failure is logged
// and counted, never returned. It outlives the request's cancellation so that a client
// hanging up does not silence it.
func (a *API) publishState(ctx context.Context, organizationID, resource, eventName, id string, payload any) {
	if organizationID == "" {
		organizationID = systemOrganization
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateChangeTimeout)
	defer cancel()
	err := a.cfg.Router.PublishStateChange(ctx, router.StateChange{
		OrganizationID: organizationID,
		Resource:       resource,
		EventName:      eventName,
		ResourceID:     id,
		Payload:        payload,
	})
	if err != nil {
		a.metrics.stateChangeFailures.WithLabelValues(resource, eventName).Inc()
		a.log.Warn("publishing state change", "resource", resource, "event", eventName, "id", id, "error", err)
	}
}
