package service

import (
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// membershipCache keeps recent membership answers, because the gateway
// asks for one on every authenticated request. The local projection
// invalidates an org's entries after writing it, and every replica drops
// them when an org event is published (Service.Run), so a change is seen
// at once on the replica that projected it and within the TTL everywhere.
// A generation per org stops a lookup that raced with an invalidation
// from caching what it read before.
type membershipCache struct {
	ttl time.Duration

	mu   sync.Mutex
	orgs map[string]*orgEntries
	size int
}

type orgEntries struct {
	gen   uint64
	users map[string]cached
}

type cached struct {
	role events.Role
	ok   bool
	at   time.Time
}

// maxCached bounds the cache; past it, it starts over.
const maxCached = 50_000

func newMembershipCache(ttl time.Duration) *membershipCache {
	return &membershipCache{ttl: ttl, orgs: map[string]*orgEntries{}}
}

// get returns a fresh cached answer and, either way, the org's generation
// to pass to put.
func (c *membershipCache) get(org, user string, now time.Time) (role events.Role, ok, hit bool, gen uint64) {
	if c.ttl < 0 {
		return "", false, false, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.orgs[org]
	if e == nil {
		return "", false, false, 0
	}
	v, found := e.users[user]
	if !found || now.Sub(v.at) > c.ttl {
		return "", false, false, e.gen
	}
	return v.role, v.ok, true, e.gen
}

// put caches an answer read while the org was at generation gen.
func (c *membershipCache) put(org, user string, role events.Role, ok bool, gen uint64, now time.Time) {
	if c.ttl < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.orgs[org]
	if e == nil {
		if gen != 0 {
			return
		}
		e = &orgEntries{users: map[string]cached{}}
		c.orgs[org] = e
	}
	if e.gen != gen {
		return // invalidated while the answer was being read
	}
	if c.size >= maxCached {
		c.orgs = map[string]*orgEntries{org: {gen: e.gen, users: map[string]cached{}}}
		c.size = 0
		e = c.orgs[org]
	}
	if _, found := e.users[user]; !found {
		c.size++
	}
	e.users[user] = cached{role: role, ok: ok, at: now}
}

// invalidateOrg drops every answer about org.
func (c *membershipCache) invalidateOrg(org string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.orgs[org]
	if e == nil {
		c.orgs[org] = &orgEntries{gen: 1, users: map[string]cached{}}
		return
	}
	c.size -= len(e.users)
	e.gen++
	e.users = map[string]cached{}
}
