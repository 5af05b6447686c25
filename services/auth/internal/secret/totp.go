package secret

import (
	"crypto/subtle"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: RFC 6238 defaults that every authenticator app reads
// (30-second steps, 6 digits, SHA-1), and one step of clock skew either way.
const (
	TOTPPeriod = 30
	TOTPSkew   = 1
	TOTPDigits = otp.DigitsSix
)

// NewTOTP generates a TOTP secret for account and returns the base32 secret
// and the otpauth:// URL authenticator apps import.
func NewTOTP(issuer, account string) (secretB32, url string, err error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: TOTPPeriod,
		Digits: TOTPDigits, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return "", "", err
	}
	return key.Secret(), key.URL(), nil
}

// MatchTOTP checks code against the secret at now, allowing TOTPSkew steps
// either way, and returns the time step (Unix time / period) the code
// belongs to, so the caller can refuse a step already used. Every candidate
// is compared in constant time.
func MatchTOTP(secretB32, code string, now time.Time) (step int64, ok bool) {
	if len(code) != int(TOTPDigits) {
		return 0, false
	}
	cur := now.Unix() / TOTPPeriod
	for d := int64(-TOTPSkew); d <= TOTPSkew; d++ {
		s := cur + d
		want, err := totp.GenerateCodeCustom(secretB32, time.Unix(s*TOTPPeriod, 0), totp.ValidateOpts{
			Period: TOTPPeriod, Digits: TOTPDigits, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			step, ok = s, true
		}
	}
	return step, ok
}
