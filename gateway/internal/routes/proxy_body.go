package routes

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
)

// proxyHostBody is what a client says about a host in POST
// /agents/{id}/proxies and PUT …/proxies/{pid} (API.md). It has no agent
// or host id: those come from the path. Upstream stays raw so that both
// of its forms are checked as strictly as the rest of the body.
type proxyHostBody struct {
	Domains         []string                `json:"domains"`
	Upstream        json.RawMessage         `json:"upstream"`
	Websocket       bool                    `json:"websocket"`
	SSL             events.SSLSpec          `json:"ssl"`
	Enabled         *bool                   `json:"enabled"`
	SecurityHeaders *events.SecurityHeaders `json:"security_headers"`
	RateLimits      []events.RateLimit      `json:"rate_limits"`
}

// upstreamObject is the object form of an upstream. Its fields are those
// of events.Upstream, which it converts to.
type upstreamObject struct {
	URL       string `json:"url"`
	Container string `json:"container"`
	Port      int    `json:"port"`
}

// rateLimitBody is a rate limit as a client writes it: its id is the
// service's choice on create and the path's on update.
type rateLimitBody struct {
	Rate    int    `json:"rate"`
	Per     string `json:"per"`
	Burst   int    `json:"burst"`
	NoDelay bool   `json:"nodelay"`
	Path    string `json:"path"`
}

// proxySettingsBody is the body of PUT /agents/{id}/proxy-settings;
// fields left out keep their values.
type proxySettingsBody struct {
	Mode      *string `json:"mode"`
	ACMEEmail *string `json:"acme_email"`
}

// decodeHost reads a host body into the write request for ref's agent
// and host (no host on create). Whether the values make sense is the
// service's to say (with field errors); here only the body's form is
// checked.
func decodeHost(r *http.Request, ref events.ProxyHostRef) (events.ProxyHostWrite, error) {
	var b proxyHostBody
	if err := httpapi.Decode(r, &b); err != nil {
		return events.ProxyHostWrite{}, err
	}
	up, err := decodeUpstream(b.Upstream)
	if err != nil {
		return events.ProxyHostWrite{}, err
	}
	return events.ProxyHostWrite{AgentID: ref.AgentID, HostID: ref.HostID, Domains: b.Domains, Upstream: up,
		Websocket: b.Websocket, SSL: b.SSL, Enabled: b.Enabled, SecurityHeaders: b.SecurityHeaders, RateLimits: b.RateLimits}, nil
}

// decodeUpstream reads an upstream in either form: a URL string, or an
// object {container, port} (or {url}) with no other fields. A missing or
// null upstream is left empty for the service to refuse as required.
func decodeUpstream(raw json.RawMessage) (events.Upstream, error) {
	raw = bytes.TrimSpace(raw)
	wrongForm := upstreamError("upstream", "must be a URL string or an object {\"container\": \"…\", \"port\": …}")
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return events.Upstream{}, nil
	case raw[0] == '"':
		var u events.Upstream
		if err := json.Unmarshal(raw, &u.URL); err != nil {
			return events.Upstream{}, wrongForm
		}
		return u, nil
	case raw[0] != '{':
		return events.Upstream{}, wrongForm
	}
	var o upstreamObject
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(&o)
	if err == nil {
		return events.Upstream(o), nil
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		want := "a string"
		if typeErr.Type != nil && typeErr.Type.Kind() == reflect.Int {
			want = "an integer"
		}
		return events.Upstream{}, upstreamError("upstream."+typeErr.Field, "must be "+want)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return events.Upstream{}, events.Invalid("unknown field %q", "upstream."+name).WithFields(
			events.FieldError{Field: "upstream." + name, Message: "unknown field"})
	}
	return events.Upstream{}, wrongForm
}

func upstreamError(field, msg string) error {
	return events.Invalid("invalid value for field %q", field).WithFields(events.FieldError{Field: field, Message: msg})
}

// decodeRateLimit reads a rate limit body into the write request for
// ref's host; ref's RateLimitID ("" on create) is its id.
func decodeRateLimit(r *http.Request, ref events.ProxyRateLimitRef) (events.ProxyRateLimitWrite, error) {
	var b rateLimitBody
	if err := httpapi.Decode(r, &b); err != nil {
		return events.ProxyRateLimitWrite{}, err
	}
	return events.ProxyRateLimitWrite{AgentID: ref.AgentID, HostID: ref.HostID, RateLimit: events.RateLimit{
		ID: ref.RateLimitID, Rate: b.Rate, Per: b.Per, Burst: b.Burst, NoDelay: b.NoDelay, Path: b.Path}}, nil
}

// prefersText reports whether r's Accept header ranks text/plain above
// application/json (RFC 9110 section 12.5.1: the most specific matching
// range gives a type its weight). Without Accept, or on a tie, JSON wins.
func prefersText(r *http.Request) bool {
	accept := r.Header.Values("Accept")
	return len(accept) > 0 && acceptWeight(accept, "text", "plain") > acceptWeight(accept, "application", "json")
}

// acceptWeight is the q of typ/sub in the Accept header values: that of
// the most specific range matching it (typ/sub, then typ/*, then */*), 0
// when none does.
func acceptWeight(values []string, typ, sub string) float64 {
	best, specificity := 0.0, -1
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			t, s, _ := strings.Cut(mt, "/")
			spec := -1
			switch {
			case t == typ && s == sub:
				spec = 2
			case t == typ && s == "*":
				spec = 1
			case t == "*" && s == "*":
				spec = 0
			}
			if spec < 0 || spec < specificity {
				continue
			}
			q := 1.0
			if qs, ok := params["q"]; ok {
				f, err := strconv.ParseFloat(qs, 64)
				if err != nil || f < 0 || f > 1 {
					continue
				}
				q = f
			}
			if spec > specificity || q > best {
				best, specificity = q, spec
			}
		}
	}
	return best
}
