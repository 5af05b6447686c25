package routes_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/natstest"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
	"github.com/infrapilot/infrapilot/gateway/internal/routes"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// auditFiles is a stand-in audit service for the export, report and
// forwarding routes, on a NATS server with JetStream holding real object
// store buckets.
type auditFiles struct {
	srv   *httptest.Server
	mu    sync.Mutex
	reqs  []auditSeen
	file  []byte // the content of org1's finished export
	store jetstream.ObjectStore
}

func (f *auditFiles) last(t *testing.T) auditSeen {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("the audit service was not called")
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *auditFiles) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func jetStreamServer(t *testing.T) *nats.Conn {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	return natstest.Connect(t, s)
}

// exportFor is what the stand-in answers for export id: "done" is org1's
// finished export, "foreign" a reply naming org2's object (which the
// gateway must refuse whatever the service says), "running" an unfinished
// one, "expired" a finished one whose object is gone.
func exportFor(id string) (events.AuditExport, bool) {
	j := events.AuditExport{ID: id, Status: events.AuditExportStatusDone, Format: "jsonl", Bucket: events.AuditBucketExports,
		ContentType: "application/jsonl", FileName: "audit-org1-" + id + ".jsonl", Object: "org1/exports/" + id + ".jsonl"}
	switch id {
	case "done", "expired":
	case "foreign":
		j.Object = "org2/exports/x.jsonl"
	case "outside":
		j.Bucket = "KV_agent_desired"
	case "running":
		j.Status = events.AuditExportStatusRunning
	default:
		return j, false
	}
	return j, true
}

func auditFilesServer(t *testing.T) *auditFiles {
	t.Helper()
	nc := jetStreamServer(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f := &auditFiles{file: make([]byte, 3<<20+17)} // several chunks, far over a NATS message
	_, _ = rand.Read(f.file)
	for _, bucket := range []string{events.AuditBucketExports, events.AuditBucketArchive} {
		st, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket})
		if err != nil {
			t.Fatal(err)
		}
		if bucket == events.AuditBucketExports {
			f.store = st
		}
	}
	if _, err := f.store.Put(ctx, jetstream.ObjectMeta{Name: "org1/exports/done.jsonl"}, bytes.NewReader(f.file)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.PutBytes(ctx, "org2/exports/x.jsonl", []byte("org2's secret entries")); err != nil {
		t.Fatal(err)
	}
	archive, _ := js.ObjectStore(ctx, events.AuditBucketArchive)
	_, _ = archive.PutString(ctx, "org1/reports/r1.json", `{"kind":"soc2"}`)
	_, _ = archive.PutString(ctx, "org1/reports/r1.csv", "report,kind\nreport,soc2\n")

	ops := map[string]micro.HandlerFunc{}
	for _, op := range []string{events.OpAuditExportCreate, events.OpAuditExportList, events.OpAuditExportGet,
		events.OpAuditReportCreate, events.OpAuditReportList, events.OpAuditReportGet, events.OpAuditForwardingTest} {
		ops[op] = func(r micro.Request) {
			var body map[string]any
			_ = json.Unmarshal(r.Data(), &body)
			h := r.Headers()
			f.mu.Lock()
			f.reqs = append(f.reqs, auditSeen{op: op, org: h.Get(events.HeaderOrgID), role: h.Get(events.HeaderRole), body: body})
			f.mu.Unlock()
			id, _ := body["id"].(string)
			switch op {
			case events.OpAuditExportGet:
				j, ok := exportFor(id)
				if !ok {
					e, _ := json.Marshal(events.NotFound("export not found"))
					_ = r.Error(string(events.CodeNotFound), "export not found", e)
					return
				}
				_ = r.RespondJSON(j)
			case events.OpAuditReportGet:
				_ = r.RespondJSON(events.AuditReport{ID: id, Kind: "soc2", Format: "csv", Bucket: events.AuditBucketArchive,
					Objects: map[string]string{"json": "org1/reports/r1.json", "csv": "org1/reports/r1.csv"}})
			default:
				_ = r.RespondJSON(map[string]any{"op": op, "id": "new"})
			}
		}
	}
	natstest.Service(t, nc, "audit", ops)
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if id := req.Header.Get("X-Test-User"); id != "" {
				req = req.WithContext(reqctx.WithPrincipal(req.Context(), reqctx.Principal{
					ID: id, Kind: events.ActorUser, OrgID: req.Header.Get("X-Test-Org"), Role: req.Header.Get("X-Test-Role")}))
			}
			next.ServeHTTP(w, req)
		})
	})
	routes.MountAudit(r, routes.Deps{NC: nc, Log: slog.New(slog.DiscardHandler)})
	f.srv = httptest.NewServer(r)
	t.Cleanup(f.srv.Close)
	return f
}

