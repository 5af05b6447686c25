package audit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/clickhouse"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
)

// health asks the audit service for its health.
func (e *env) health() events.HealthReply {
	e.t.Helper()
	reply, err := e.nc.Request(events.ServiceEndpoint("audit", events.HealthOperation), nil, 10*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	var hr events.HealthReply
	if err := json.Unmarshal(reply.Data, &hr); err != nil {
		e.t.Fatal(err)
	}
	return hr
}

// clickhouseDatabase creates a fresh database on the test ClickHouse
// (dropped when the test ends) and returns its URL. The server is
// required: CI starts one with deploy/test/clickhouse.sh.
func clickhouseDatabase(t *testing.T) string {
	t.Helper()
	base := os.Getenv("INFRAPILOT_TEST_CLICKHOUSE_URL")
	if base == "" {
		t.Fatal("INFRAPILOT_TEST_CLICKHOUSE_URL is not set: export INFRAPILOT_TEST_CLICKHOUSE_URL=$(deploy/test/clickhouse.sh start)")
	}
	opts, err := ch.ParseDSN(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ch.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := "audit_svc_" + hex.EncodeToString(b)
	if err := conn.Exec(context.Background(), "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		_ = conn.Close()
	})
	rest, query, _ := strings.Cut(base, "?")
	i := strings.Index(rest, "://")
	if slash := strings.Index(rest[i+3:], "/"); slash >= 0 {
		rest = rest[:i+3+slash]
	}
	url := rest + "/" + db
	if query != "" {
		url += "?" + query
	}
	return url
}

// TestClickHouseProjectionRunsWhenConfigured: without a URL the
// projection is off, and the health check says so without degrading the
// service; with one, the service projects every org's chain into
// ClickHouse and reports it healthy.
func TestClickHouseProjectionRunsWhenConfigured(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		e := newEnv(t)
		e.startHost(testConfig(), "a1")
		hr := e.health()
		if hr.Status != events.HealthOK || hr.Checks["clickhouse"] != "off (not configured)" || hr.Checks["postgres"] != events.HealthOK {
			t.Fatalf("health %+v", hr)
		}
	})
	t.Run("on", func(t *testing.T) {
		e := newEnv(t)
		url := clickhouseDatabase(t)
		cfg := testConfig()
		cfg.ClickHouseURL = url
		e.startHost(cfg, "a1")
		org := "org-ch"
		for i := range 25 {
			e.publish(event(t, org, "tenancy.org.updated", events.SystemActor("t"), events.Aggregate{Type: "org", ID: org}, i))
		}
		e.waitChained(org, 25, 30*time.Second)
		st, err := clickhouse.Open(context.Background(), clickhouse.Config{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
			n, err := st.MaxIndex(context.Background(), org)
			if err == nil && n < 25 {
				err = fmt.Errorf("ClickHouse has entries up to %d", n)
			}
			return err
		})
		natstest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
			if hr := e.health(); hr.Status != events.HealthOK || hr.Checks["clickhouse"] != events.HealthOK {
				return fmt.Errorf("health %+v", hr)
			}
			return nil
		})
		var c events.AuditConfig
		if err := e.call(org, "admin", events.OpAuditGetConfig, nil, &c); err != nil || c.ClickHouse != "on" {
			t.Fatalf("config %+v %v", c, err)
		}
	})
}
