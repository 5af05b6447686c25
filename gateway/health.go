package gateway

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natsreq"
	"github.com/nats-io/nats.go"
)

// Readiness check values besides events.HealthOK. They are fixed words on
// purpose: /readyz is public, so no error text (addresses, hostnames) of
// the gateway's own checks goes into it.
const (
	checkNotRunning = "not running"
	checkTimeout    = "timeout"
	checkNoNATS     = "unavailable"
	checkSkipped    = "skipped: nats unavailable"
	checkBadReply   = "invalid reply"
	readyStatusOK   = "ok"
)

// readiness is the /readyz body when the gateway is ready.
type readiness struct {
	Status  string            `json:"status"`
	Version string            `json:"version,omitempty"`
	Checks  map[string]string `json:"checks"`
}

// notReady is the /readyz body when it is not: a problem document (whose
// "status" is the HTTP status, as RFC 9457 wants) with the same checks.
type notReady struct {
	httpapi.Problem
	Version string            `json:"version,omitempty"`
	Checks  map[string]string `json:"checks"`
}

func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	httpapi.JSON(w, r, http.StatusOK, map[string]string{"status": readyStatusOK})
}

// readyz answers 200 when NATS is connected and every required service
// answers its health request with status ok; 503 otherwise, naming the
// failed checks. Sub-checks a service reports ("service:auth/postgres")
// are shown but do not decide: the service's own status already does.
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	checks, failed := g.checkReadiness(r.Context())
	if len(failed) == 0 {
		httpapi.JSON(w, r, http.StatusOK, readiness{Status: readyStatusOK, Version: g.cfg.Version, Checks: checks})
		return
	}
	p := httpapi.ProblemFor(r, &events.Error{Code: events.CodeUnavailable, Message: "not ready: " + strings.Join(failed, ", ")})
	httpapi.WriteProblemWith(w, p.Status, notReady{Problem: p, Version: g.cfg.Version, Checks: checks})
}

// checkReadiness runs the checks, the service ones concurrently, each
// bounded by ReadyTimeout. failed lists the deciding checks that are not
// ok, sorted.
func (g *Gateway) checkReadiness(ctx context.Context) (checks map[string]string, failed []string) {
	checks = map[string]string{"nats": events.HealthOK}
	connected := g.nc.Status() == nats.CONNECTED
	if !connected {
		checks["nats"] = checkNoNATS
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.ReadyTimeout)
	defer cancel()
	results := make([]map[string]string, len(g.cfg.RequiredServices))
	var wg sync.WaitGroup
	for i, name := range g.cfg.RequiredServices {
		if !connected {
			results[i] = map[string]string{"service:" + name: checkSkipped}
			continue
		}
		wg.Go(func() { results[i] = g.checkService(ctx, name) })
	}
	wg.Wait()
	for _, res := range results {
		maps.Copy(checks, res)
	}
	deciding := []string{"nats"}
	for _, name := range g.cfg.RequiredServices {
		deciding = append(deciding, "service:"+name)
	}
	for _, key := range deciding {
		if checks[key] != events.HealthOK {
			failed = append(failed, key)
		}
	}
	slices.Sort(failed)
	return checks, failed
}

// checkService asks one service for its health. The result holds
// "service:<name>" and one "service:<name>/<check>" per check it reports.
func (g *Gateway) checkService(ctx context.Context, name string) map[string]string {
	key := "service:" + name
	reply, err := natsreq.Call[struct{}, events.HealthReply](ctx, g.nc, events.ServiceEndpoint(name, events.HealthOperation), struct{}{})
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return map[string]string{key: checkNotRunning}
	case errors.Is(err, context.DeadlineExceeded):
		return map[string]string{key: checkTimeout}
	case err != nil:
		return map[string]string{key: "error: " + string(events.ErrorCode(err))}
	case reply.Status == "":
		return map[string]string{key: checkBadReply}
	}
	res := map[string]string{key: reply.Status}
	for check, v := range reply.Checks {
		res[key+"/"+check] = v
	}
	return res
}
