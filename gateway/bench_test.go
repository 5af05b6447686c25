package gateway_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkAuthenticatedRequest measures one authenticated read through
// the gateway's whole handler chain (request id, metrics and access log,
// deadline, authentication, org resolution, Require, a route answering the
// principal as JSON) against the identity stand-ins on a real embedded
// NATS server. The handler is called directly, without TCP, so the figure
// is the gateway's own cost. "uncached" turns the membership cache off, so
// every request makes one NATS round trip to the tenancy stand-in.
func BenchmarkAuthenticatedRequest(b *testing.B) {
	cases := []struct {
		name     string
		cfg      gateway.Config
		apiKey   bool
		org      string
		parallel bool
	}{
		{name: "jwt/x-org-id/membership-cached", org: tOrgA},
		{name: "jwt/x-org-id/membership-uncached", cfg: gateway.Config{MembershipCacheTTL: -1}, org: tOrgA},
		{name: "jwt/default-org/uncached", cfg: gateway.Config{MembershipCacheTTL: -1}},
		{name: "jwt/x-org-id/membership-cached/parallel", org: tOrgA, parallel: true},
		{name: "jwt/x-org-id/membership-uncached/parallel", cfg: gateway.Config{MembershipCacheTTL: -1}, org: tOrgA, parallel: true},
		{name: "apikey/cached", apiKey: true},
		{name: "apikey/uncached", cfg: gateway.Config{APIKeyCacheTTL: -1, MembershipCacheTTL: -1}, apiKey: true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			nc := natstest.Connect(b, natstest.Run(b))
			_, iss := identityWorld(b, nc)
			gw, err := gateway.New(c.cfg, gateway.Deps{NC: nc, Log: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
			if err != nil {
				b.Fatal(err)
			}
			gw.API().With(authn.Require(events.PermAgentsRead)).Get("/bench", func(w http.ResponseWriter, r *http.Request) {
				p, _ := reqctx.PrincipalFrom(r.Context())
				httpapi.JSON(w, r, http.StatusOK, p)
			})
			h := gw.Handler()
			req := httptest.NewRequest(http.MethodGet, gateway.APIPrefix+"/bench", nil)
			if c.apiKey {
				req.Header.Set("Authorization", "Bearer "+tAPIKey)
			} else {
				req.Header.Set("Authorization", "Bearer "+iss.Token(b, tAlice, time.Now()))
			}
			if c.org != "" {
				req.Header.Set(authn.HeaderOrgID, c.org)
			}
			once := func() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			once() // loads the signing keys
			b.ReportAllocs()
			b.ResetTimer()
			if c.parallel {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						once()
					}
				})
				return
			}
			for b.Loop() {
				once()
			}
		})
	}
}
