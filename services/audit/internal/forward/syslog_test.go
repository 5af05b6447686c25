package forward

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
)

func TestSyslogForwarding(t *testing.T) {
	t.Parallel()
	cert, caPEM := selfSigned(t)
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"tcp", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			js := jetStream(t)
			var rcv *syslogReceiver
			if tc.tls {
				rcv = startSyslog(t, &cert)
			} else {
				rcv = startSyslog(t, nil)
			}
			publish(t, js, chain(t, "org_a", 1, 300))
			d := Destination{ID: "sys", OrgID: "org_a", Kind: KindSyslog, Address: rcv.ln.Addr().String(),
				TLS: tc.tls, CACertPEM: caPEM, Hostname: "cp-1", FromStart: true}
			f, err := NewForwarder(js, d, testCfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			runForwarder(t, f)
			rcv.got.waitAll(t, 1, 300)
			// The receiver restarts (drops every connection): the forwarder
			// notices the closed connection and dials again.
			rcv.dropConns()
			publish(t, js, chain(t, "org_a", 301, 100))
			rcv.got.waitAll(t, 1, 400)
			rcv.checkClean()
			natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if st := f.Status(context.Background()); st.LastIndex != 400 || st.Lag != 0 {
					return fmt.Errorf("status %+v", st)
				}
				return nil
			})
		})
	}
}

func TestSyslogTLSChecksTheCertificate(t *testing.T) {
	t.Parallel()
	cert, _ := selfSigned(t)
	_, otherCA := selfSigned(t)
	rcv := startSyslog(t, &cert)
	d := Destination{ID: "sys", OrgID: "org_a", Kind: KindSyslog, Address: rcv.ln.Addr().String(), TLS: true, CACertPEM: otherCA}
	res, err := Test(context.Background(), d, testCfg)
	if err != nil || res.OK || !strings.Contains(res.Error, "certificate") {
		t.Fatalf("Test against an untrusted certificate = %+v, %v", res, err)
	}
}

func TestSyslogUnreachable(t *testing.T) {
	t.Parallel()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	res, err := Test(context.Background(), Destination{ID: "sys", OrgID: "org_a", Kind: KindSyslog, Address: addr}, testCfg)
	if err != nil || res.OK || !strings.Contains(res.Error, "connect") {
		t.Fatalf("Test = %+v, %v", res, err)
	}
}
