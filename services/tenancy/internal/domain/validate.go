// Package domain holds the tenancy service's aggregates (org, slug claim,
// invitation, enrollment token), their rules and the validation of what
// users type. It does no I/O: the service loads events, asks an aggregate
// to decide, and appends what it decided.
package domain

import (
	"crypto/rand"
	"encoding/hex"
	"net/mail"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/infrapilot/infrapilot/events"
)

// Field limits.
const (
	MaxNameLen       = 100
	MaxEmailLen      = 254
	MaxLabels        = 32
	MaxLabelKeyLen   = 63
	MaxLabelValueLen = 255
	MaxFingerprint   = 256
)

var (
	slugRE     = regexp.MustCompile(`^[a-z0-9-]{3,40}$`)
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_./-]*$`)
)

// Problems collects field errors and turns them into one invalid error.
type Problems []events.FieldError

// Add records a problem with field.
func (p *Problems) Add(field, msg string) {
	*p = append(*p, events.FieldError{Field: field, Message: msg})
}

// Err is nil without problems, else an invalid error listing them.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	names := make([]string, len(p))
	for i, f := range p {
		names[i] = f.Field
	}
	return events.Invalid("invalid %s", strings.Join(names, ", ")).WithFields(p...)
}

// CleanName trims name and checks it is 1–100 characters without control
// characters; it records a problem under field otherwise.
func CleanName(p *Problems, field, name string) string {
	name = strings.TrimSpace(name)
	n := utf8.RuneCountInString(name)
	switch {
	case !utf8.ValidString(name):
		p.Add(field, "must be valid UTF-8")
	case n == 0:
		p.Add(field, "is required")
	case n > MaxNameLen:
		p.Add(field, "must be at most 100 characters")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		p.Add(field, "must not contain control characters")
	}
	return name
}

// ValidSlug reports whether s is a slug: 3–40 of [a-z0-9-].
func ValidSlug(s string) bool { return slugRE.MatchString(s) }

// CheckSlug records a problem under field unless s is a valid slug.
func CheckSlug(p *Problems, field, s string) {
	if !ValidSlug(s) {
		p.Add(field, "must be 3 to 40 characters of a-z, 0-9 and -")
	}
}

// Slugify derives a slug from a name: lower case, every run of other
// characters turned into one '-', cut to 40, padded with random hex when
// shorter than 3.
func Slugify(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 40 {
		s = strings.Trim(s[:40], "-")
	}
	if len(s) < 3 {
		s = strings.Trim(s+"-"+RandomHex(3), "-")
	}
	return s
}

// WithSuffix appends "-" and random hex to slug, keeping it within 40.
func WithSuffix(slug string) string {
	suffix := "-" + RandomHex(3)
	if len(slug)+len(suffix) > 40 {
		slug = strings.Trim(slug[:40-len(suffix)], "-")
	}
	return slug + suffix
}

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// CleanEmail trims and checks an e-mail address (a bare address, at most
// 254 bytes) and returns it lower-cased: addresses are compared without
// regard to case everywhere in InfraPilot.
func CleanEmail(p *Problems, field, email string) string {
	email = strings.TrimSpace(email)
	if email == "" {
		p.Add(field, "is required")
		return ""
	}
	if len(email) > MaxEmailLen {
		p.Add(field, "must be at most 254 characters")
		return email
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") {
		p.Add(field, "must be an e-mail address")
		return email
	}
	return strings.ToLower(email)
}

// CheckRole records a problem under field unless r is a role.
func CheckRole(p *Problems, field string, r events.Role) {
	if !r.Valid() {
		p.Add(field, "must be one of owner, admin, operator, viewer")
	}
}

// CheckID records a problem under field unless id could be an id: a
// non-empty subject token. Ids of other shapes can name nothing.
func CheckID(p *Problems, field, id string) {
	if !events.ValidToken(id) {
		p.Add(field, "is not a valid id")
	}
}

// CheckFingerprint records a problem unless fp is 1–256 printable ASCII
// characters.
func CheckFingerprint(p *Problems, field, fp string) {
	if fp == "" || len(fp) > MaxFingerprint {
		p.Add(field, "must be 1 to 256 characters")
		return
	}
	for i := 0; i < len(fp); i++ {
		if fp[i] <= ' ' || fp[i] > '~' {
			p.Add(field, "must be printable ASCII without spaces")
			return
		}
	}
}

// CheckLabels records problems with an enrollment token's labels: at most
// 32, keys of [A-Za-z0-9_./-] up to 63 characters, values up to 255
// characters without control characters.
func CheckLabels(p *Problems, field string, labels map[string]string) {
	if len(labels) > MaxLabels {
		p.Add(field, "at most 32 labels")
		return
	}
	for k, v := range labels {
		if len(k) > MaxLabelKeyLen || !labelKeyRE.MatchString(k) {
			p.Add(field+"."+k, "label keys are 1 to 63 characters of A-Z, a-z, 0-9, _ . / -")
			continue
		}
		if len(v) > MaxLabelValueLen || !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			p.Add(field+"."+k, "label values are at most 255 characters without control characters")
		}
	}
}
