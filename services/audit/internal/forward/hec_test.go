package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
)

// startHEC starts a Splunk-HEC-compatible endpoint. A real Splunk cannot
// run on this machine (no registry for its image, no package), so the test
// implements the documented contract: POST /services/collector/event,
// "Authorization: Splunk <token>", a body of concatenated JSON event
// objects, and {"text":"Success","code":0} on success or a non-zero code
// (4: invalid token) on refusal.
func startHEC(t *testing.T, token string) (*httptest.Server, *received, *atomic.Int64) {
	got := newReceived()
	batches := &atomic.Int64{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodPost || r.URL.Path != HECPath {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"text":"The requested URL was not found on this server.","code":404}`)
			return
		}
		if r.Header.Get("Authorization") != "Splunk "+token {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"text":"Invalid token","code":4}`)
			return
		}
		dec := json.NewDecoder(r.Body)
		var evs []hecEvent
		for {
			var ev hecEvent
			if err := dec.Decode(&ev); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"text":"Invalid data format","code":6}`)
				return
			}
			evs = append(evs, ev)
		}
		for _, ev := range evs {
			var e events.AuditEntry
			if ev.SourceType != "infrapilot:audit" || ev.Time == 0 || json.Unmarshal(ev.Event, &e) != nil {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"text":"Invalid data format","code":6}`)
				return
			}
			got.add(e)
		}
		batches.Add(1)
		fmt.Fprint(w, `{"text":"Success","code":0}`)
	}))
	t.Cleanup(srv.Close)
	return srv, got, batches
}

func TestSplunkHECForwarding(t *testing.T) {
	t.Parallel()
	js := jetStream(t)
	srv, got, batches := startHEC(t, "hec-token")
	publish(t, js, chain(t, "org_a", 1, 120))
	d := Destination{ID: "splunk", OrgID: "org_a", Kind: KindSplunkHEC, URL: srv.URL + "/", Secret: "hec-token",
		CACertPEM: certPEM(srv), Index: "audit", Hostname: "cp-1", FromStart: true}
	f, err := NewForwarder(js, d, testCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	runForwarder(t, f)
	got.waitAll(t, 1, 120)
	// Batched: 120 entries in a few requests, not 120.
	if n := batches.Load(); n > 10 {
		t.Fatalf("%d requests for 120 entries", n)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if st := f.Status(context.Background()); st.LastIndex != 120 || st.Lag != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})

	d.Secret = "wrong"
	res, err := Test(context.Background(), d, testCfg)
	if err != nil || res.OK || !strings.Contains(res.Error, "Invalid token") {
		t.Fatalf("Test with a bad token = %+v, %v", res, err)
	}
}
