package authn

import (
	"context"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/infrapilot/infrapilot/events"
)

// accessClaims are the claims of an access token as the auth service signs
// them.
type accessClaims struct {
	jwt.RegisteredClaims
	events.AccessClaims
}

// Validate implements jwt.ClaimsValidator: the subject must be a user id,
// because it travels on as the actor id in NATS headers and events.
func (c *accessClaims) Validate() error {
	if !events.ValidToken(c.Subject) || c.Subject == events.PlatformOrg {
		return errors.New("subject is not a user id")
	}
	return nil
}

// jwtVerifier checks access tokens. Only EdDSA is accepted: "none", HS*
// (including HMAC keyed with a public key), RS*, ES* and the rest fail
// before any key is looked up. The issuer, the audience and an expiry are
// required; exp, nbf and iat are checked with a small leeway against the
// injected clock; base64 must be canonical (no malleable encodings).
type jwtVerifier struct {
	keys   *keySet
	parser *jwt.Parser
}

func newJWTVerifier(keys *keySet, now func() time.Time, leeway time.Duration) jwtVerifier {
	return jwtVerifier{keys: keys, parser: jwt.NewParser(
		jwt.WithValidMethods([]string{events.JWTAlgorithm}),
		jwt.WithIssuer(events.JWTIssuer),
		jwt.WithAudience(events.JWTAudience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithStrictDecoding(),
	)}
}

// userID verifies token and returns its subject. A token that fails any
// check is a rejection; signing keys that cannot be had are an unavailable
// error, so an auth outage answers 503 rather than 401.
func (v jwtVerifier) userID(ctx context.Context, token string) (string, error) {
	var (
		claims accessClaims
		keyErr error
	)
	_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, ok := t.Header["kid"].(string)
		if !ok || kid == "" {
			return nil, errors.New("token has no kid")
		}
		k, err := v.keys.key(ctx, kid)
		if err != nil {
			keyErr = err
			return nil, err
		}
		return k, nil
	})
	var rej *rejection
	if keyErr != nil && !errors.As(keyErr, &rej) {
		return "", keyErr
	}
	if err != nil {
		return "", &rejection{reason: err}
	}
	return claims.Subject, nil
}
