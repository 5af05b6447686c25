package authn

import (
	"sync"
	"time"
)

// maxCacheEntries bounds each cache. When it is full of live entries the
// cache is emptied: the price is one service call per caller, never memory.
const maxCacheEntries = 10_000

// ttlCache remembers values for a fixed time. A cache with a ttl of zero or
// less remembers nothing.
type ttlCache[K comparable, V any] struct {
	ttl time.Duration
	now func() time.Time

	mu sync.RWMutex
	m  map[K]cacheEntry[V]
}

type cacheEntry[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[K comparable, V any](ttl time.Duration, now func() time.Time) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, now: now, m: map[K]cacheEntry[V]{}}
}

// get returns the live value of k.
func (c *ttlCache[K, V]) get(k K) (V, bool) {
	var zero V
	if c.ttl <= 0 {
		return zero, false
	}
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		return zero, false
	}
	return e.v, true
}

// put remembers v under k for the cache's ttl.
func (c *ttlCache[K, V]) put(k K, v V) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCacheEntries {
		for key, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, key)
			}
		}
		if len(c.m) >= maxCacheEntries {
			clear(c.m)
		}
	}
	c.m[k] = cacheEntry[V]{v: v, expires: now.Add(c.ttl)}
}
