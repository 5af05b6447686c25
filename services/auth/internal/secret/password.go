// Package secret holds the auth service's cryptography: argon2id password
// hashes, random tokens and their digests, sealing of secrets at rest, and
// TOTP checks. Every comparison of a secret with a stored value is
// constant-time.
package secret

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters of new password hashes.
// Stored hashes carry their own parameters (PHC string format), so raising
// the cost never breaks existing hashes.
type Argon2Params struct {
	// Time is the number of passes.
	Time uint32
	// MemoryKiB is the memory cost in KiB.
	MemoryKiB uint32
	// Threads is the parallelism.
	Threads uint8
	// SaltLen and KeyLen are in bytes.
	SaltLen uint32
	KeyLen  uint32
}

// DefaultArgon2 follows OWASP's password storage recommendation for
// argon2id (m = 19 MiB, t = 2, p = 1).
func DefaultArgon2() Argon2Params {
	return Argon2Params{Time: 2, MemoryKiB: 19 * 1024, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Validate reports parameters too weak or malformed to use.
func (p Argon2Params) Validate() error {
	switch {
	case p.Time < 1 || p.MemoryKiB < 8*uint32(p.Threads) || p.Threads < 1:
		return fmt.Errorf("argon2: invalid parameters t=%d m=%d p=%d", p.Time, p.MemoryKiB, p.Threads)
	case p.SaltLen < 8 || p.KeyLen < 16:
		return fmt.Errorf("argon2: salt (%d) or key (%d) too short", p.SaltLen, p.KeyLen)
	}
	return nil
}

var b64 = base64.RawStdEncoding

// HashPassword returns the PHC string of password:
// $argon2id$v=19$m=<KiB>,t=<time>,p=<threads>$<salt>$<hash>.
func HashPassword(password string, p Argon2Params) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// ErrMalformedHash is returned for a stored hash that is not an argon2id
// PHC string this package wrote.
var ErrMalformedHash = errors.New("secret: malformed password hash")

// CheckPassword reports whether password matches the PHC string encoded,
// comparing in constant time.
func CheckPassword(password, encoded string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, ErrMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, ErrMalformedHash
	}
	var p Argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return false, ErrMalformedHash
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, ErrMalformedHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, ErrMalformedHash
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
