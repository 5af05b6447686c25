package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
)

// CORS answers. Authorization is listed explicitly: a "*" in
// Access-Control-Allow-Headers never covers it.
const (
	corsAllowMethods  = "GET, POST, PUT, PATCH, DELETE"
	corsAllowHeaders  = "Authorization, Content-Type, Idempotency-Key, X-Org-ID, X-Request-Id"
	corsExposeHeaders = "X-Request-Id, Retry-After, WWW-Authenticate"
	corsMaxAge        = "600"
)

// corsPolicy decides which browser origins may call the gateway.
type corsPolicy struct {
	// anyOrigin is the "*" configuration: every origin, never credentials
	// (browsers refuse "*" with credentials, and echoing the origin instead
	// would let any site act with a user's cookies).
	anyOrigin bool
	origins   map[string]bool
}

// newCORS returns nil, meaning CORS off, for an empty list.
func newCORS(origins []string) (*corsPolicy, error) {
	if len(origins) == 0 {
		return nil, nil
	}
	c := &corsPolicy{origins: map[string]bool{}}
	for _, o := range origins {
		if o == "*" {
			if len(origins) > 1 {
				return nil, errors.New(`cors origin "*" cannot be combined with other origins`)
			}
			c.anyOrigin = true
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("cors origin %q must be scheme://host[:port]", o)
		}
		// Browsers send the origin in lower case without a path.
		c.origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	return c, nil
}

func (c *corsPolicy) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if !c.anyOrigin && !c.origins[strings.ToLower(origin)] {
			if preflight {
				httpapi.Error(w, r, &events.Error{Code: events.CodeForbidden, Message: "origin not allowed"})
				return
			}
			// Without CORS headers the browser withholds the answer.
			next.ServeHTTP(w, r)
			return
		}
		if c.anyOrigin {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		next.ServeHTTP(w, r)
	})
}
