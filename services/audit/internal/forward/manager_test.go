package forward

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

func TestManagerKeepsOrgsApart(t *testing.T) {
	t.Parallel()
	js := jetStream(t)
	ra, rb := startWebhook(t, "ka", 0), startWebhook(t, "kb", 0)
	m := NewManager(js, testCfg, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// Applied before Run: started by Run. Both orgs name their
	// destination "siem": the consumers must not collide.
	if err := m.Apply(ctx, "org_a", []Destination{ra.dest("org_a", "siem", "ka")}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if err := m.Apply(ctx, "org_b", []Destination{rb.dest("org_b", "siem", "kb")}); err != nil {
		t.Fatal(err)
	}
	publish(t, js, chain(t, "org_a", 1, 20))
	publish(t, js, chain(t, "org_b", 1, 7))
	ra.got.waitAll(t, 1, 20)
	rb.got.waitAll(t, 1, 7)
	if ra.got.hasOrg("org_b") || rb.got.hasOrg("org_a") || ra.got.distinct() != 20 || rb.got.distinct() != 7 {
		t.Fatal("orgs mixed")
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		st := m.Status(ctx, "org_a")
		if len(st) != 1 || st[0].OrgID != "org_a" || st[0].LastIndex != 20 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})

	// A destination from another org, or an invalid one, changes nothing.
	if err := m.Apply(ctx, "org_a", []Destination{rb.dest("org_b", "x", "kb")}); events.ErrorCode(err) != events.CodeInvalid {
		t.Fatalf("foreign destination: %v", err)
	}
	if err := m.Apply(ctx, "org_a", []Destination{{ID: "bad", OrgID: "org_a", Kind: "email"}}); events.ErrorCode(err) != events.CodeInvalid {
		t.Fatalf("invalid destination: %v", err)
	}
	if len(m.Status(ctx, "org_a")) != 1 {
		t.Fatal("a failed Apply changed the destinations")
	}

	// Removing org_a's destination stops it and deletes its consumer;
	// org_b's goes on.
	if err := m.Apply(ctx, "org_a", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Consumer(ctx, events.StreamAudit, ConsumerName("org_a", "siem")); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("consumer of a removed destination: %v", err)
	}
	publish(t, js, chain(t, "org_a", 21, 5))
	publish(t, js, chain(t, "org_b", 8, 5))
	rb.got.waitAll(t, 1, 12)
	if len(m.Status(ctx, "org_a")) != 0 || ra.got.distinct() != 20 {
		t.Fatalf("removed destination still delivers: %d", ra.got.distinct())
	}
}

func TestDestinationValidate(t *testing.T) {
	t.Parallel()
	ok := Destination{ID: "d1", OrgID: "org_a", Kind: KindWebhook, URL: "https://siem.example.com/in", Secret: "k"}
	if err := ok.Validate(Config{}); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Destination){
		"http":           func(d *Destination) { d.URL = "http://siem.example.com/in" },
		"no secret":      func(d *Destination) { d.Secret = "" },
		"credentials":    func(d *Destination) { d.URL = "https://u:p@siem.example.com/" },
		"bad id":         func(d *Destination) { d.ID = "a.b" },
		"bad org":        func(d *Destination) { d.OrgID = "*" },
		"kind":           func(d *Destination) { d.Kind = "smtp" },
		"syslog address": func(d *Destination) { d.Kind, d.Address = KindSyslog, "no-port" },
		"ca":             func(d *Destination) { d.CACertPEM = "not pem" },
	} {
		d := ok
		mutate(&d)
		if err := d.Validate(Config{}); events.ErrorCode(err) != events.CodeInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
	d := ok
	d.URL = "http://siem.example.com/in"
	if err := d.Validate(Config{AllowInsecure: true}); err != nil {
		t.Fatalf("http with AllowInsecure: %v", err)
	}
}

func TestPublicAddresses(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"203.0.114.1": true, "8.8.8.8": true, "2a00:1450::1": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "::1": false,
		"fe80::1": false, "fd00::1": false, "::ffff:127.0.0.1": false, "224.0.0.1": false,
	} {
		if got := public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("public(%s) = %v", addr, got)
		}
	}
}