// fileGet fetches path as org1's admin with an Accept header.
func fileGet(t *testing.T, f *auditFiles, path, accept string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
	req.Header.Set("X-Test-User", "u1")
	req.Header.Set("X-Test-Org", "org1")
	req.Header.Set("X-Test-Role", "admin")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestAuditExportAndReportRoutes(t *testing.T) {
	f := auditFilesServer(t)

	code, body := auditDo(t, f.srv, "admin", "POST", "/audit/exports", `{"format":"cef","from":"2026-11-01T00:00:00Z","to":"2026-12-01T00:00:00Z"}`)
	if got := f.last(t); code != 201 || got.op != events.OpAuditExportCreate || got.org != "org1" || got.body["format"] != "cef" {
		t.Fatalf("create export: %d %s %+v", code, body, got)
	}
	auditDo(t, f.srv, "admin", "GET", "/audit/exports?limit=7&cursor=c1", "")
	if got := f.last(t); got.op != events.OpAuditExportList || got.body["limit"] != float64(7) || got.body["cursor"] != "c1" {
		t.Fatalf("list exports: %+v", got)
	}
	if code, body := auditDo(t, f.srv, "admin", "GET", "/audit/exports/done", ""); code != 200 || !strings.Contains(body, `"status":"done"`) {
		t.Fatalf("get export: %d %s", code, body)
	}
	code, body = auditDo(t, f.srv, "admin", "POST", "/audit/reports", `{"kind":"soc2","from":"2026-11-01T00:00:00Z","to":"2026-12-01T00:00:00Z","format":"csv"}`)
	if got := f.last(t); code != 201 || got.op != events.OpAuditReportCreate || got.body["kind"] != "soc2" {
		t.Fatalf("create report: %d %s %+v", code, body, got)
	}
	auditDo(t, f.srv, "admin", "GET", "/audit/reports", "")
	if got := f.last(t); got.op != events.OpAuditReportList {
		t.Fatalf("list reports: %+v", got)
	}
	code, _ = auditDo(t, f.srv, "admin", "POST", "/audit/forwarding/test", `{"id":"siem1"}`)
	if got := f.last(t); code != 200 || got.op != events.OpAuditForwardingTest || got.body["id"] != "siem1" {
		t.Fatalf("forwarding test: %d %+v", code, got)
	}

	t.Run("download streams the whole file", func(t *testing.T) {
		resp := fileGet(t, f, "/audit/exports/done/download", "")
		got, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, f.file) {
			t.Fatalf("download: %d, %d bytes (want %d), %v", resp.StatusCode, len(got), len(f.file), err)
		}
		if resp.Header.Get("Content-Type") != "application/jsonl" || resp.ContentLength != int64(len(f.file)) ||
			resp.Header.Get("Content-Disposition") != `attachment; filename="audit-org1-done.jsonl"` {
			t.Fatalf("download headers: %v", resp.Header)
		}
	})

	t.Run("reports by format and Accept", func(t *testing.T) {
		for _, c := range []struct{ query, accept, want, ctype string }{
			{"?format=json", "", `{"kind":"soc2"}`, "application/json"},
			{"", "application/json", `{"kind":"soc2"}`, "application/json"},
			{"", "text/csv", "report,kind\nreport,soc2\n", "text/csv; charset=utf-8"},
			{"", "", "report,kind\nreport,soc2\n", "text/csv; charset=utf-8"}, // the report was asked for as CSV
		} {
			resp := fileGet(t, f, "/audit/reports/r1"+c.query, c.accept)
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(got) != c.want || resp.Header.Get("Content-Type") != c.ctype {
				t.Errorf("report %q %q: %d %q %v", c.query, c.accept, resp.StatusCode, got, resp.Header)
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		calls := f.count()
		for _, c := range []struct {
			role, method, path, body string
			want                     int
			field                    string
		}{
			{"", "POST", "/audit/exports", `{}`, 401, ""},
			{"viewer", "POST", "/audit/exports", `{"format":"csv"}`, 403, ""},
			{"operator", "GET", "/audit/exports/done/download", "", 403, ""},
			{"viewer", "GET", "/audit/reports/r1", "", 403, ""},
			{"viewer", "POST", "/audit/forwarding/test", `{"id":"x"}`, 403, ""},
			{"operator", "POST", "/audit/forwarding/test", `{"id":"x"}`, 403, ""},
			{"admin", "POST", "/audit/exports", `{"format":"csv","org_id":"org2"}`, 400, "org_id"},
			{"admin", "POST", "/audit/reports", `{"kind":`, 400, ""},
			{"admin", "GET", "/audit/reports/r1?format=pdf", "", 400, "format"},
			{"admin", "GET", "/audit/exports?limit=0", "", 400, "limit"},
		} {
			code, body := auditDo(t, f.srv, c.role, c.method, c.path, c.body)
			if code != c.want || !strings.Contains(body, c.field) {
				t.Errorf("%s %s as %q: %d %s", c.method, c.path, c.role, code, body)
			}
		}
		if f.count() != calls {
			t.Fatalf("refused requests reached the service: %d calls, want %d", f.count(), calls)
		}
		for _, c := range []struct {
			id   string
			want int
		}{
			{"foreign", 404}, // the service named another org's object: never served
			{"outside", 404}, // nor anything outside the audit buckets
			{"running", 409}, // not done yet
			{"expired", 404}, // the object is gone
			{"nosuch", 404},  // unknown (or another org's) id
		} {
			code, body := auditDo(t, f.srv, "admin", "GET", "/audit/exports/"+c.id+"/download", "")
			if code != c.want || strings.Contains(body, "secret") {
				t.Errorf("download %s: %d %s", c.id, code, body)
			}
		}
	})
}
