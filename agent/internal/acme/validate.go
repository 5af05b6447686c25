package acme

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"

	"github.com/infrapilot/infrapilot/events"
)

// Limits on a request. The proxy service validates hosts at the edge; the
// agent checks again because a request's host id becomes a directory name
// and its domains go to the CA and into the webroot's file names.
const (
	// MaxDomains is Let's Encrypt's limit of names on one certificate.
	MaxDomains  = 100
	maxHostID   = 64
	maxDomain   = 253
	maxLabel    = 63
	maxEmailLen = 254
)

// validateRequest checks a request and returns it normalised: domains
// lower-cased, trimmed and de-duplicated in order (the first one becomes
// the certificate's common name).
func validateRequest(req events.CertIssueRequest) (events.CertIssueRequest, error) {
	var fields []events.FieldError
	if err := validHostID(req.HostID); err != nil {
		fields = append(fields, events.FieldError{Field: "host_id", Message: err.Error()})
	}
	var domains []string
	switch {
	case len(req.Domains) == 0:
		fields = append(fields, events.FieldError{Field: "domains", Message: "at least one domain is required"})
	case len(req.Domains) > MaxDomains:
		fields = append(fields, events.FieldError{Field: "domains", Message: fmt.Sprintf("at most %d domains fit on one certificate", MaxDomains)})
	default:
		for k, d := range req.Domains {
			d = strings.ToLower(strings.TrimSpace(d))
			if err := validDomain(d); err != nil {
				fields = append(fields, events.FieldError{Field: fmt.Sprintf("domains[%d]", k), Message: err.Error()})
				continue
			}
			if !contains(domains, d) {
				domains = append(domains, d)
			}
		}
	}
	if err := validDirectoryURL(req.DirectoryURL); err != nil {
		fields = append(fields, events.FieldError{Field: "directory_url", Message: err.Error()})
	}
	if req.Email != "" {
		if err := validEmail(req.Email); err != nil {
			fields = append(fields, events.FieldError{Field: "email", Message: err.Error()})
		}
	}
	if len(fields) > 0 {
		return req, events.Invalid("invalid certificate request").WithFields(fields...)
	}
	req.Domains = domains
	return req, nil
}

// validHostID accepts the ids hosts have (lower-case UUIDs) and, more
// loosely, any short token of [a-z0-9-]: it names a directory, so no
// dots, slashes or other path syntax may pass.
func validHostID(id string) error {
	if id == "" {
		return errors.New("required")
	}
	if len(id) > maxHostID {
		return fmt.Errorf("longer than %d characters", maxHostID)
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Errorf("%q is not a host id: only a-z, 0-9 and '-'", id)
		}
	}
	if id[0] == '-' {
		return errors.New("must not start with '-'")
	}
	return nil
}

// validDomain accepts an RFC 1123 host name in ASCII (IDNs arrive as
// punycode from the proxy service), with at least two labels. Wildcards
// are refused: HTTP-01 cannot validate them (RFC 8555 §8.3), only DNS-01.
func validDomain(d string) error {
	switch {
	case d == "":
		return errors.New("empty domain")
	case strings.HasPrefix(d, "*."):
		return fmt.Errorf("%q: a wildcard needs DNS-01 validation; HTTP-01 cannot prove it", d)
	case len(d) > maxDomain:
		return fmt.Errorf("longer than %d characters", maxDomain)
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 && d != "localhost" {
		return fmt.Errorf("%q is not a fully qualified domain name", d)
	}
	for _, l := range labels {
		if l == "" || len(l) > maxLabel {
			return fmt.Errorf("%q: every label must have 1 to %d characters", d, maxLabel)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q: a label must not start or end with '-'", d)
		}
		for _, c := range l {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return fmt.Errorf("%q: only letters, digits, '-' and '.' are allowed", d)
			}
		}
	}
	return nil
}

// validDirectoryURL requires HTTPS: ACME (RFC 8555 §6.1) mandates it, and
// the account key's signatures must not travel in the clear.
func validDirectoryURL(s string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%q: the ACME directory must be an https URL", s)
	}
	if u.Host == "" || u.User != nil {
		return fmt.Errorf("%q: needs a host and no user info", s)
	}
	return nil
}

// validEmail accepts a plain address; it becomes the account's mailto:
// contact.
func validEmail(s string) error {
	if len(s) > maxEmailLen {
		return fmt.Errorf("longer than %d characters", maxEmailLen)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return fmt.Errorf("%q is not a plain e-mail address", s)
	}
	return nil
}
