package authn

import (
	"testing"
	"time"
)

// TestTTLCache: entries live for the ttl, a full cache is swept and then
// emptied rather than grown, and a cache with no ttl remembers nothing.
func TestTTLCache(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	c := newTTLCache[int, string](2*time.Second, clock)
	c.put(1, "one")
	if v, ok := c.get(1); !ok || v != "one" {
		t.Fatalf("get = %q, %v", v, ok)
	}
	now = now.Add(2 * time.Second)
	if _, ok := c.get(1); ok {
		t.Fatal("expired entry returned")
	}

	for i := range maxCacheEntries {
		c.put(i, "x")
	}
	now = now.Add(time.Second)
	c.put(-1, "live") // full of live entries: emptied, then stored
	if len(c.m) != 1 {
		t.Fatalf("%d entries after overflow", len(c.m))
	}
	now = now.Add(3 * time.Second)
	for i := range maxCacheEntries - 1 {
		c.put(i, "x")
	}
	now = now.Add(3 * time.Second)
	c.put(-2, "new") // full of expired entries: swept
	if v, ok := c.get(-2); !ok || v != "new" || len(c.m) != 1 {
		t.Fatalf("after sweep: %q %v, %d entries", v, ok, len(c.m))
	}

	off := newTTLCache[int, string](-1, clock)
	off.put(1, "one")
	if _, ok := off.get(1); ok || len(off.m) != 0 {
		t.Fatal("cache with no ttl remembered")
	}
}
