package main

import (
	"net/http"
	"testing"
)

// Benchmarks of the identity hot paths through the real gateway and
// services of `infrapilot dev` (HTTP on loopback, NATS, Postgres):
//
//	go test -run '^$' -bench 'Login|AuthenticatedRead' ./services/cmd/infrapilot/
//
// Login is dominated by argon2id (m=19 MiB, t=2, p=1) on purpose.

func benchDev(b *testing.B) (*apiClient, account) {
	b.Helper()
	c, _ := identityDev(b)
	return c, register(c, "bench@example.com", "Bench Org")
}

func BenchmarkLogin(b *testing.B) {
	c, a := benchDev(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := login(c, a.email, a.password); r.Status != http.StatusOK {
			b.Fatalf("login: %d %s", r.Status, r.Raw)
		}
	}
}

func BenchmarkAuthenticatedRead(b *testing.B) {
	c, a := benchDev(b)
	path := api + "/orgs/" + a.orgID
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := c.call("GET", path, a.access, a.orgID, nil); r.Status != http.StatusOK {
				b.Errorf("read: %d %s", r.Status, r.Raw)
				return
			}
		}
	})
}
