// Package mail sends the tenancy service's e-mail (invitations) over SMTP
// with the standard library's net/smtp: implicit TLS, STARTTLS or plain,
// with optional PLAIN authentication, under a deadline.
package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"strconv"
	"strings"
	"time"
)

// TLS modes.
const (
	// TLSStartTLS upgrades the connection with STARTTLS and refuses to send
	// if the server does not offer it. It is the default.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, usually port 465).
	TLSImplicit = "tls"
	// TLSNone sends in the clear: only for a local relay or a test sink.
	TLSNone = "none"
)

// Config is an SMTP relay. An empty Host disables mail.
type Config struct {
	Host     string
	Port     int
	From     string
	Username string
	Password string
	// TLS is one of TLSStartTLS (default), TLSImplicit, TLSNone.
	TLS string
	// Timeout bounds one message, connection included (default 15s).
	Timeout time.Duration
	// TLSConfig overrides the TLS client configuration (tests).
	TLSConfig *tls.Config
}

// Validate checks a configuration with a host.
func (c *Config) Validate() error {
	if c.Host == "" {
		return nil
	}
	if c.TLS == "" {
		c.TLS = TLSStartTLS
	}
	if c.Timeout == 0 {
		c.Timeout = 15 * time.Second
	}
	switch {
	case c.TLS != TLSStartTLS && c.TLS != TLSImplicit && c.TLS != TLSNone:
		return fmt.Errorf("smtp tls mode %q: want starttls, tls or none", c.TLS)
	case c.Port <= 0 || c.Port > 65535:
		return fmt.Errorf("smtp port %d is not a port", c.Port)
	case c.From == "" || strings.ContainsAny(c.From, "\r\n"):
		return errors.New("smtp from address is required")
	case c.Password != "" && c.Username == "":
		return errors.New("smtp password given without a username")
	}
	return nil
}

// Message is one plain-text e-mail.
type Message struct {
	To      string
	Subject string
	Body    string
}

// Sender sends mail through one relay.
type Sender struct {
	cfg Config
}

// New returns a sender, or nil when cfg has no host (mail disabled).
func New(cfg Config) (*Sender, error) {
	if cfg.Host == "" {
		return nil, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sender{cfg: cfg}, nil
}

// Send delivers m, within ctx's deadline and the configured timeout.
func (s *Sender) Send(ctx context.Context, m Message) error {
	if strings.ContainsAny(m.To, "\r\n<>") || strings.ContainsAny(m.Subject, "\r\n") {
		return errors.New("mail: header injection refused")
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	tlsCfg := s.cfg.TLSConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{ServerName: s.cfg.Host, MinVersion: tls.VersionTLS12}
	}
	var conn net.Conn
	var err error
	if s.cfg.TLS == TLSImplicit {
		d := tls.Dialer{Config: tlsCfg}
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("mail: connect %s: %w", addr, err)
	}
	// net/smtp takes no context: the deadline bounds every exchange, and
	// cancelling ctx closes the connection.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("mail: %s: %w", addr, err)
	}
	defer c.Close()
	if err := s.deliver(c, tlsCfg, m); err != nil {
		return fmt.Errorf("mail: %s: %w", addr, err)
	}
	return nil
}

func (s *Sender) deliver(c *smtp.Client, tlsCfg *tls.Config, m Message) error {
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	if s.cfg.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("the server does not offer STARTTLS (set the TLS mode to none to send in the clear)")
		}
		if err := c.StartTLS(tlsCfg); err != nil {
			return err
		}
	}
	if s.cfg.Username != "" {
		// PlainAuth refuses to send the password over an unencrypted
		// connection to anything but localhost.
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.cfg.Host)); err != nil {
			return err
		}
	}
	if err := c.Mail(address(s.cfg.From)); err != nil {
		return err
	}
	if err := c.Rcpt(m.To); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(compose(s.cfg.From, m)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// address is the bare address of a From that may carry a display name.
func address(from string) string {
	if i := strings.LastIndexByte(from, '<'); i >= 0 {
		return strings.TrimSuffix(from[i+1:], ">")
	}
	return from
}

func compose(from string, m Message) []byte {
	var b strings.Builder
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	domain := address(from)
	domain = domain[strings.LastIndexByte(domain, '@')+1:]
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", from)
	header("To", m.To)
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("Date", time.Now().UTC().Format(time.RFC1123Z))
	header("Message-ID", "<"+hex.EncodeToString(id)+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	body := strings.ReplaceAll(m.Body, "\r\n", "\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return []byte(b.String())
}
