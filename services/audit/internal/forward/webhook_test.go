package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
)

func TestSignAndVerify(t *testing.T) {
	t.Parallel()
	secret := []byte("s3cret")
	body := []byte(`{"org_id":"o","index":1}`)
	now := time.Unix(1_800_000_000, 0)
	headers := func(ts int64, sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(HeaderSignature, sig)
		return h
	}
	good := Sign(secret, now.Unix(), body)
	if len(good) != 64 {
		t.Fatalf("signature %q is not hex SHA-256", good)
	}
	for _, tc := range []struct {
		name string
		h    http.Header
		body []byte
		want error
	}{
		{"valid", headers(now.Unix(), good), body, nil},
		{"clock skew within tolerance", headers(now.Unix()-299, Sign(secret, now.Unix()-299, body)), body, nil},
		{"tampered body", headers(now.Unix(), good), []byte(`{"org_id":"o","index":2}`), ErrBadSignature},
		{"other secret", headers(now.Unix(), Sign([]byte("other"), now.Unix(), body)), body, ErrBadSignature},
		{"timestamp swapped under old signature", headers(now.Unix()+1, good), body, ErrBadSignature},
		{"replayed after tolerance", headers(now.Unix()-301, Sign(secret, now.Unix()-301, body)), body, ErrStaleTimestamp},
		{"from the future", headers(now.Unix()+301, Sign(secret, now.Unix()+301, body)), body, ErrStaleTimestamp},
		{"missing", http.Header{}, body, ErrNoSignature},
		{"not hex", headers(now.Unix(), "zz"), body, ErrMalformedHeaders},
		{"bad timestamp", func() http.Header { h := headers(0, good); h.Set(HeaderTimestamp, "x"); return h }(), body, ErrMalformedHeaders},
	} {
		if err := Verify(secret, tc.h, tc.body, now, 0); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// webhookReceiver verifies each request like a customer's receiver would
// and fails the first failFirst requests with a 503.
type webhookReceiver struct {
	srv       *httptest.Server
	got       *received
	secret    []byte
	failFirst int64
	requests  atomic.Int64
	bad       atomic.Int64
	lastBody  atomic.Value
}

func startWebhook(t *testing.T, secret string, failFirst int64) *webhookReceiver {
	r := &webhookReceiver{got: newReceived(), secret: []byte(secret), failFirst: failFirst}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := r.requests.Add(1)
		body, _ := io.ReadAll(req.Body)
		if err := Verify(r.secret, req.Header, body, time.Now(), 0); err != nil {
			r.bad.Add(1)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if n <= r.failFirst {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var e events.AuditEntry
		if err := json.Unmarshal(body, &e); err != nil || req.Header.Get(HeaderDelivery) != fmt.Sprintf("%s:%d", e.OrgID, e.Index) {
			r.bad.Add(1)
			http.Error(w, "bad entry", http.StatusBadRequest)
			return
		}
		r.lastBody.Store(body)
		r.got.add(e)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *webhookReceiver) dest(org, id, secret string) Destination {
	return Destination{ID: id, OrgID: org, Kind: KindWebhook, URL: r.srv.URL + "/hook", Secret: secret, CACertPEM: certPEM(r.srv), FromStart: true}
}

func TestWebhookForwardingRetriesAndResumes(t *testing.T) {
	t.Parallel()
	js := jetStream(t)
	rcv := startWebhook(t, "hook-secret", 3)
	publish(t, js, chain(t, "org_a", 1, 120))
	publish(t, js, chain(t, "org_b", 1, 10)) // another org: never forwarded here
	f, err := NewForwarder(js, rcv.dest("org_a", "hook1", "hook-secret"), testCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runForwarder(t, f)
	rcv.got.waitAll(t, 1, 120)
	st := f.Status(context.Background())
	if st.LastError == "" || !strings.Contains(st.LastError, "HTTP 503") || st.LastErrorAt == nil {
		t.Fatalf("the failures are not in the status: %+v", st)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		st = f.Status(context.Background())
		if st.LastIndex != 120 || st.Lag != 0 || st.Failures != 0 || st.LastSuccess == nil || !st.Running {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	// A restart resumes after the last acknowledged entry.
	stop()
	before := rcv.requests.Load()
	publish(t, js, chain(t, "org_a", 121, 30))
	f2, _ := NewForwarder(js, rcv.dest("org_a", "hook1", "hook-secret"), testCfg, nil)
	runForwarder(t, f2)
	rcv.got.waitAll(t, 1, 150)
	if sent := rcv.requests.Load() - before; sent != 30 {
		t.Fatalf("%d requests after the restart for 30 new entries", sent)
	}
	if rcv.got.hasOrg("org_b") || rcv.bad.Load() != 0 {
		t.Fatalf("org_b forwarded: %v, bad requests %d", rcv.got.hasOrg("org_b"), rcv.bad.Load())
	}
}

func TestWebhookWrongSecretIsRetriedNotDropped(t *testing.T) {
	t.Parallel()
	js := jetStream(t)
	rcv := startWebhook(t, "right", 0)
	publish(t, js, chain(t, "org_a", 1, 5))
	f, _ := NewForwarder(js, rcv.dest("org_a", "hook1", "wrong"), testCfg, nil)
	runForwarder(t, f)
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		st := f.Status(context.Background())
		if st.Failures < 3 || !strings.Contains(st.LastError, "HTTP 401") || st.Lag != 5 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	if rcv.got.distinct() != 0 {
		t.Fatal("an entry was accepted with a wrong signature")
	}
}

func TestNewDestinationStartsAtTheEndUnlessFromStart(t *testing.T) {
	t.Parallel()
	js := jetStream(t)
	rcv := startWebhook(t, "k", 0)
	publish(t, js, chain(t, "org_a", 1, 10))
	d := rcv.dest("org_a", "late", "k")
	d.FromStart = false
	f, _ := NewForwarder(js, d, testCfg, nil)
	runForwarder(t, f)
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := js.Consumer(context.Background(), events.StreamAudit, ConsumerName("org_a", "late"))
		return err
	})
	publish(t, js, chain(t, "org_a", 11, 5))
	rcv.got.waitAll(t, 11, 15)
	if n := rcv.got.distinct(); n != 5 {
		t.Fatalf("%d entries delivered, want only the 5 new ones", n)
	}
}

func TestTestSendsASignedSyntheticEntry(t *testing.T) {
	t.Parallel()
	rcv := startWebhook(t, "k", 0)
	res, err := Test(context.Background(), rcv.dest("org_a", "hook1", "k"), testCfg)
	if err != nil || !res.OK {
		t.Fatalf("Test = %+v, %v", res, err)
	}
	var e events.AuditEntry
	_ = json.Unmarshal(rcv.lastBody.Load().([]byte), &e)
	if e.Action != TestAction || e.OrgID != "org_a" || e.Index != 0 || string(e.Details) != `{"test":true}` {
		t.Fatalf("test entry %+v", e)
	}
	// Refused by the receiver: a result, not an error, and no secret in it.
	res, err = Test(context.Background(), rcv.dest("org_a", "hook1", "wrong-secret"), testCfg)
	if err != nil || res.OK || !strings.Contains(res.Error, "HTTP 401") || strings.Contains(res.Error, "wrong-secret") {
		t.Fatalf("Test = %+v, %v", res, err)
	}
	// An invalid destination is an error with fields.
	if _, err := Test(context.Background(), Destination{ID: "x", OrgID: "org_a", Kind: KindWebhook, URL: "ftp://x"}, testCfg); events.ErrorCode(err) != events.CodeInvalid {
		t.Fatalf("invalid destination: %v", err)
	}
}

func TestPrivateNetworksAreRefusedByDefault(t *testing.T) {
	t.Parallel()
	rcv := startWebhook(t, "k", 0)
	cfg := testCfg
	cfg.AllowPrivateNetworks = false
	res, err := Test(context.Background(), rcv.dest("org_a", "hook1", "k"), cfg)
	if err != nil || res.OK || !strings.Contains(res.Error, "private") {
		t.Fatalf("Test to loopback = %+v, %v", res, err)
	}
	if rcv.requests.Load() != 0 {
		t.Fatal("the request reached the loopback receiver")
	}
}
