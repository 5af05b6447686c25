package service

import (
	"context"
	"math"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// Throttle keys: one per account (the e-mail's hash, so unknown addresses
// are throttled too), per client IP, and per user's second factor.
func accountKey(emailKey string) string { return "acct:" + emailKey }
func ipKey(ip string) string            { return "ip:" + ip }
func mfaKey(userID string) string       { return "mfa:" + userID }

// lockedFor returns how long the most locked of keys stays locked (0 when
// none is). The counters live in Postgres, so every replica sees the same.
func (s *Service) lockedFor(ctx context.Context, keys ...string) (time.Duration, error) {
	var until *time.Time
	err := s.db.QueryRow(ctx, `SELECT max(locked_until) FROM login_throttle WHERE key = ANY($1)`, keys).Scan(&until)
	if err != nil || until == nil {
		return 0, err
	}
	return max(until.Sub(s.now()), 0), nil
}

// fail counts a failure for key in one atomic UPSERT: the count restarts
// when the previous failure is older than the window; from limit failures
// on, the key is locked for BaseLockout × 2^(failures − limit), at most
// MaxLockout.
func (s *Service) fail(ctx context.Context, key string, limit int) error {
	t := s.cfg.Throttle
	_, err := s.db.Exec(ctx, `
		WITH p AS (SELECT $2::timestamptz AS now, make_interval(secs => $3::float8) AS win, $4::int AS lim,
			$5::float8 AS base, $6::float8 AS cap)
		INSERT INTO login_throttle AS t (key, failures, last_failure_at, locked_until)
		SELECT $1, 1, p.now, CASE WHEN p.lim <= 1 THEN p.now + make_interval(secs => p.base) END FROM p
		ON CONFLICT (key) DO UPDATE SET
			failures = CASE WHEN t.last_failure_at < EXCLUDED.last_failure_at - (SELECT win FROM p) THEN 1 ELSE t.failures + 1 END,
			last_failure_at = EXCLUDED.last_failure_at,
			locked_until = (SELECT CASE WHEN n.f >= p.lim
					THEN p.now + make_interval(secs => LEAST(p.cap, p.base * power(2, LEAST(30, n.f - p.lim))))
					ELSE t.locked_until END
				FROM p, (SELECT CASE WHEN t.last_failure_at < p.now - p.win THEN 1 ELSE t.failures + 1 END AS f FROM p) n)`,
		key, s.now(), t.Window.Seconds(), limit, t.BaseLockout.Seconds(), t.MaxLockout.Seconds())
	return err
}

// reset forgets the failures of keys after a success.
func (s *Service) reset(ctx context.Context, keys ...string) error {
	_, err := s.db.Exec(ctx, `DELETE FROM login_throttle WHERE key = ANY($1)`, keys)
	return err
}

// rateLimited is the answer while a key is locked, with Retry-After.
func rateLimited(wait time.Duration) error {
	e := events.Errorf(events.CodeRateLimited, "too many failed attempts; try again in %d seconds", retryAfter(wait))
	e.RetryAfter = retryAfter(wait)
	return e
}

func retryAfter(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}
