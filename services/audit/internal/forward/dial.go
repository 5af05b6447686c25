package forward

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// errForbiddenAddress refuses a destination that resolves to a
// non-public address while Config.AllowPrivateNetworks is off.
var errForbiddenAddress = errors.New("destination resolves to a private, loopback or link-local address")

// dialer returns the dialer every sender uses. The address check runs in
// Control, on the address actually being connected to, after name
// resolution: a DNS name that resolves (or later rebinds) to an internal
// address is refused as well.
func dialer(cfg Config) *net.Dialer {
	d := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivateNetworks {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("forward: unexpected address %q: %w", address, err)
			}
			if !public(ap.Addr()) {
				return errForbiddenAddress
			}
			return nil
		}
	}
	return d
}

// public reports whether a is a globally routable unicast address.
func public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64 (may map to private IPv4)
	netip.MustParsePrefix("2001:db8::/32"), // documentation
}

// tlsConfig trusts the system roots plus the destination's CA.
func tlsConfig(d Destination, host string) (*tls.Config, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if d.CACertPEM != "" && !roots.AppendCertsFromPEM([]byte(d.CACertPEM)) {
		return nil, errors.New("forward: ca_cert_pem holds no certificate")
	}
	name := d.ServerName
	if name == "" {
		name = host
	}
	return &tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12}, nil
}

// dialContext is the DialContext of dialer(cfg).
func dialContext(cfg Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialer(cfg).DialContext
}
