package domain

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Token prefixes. A prefix tells a human (and a secret scanner) what a
// leaked string is.
const (
	InvitationPrefix = "ipi_"
	EnrollmentPrefix = "ipe_"
)

// secretBytes is the entropy of every token: 256 bits, so a token cannot
// be guessed and its SHA-256 cannot be reversed.
const secretBytes = 32

// NewSecret returns a fresh token with prefix and the hex SHA-256 that is
// stored in its place.
func NewSecret(prefix string) (token, hash string) {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	token = prefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashSecret(token)
}

// HashSecret is the stored form of a token: hex SHA-256. A plain hash (no
// salt, no stretching) is right for a 256-bit random value, and it lets the
// token be looked up by its hash.
func HashSecret(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// SecretMatches reports in constant time whether token hashes to hash.
func SecretMatches(token, hash string) bool {
	got := HashSecret(token)
	return subtle.ConstantTimeCompare([]byte(got), []byte(hash)) == 1
}

// PlausibleSecret reports whether token has prefix and the length of a
// token this package made, so that junk is refused before any lookup.
func PlausibleSecret(prefix, token string) bool {
	rest, ok := strings.CutPrefix(token, prefix)
	return ok && len(rest) == base64.RawURLEncoding.EncodedLen(secretBytes)
}
