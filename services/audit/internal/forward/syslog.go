package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/audit/internal/export"
)

// syslogSender writes RFC 5424 messages over TCP or TLS, each framed by
// RFC 5425 octet counting: "<length> <message>", where length is the
// message's size in bytes. It keeps one connection open and dials again
// after any error.
//
// Syslog has no acknowledgements: a write that the kernel accepted may
// still be lost if the receiver dies before reading it. The sender checks
// before each batch that the receiver has not closed the connection, and a
// batch whose write fails is sent again in full on a new connection, which
// narrows the window but cannot close it; receivers dedupe by
// (org_id, index). Where that residual risk matters, use the webhook or
// HEC destinations, which are acknowledged per request.
type syslogSender struct {
	d    Destination
	cfg  Config
	opts export.Options
	conn net.Conn
	buf  []byte
}

func newSyslog(d Destination, cfg Config) *syslogSender {
	return &syslogSender{d: d, cfg: cfg, opts: export.Options{Hostname: d.Hostname, Version: cfg.Version}}
}

func (s *syslogSender) dial(ctx context.Context) (net.Conn, error) {
	nd := dialer(s.cfg)
	if !s.d.TLS {
		return nd.DialContext(ctx, "tcp", s.d.Address)
	}
	host, _, _ := net.SplitHostPort(s.d.Address)
	tc, err := tlsConfig(s.d, host)
	if err != nil {
		return nil, err
	}
	return (&tls.Dialer{NetDialer: nd, Config: tc}).DialContext(ctx, "tcp", s.d.Address)
}

// alive reports whether the receiver still holds the connection open:
// syslog receivers never send, so a read that finds EOF (or an error
// other than the timeout) means the connection is gone.
func alive(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var one [1]byte
	_, err := c.Read(one[:])
	_ = c.SetReadDeadline(time.Time{})
	return err == nil || errors.Is(err, os.ErrDeadlineExceeded)
}

func (s *syslogSender) Send(ctx context.Context, entries []events.AuditEntry) (int, error) {
	s.buf = s.buf[:0]
	for _, e := range entries {
		msg, err := export.AppendSyslog(nil, e, s.opts)
		if err != nil {
			return 0, err
		}
		s.buf = strconv.AppendInt(s.buf, int64(len(msg)), 10)
		s.buf = append(s.buf, ' ')
		s.buf = append(s.buf, msg...)
	}
	if s.conn != nil && !alive(s.conn) {
		s.closeConn()
	}
	if s.conn == nil {
		c, err := s.dial(ctx)
		if err != nil {
			return 0, deliveryError(s.d, "connect: %v", err)
		}
		s.conn = c
	}
	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.conn.SetWriteDeadline(deadline)
	if _, err := s.conn.Write(s.buf); err != nil {
		s.closeConn()
		return 0, deliveryError(s.d, "write: %v", err)
	}
	return len(entries), nil
}

func (s *syslogSender) closeConn() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

func (s *syslogSender) Close() error { s.closeConn(); return nil }

var _ io.Closer = (*syslogSender)(nil)
