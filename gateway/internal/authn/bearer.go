package authn

import (
	"strings"

	"github.com/infrapilot/infrapilot/events"
)

// APIKeyPrefix starts every API key, so that the gateway can tell a key
// from an access token without asking anyone.
const APIKeyPrefix = "ipk_"

// MaxTokenLength bounds a bearer credential. An access token is a few
// hundred bytes; anything much longer is refused before it is decoded.
const MaxTokenLength = 4096

// Bounds of the part of an API key after its prefix.
const (
	minAPIKeyBody = 16
	maxAPIKeyBody = 256
)

// ParseBearer returns the credential of an Authorization header value of
// the form "Bearer <token>" (RFC 6750 section 2.1: the scheme is matched
// case-insensitively, the token is a non-empty b64token of at most
// MaxTokenLength bytes). Any other value is a rejection, which the
// middleware answers with 401 invalid_token.
func ParseBearer(header string) (string, error) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", rejected("authorization scheme is not Bearer")
	}
	token = strings.TrimLeft(token, " ")
	switch {
	case token == "":
		return "", rejected("empty bearer token")
	case len(token) > MaxTokenLength:
		return "", rejected("bearer token longer than %d bytes", MaxTokenLength)
	case !isB64Token(token):
		return "", rejected("bearer token has characters outside b64token")
	}
	return token, nil
}

// isB64Token reports whether s matches RFC 6750's
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// IsAPIKey reports whether a bearer token is meant as an API key: it starts
// with APIKeyPrefix. Whether it is well formed is checked later.
func IsAPIKey(token string) bool { return strings.HasPrefix(token, APIKeyPrefix) }

// wellFormedAPIKey reports whether key can be an API key at all: the prefix
// and 16 to 256 characters of [A-Za-z0-9_-] (base64url, hex or base32
// bodies all fit). A key failing it is refused without asking the auth
// service.
func wellFormedAPIKey(key string) bool {
	body, ok := strings.CutPrefix(key, APIKeyPrefix)
	if !ok || len(body) < minAPIKeyBody || len(body) > maxAPIKeyBody {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// orgFromHeader returns the org named by the X-Org-ID header values: ""
// when there is none (an empty value counts as none), a 400 invalid error
// when it is named twice or is not a valid id.
func orgFromHeader(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", events.Invalid("%s given more than once", HeaderOrgID).WithFields(
			events.FieldError{Field: HeaderOrgID, Message: "must be given once"})
	}
	org := strings.TrimSpace(values[0])
	if org == "" {
		return "", nil
	}
	if !events.ValidToken(org) || org == events.PlatformOrg {
		return "", events.Invalid("invalid %s header", HeaderOrgID).WithFields(
			events.FieldError{Field: HeaderOrgID, Message: "must be an organisation id"})
	}
	return org, nil
}
