package nginxconf

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/infrapilot/infrapilot/events"
)

// RevisionPath is the path the check server answers with the revision of
// the configuration nginx runs (see events.NginxDesired.CheckPort).
const RevisionPath = "/infrapilot-revision"

//go:embed templates/*.tmpl
var templateFS embed.FS

// The templates contain no logic that could produce syntax from data:
// every value they print was checked by Validate or comes from a checked
// Layout, host id or integer.
var (
	hostTmpl = template.Must(template.New("host.conf.tmpl").ParseFS(templateFS, "templates/host.conf.tmpl"))
	mainTmpl = template.Must(template.New("main.conf.tmpl").ParseFS(templateFS, "templates/main.conf.tmpl"))
)

var (
	hostIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	rootRe   = regexp.MustCompile(`^(/[A-Za-z0-9._+-]+)+$`)
)

// CheckLayout reports whether l can be rendered: Root an absolute, clean
// path of characters inert in nginx syntax ([A-Za-z0-9._+-] and '/'),
// Kind local or container, and three distinct ports 1–65535. A Layout
// comes from what an agent reports, so it is checked like user input.
func CheckLayout(l Layout) error {
	switch {
	case !rootOK(l.Root):
		return events.Invalid("nginx root %q must be a clean absolute path of [A-Za-z0-9._+-/]", l.Root)
	case !kindOK(l.Kind):
		return events.Invalid("nginx kind %q must be %q or %q", l.Kind, events.NginxKindLocal, events.NginxKindContainer)
	case !portsOK(l):
		return events.Invalid("nginx ports must be distinct and 1-65535 (http %d, https %d, check %d)", l.HTTPPort, l.HTTPSPort, l.CheckPort)
	}
	return nil
}

func rootOK(r string) bool { return len(r) <= 1024 && rootRe.MatchString(r) && path.Clean(r) == r }

func kindOK(k string) bool { return k == events.NginxKindLocal || k == events.NginxKindContainer }

func portsOK(l Layout) bool {
	ports := []int{l.HTTPPort, l.HTTPSPort, l.CheckPort}
	for i, p := range ports {
		if p < 1 || p > 65535 {
			return false
		}
		for _, q := range ports[:i] {
			if p == q {
				return false
			}
		}
	}
	return true
}

// CertPaths returns where a host's certificate chain and key are stored,
// as nginx sees them: Root/certs/<id>/fullchain.pem and privkey.pem. The
// agent stores certificates there; RenderHost refers to them.
func CertPaths(l Layout, hostID string) (fullchain, privkey string) {
	dir := l.Root + "/certs/" + hostID
	return dir + "/fullchain.pem", dir + "/privkey.pem"
}

// ZoneName is the limit_req zone of a host's rate limit. Host ids and
// rate-limit ids never contain '_', so names are unique per agent.
func ZoneName(hostID, rateLimitID string) string { return "rl_" + hostID + "_" + rateLimitID }

type (
	hostView struct {
		ID, ServerNames, ACMERoot string
		HTTPPort                  int
		Zones                     []zoneView
		RedirectTo                string
		HTTP                      serverBody
		TLS                       *tlsView
	}
	zoneView struct{ Name, Rate string }
	tlsView  struct {
		Listen, Cert, Key string
		Body              serverBody
	}
	serverBody struct {
		Websocket, UpstreamTLS bool
		Headers                []headerView
		Locations              []locationView
	}
	headerView   struct{ Name, Value string }
	locationView struct {
		Path, Pass string
		Limits     []limitView
	}
	limitView struct {
		Zone    string
		Burst   int
		NoDelay bool
	}
)

// RenderHost renders one host's file (HostFile(h.ID)), whether or not the
// host is enabled (GET …/config shows it either way). It refuses an
// invalid layout, host id or spec (Validate), so only checked values
// reach the template. The TLS server is rendered only when h.CertReady and
// SSL.Enabled; Requires then lists the certificate files (CertPaths).
func RenderHost(l Layout, h Host) (events.NginxFile, error) {
	if err := CheckLayout(l); err != nil {
		return events.NginxFile{}, err
	}
	if !hostIDRe.MatchString(h.ID) {
		return events.NginxFile{}, events.Invalid("host id %q must be [a-z0-9-], at most 64 characters", h.ID)
	}
	if err := Validate(h.Spec); err != nil {
		return events.NginxFile{}, err
	}
	v, err := hostViewOf(l, h)
	if err != nil {
		return events.NginxFile{}, err
	}
	var b bytes.Buffer
	if err := hostTmpl.Execute(&b, v); err != nil {
		return events.NginxFile{}, fmt.Errorf("nginxconf: render host %s: %w", h.ID, err)
	}
	f := events.NginxFile{Path: HostFile(h.ID), Content: b.String(), HostID: h.ID}
	if v.TLS != nil {
		f.Requires = []string{v.TLS.Cert, v.TLS.Key}
	}
	return f, nil
}

func hostViewOf(l Layout, h Host) (hostView, error) {
	s := h.Spec
	pass, upstreamTLS, err := upstreamBase(s.Upstream)
	if err != nil {
		return hostView{}, err
	}
	v := hostView{
		ID:          h.ID,
		ServerNames: strings.Join(s.Domains, " "),
		ACMERoot:    l.Root + "/acme",
		HTTPPort:    l.HTTPPort,
	}
	for _, rl := range s.RateLimits {
		unit := "r/s"
		if rl.Per == "minute" {
			unit = "r/m"
		}
		v.Zones = append(v.Zones, zoneView{Name: ZoneName(h.ID, rl.ID), Rate: strconv.Itoa(rl.Rate) + unit})
	}
	body := serverBody{Websocket: s.Websocket, UpstreamTLS: upstreamTLS, Locations: locations(h.ID, s.RateLimits, pass)}
	v.HTTP = body
	v.HTTP.Headers = securityHeaders(s.SecurityHeaders)
	if !h.CertReady || !s.SSL.Enabled {
		return v, nil
	}
	if s.SSL.Force {
		v.RedirectTo = "https://$host$request_uri"
		if l.HTTPSPort != 443 {
			v.RedirectTo = "https://$host:" + strconv.Itoa(l.HTTPSPort) + "$request_uri"
		}
	}
	cert, key := CertPaths(l, h.ID)
	t := &tlsView{Listen: strconv.Itoa(l.HTTPSPort) + " ssl", Cert: cert, Key: key, Body: body}
	if s.SSL.HTTP2 {
		// nginx 1.22 has no "http2 on;": HTTP/2 is a listen parameter
		// (and applies to every server on that address).
		t.Listen += " http2"
	}
	if s.SSL.HSTS {
		t.Body.Headers = append(t.Body.Headers, headerView{Name: "Strict-Transport-Security", Value: hstsValue(s.SecurityHeaders)})
	}
	t.Body.Headers = append(t.Body.Headers, securityHeaders(s.SecurityHeaders)...)
	v.TLS = t
	return v, nil
}

// upstreamBase returns the proxy_pass URL for location "/" split into a
// function of the location path, and whether the upstream speaks TLS.
func upstreamBase(u events.Upstream) (func(loc string) string, bool, error) {
	if u.URL == "" {
		base := "http://" + u.Container + ":" + strconv.Itoa(u.Port)
		return func(string) string { return base }, false, nil
	}
	pu, msg := parseUpstreamURL(u.URL)
	if msg != "" {
		return nil, false, errors.New("nginxconf: upstream url: " + msg)
	}
	base, prefix := pu.base(), strings.TrimSuffix(pu.Path, "/")
	if prefix == "" {
		// No URI part: nginx passes the client's request URI unchanged.
		return func(string) string { return base }, pu.Scheme == "https", nil
	}
	// With a URI part, nginx replaces the matched location prefix by it;
	// appending the location keeps /api/x → <path>/api/x for every
	// location, like / → <path>/.
	return func(loc string) string { return base + prefix + loc }, pu.Scheme == "https", nil
}

// locations returns "/" and one location per distinct rate-limit path,
// "/" first, then sorted. A location gets every limit whose path is a
// prefix of its own (nginx does not inherit limit_req into a location that
// has its own), so a "/" limit applies to all requests.
func locations(hostID string, rls []events.RateLimit, pass func(string) string) []locationView {
	paths := []string{"/"}
	seen := map[string]bool{"/": true}
	for _, rl := range rls {
		if !seen[rl.Path] {
			seen[rl.Path] = true
			paths = append(paths, rl.Path)
		}
	}
	sort.Strings(paths[1:])
	out := make([]locationView, 0, len(paths))
	for _, p := range paths {
		loc := locationView{Path: p, Pass: pass(p)}
		for _, rl := range rls {
			if strings.HasPrefix(p, rl.Path) {
				loc.Limits = append(loc.Limits, limitView{Zone: ZoneName(hostID, rl.ID), Burst: rl.Burst, NoDelay: rl.NoDelay})
			}
		}
		out = append(out, loc)
	}
	return out
}

// securityHeaders lists the response headers a host adds on every server.
func securityHeaders(h events.SecurityHeaders) []headerView {
	var out []headerView
	if h.FrameOptions != "" {
		out = append(out, headerView{"X-Frame-Options", h.FrameOptions})
	}
	if h.NoSniff {
		out = append(out, headerView{"X-Content-Type-Options", "nosniff"})
	}
	if h.XSSProtection {
		out = append(out, headerView{"X-XSS-Protection", "1; mode=block"})
	}
	if h.CSP != "" {
		out = append(out, headerView{"Content-Security-Policy", h.CSP})
	}
	return out
}

func hstsValue(h events.SecurityHeaders) string {
	age := h.HSTSMaxAge
	if age == 0 {
		age = DefaultHSTSMaxAge
	}
	v := "max-age=" + strconv.Itoa(age)
	if h.HSTSSubdomains {
		v += "; includeSubDomains"
	}
	return v
}

type mainView struct {
	Root, CheckListen, RevisionPath string
	HTTPPort                        int
	Revision                        uint64
}

// RenderMain renders nginx.conf of a generation: pid/logs/temp paths under
// Root, the websocket upgrade map, the check server answering the
// revision on RevisionPath (on 127.0.0.1 for a local nginx), the default
// server on HTTPPort that serves the ACME webroot and answers 404
// otherwise, and `include hosts/*.conf;` (relative: nginx resolves it
// against the directory of the -c file, the generation directory). It
// cannot fail, so a Layout that CheckLayout refuses is rendered with the
// defaults of LayoutFor in place of its bad fields; Desired refuses such
// a layout instead.
func RenderMain(l Layout, revision uint64) events.NginxFile {
	l = safeLayout(l)
	listen := strconv.Itoa(l.CheckPort)
	if l.Kind == events.NginxKindLocal {
		listen = "127.0.0.1:" + listen
	}
	var b bytes.Buffer
	v := mainView{Root: l.Root, CheckListen: listen, RevisionPath: RevisionPath, HTTPPort: l.HTTPPort, Revision: revision}
	// Execute cannot fail: a bytes.Buffer does not fail writes and the
	// template only prints fields of mainView (TestRenderMainGolden).
	_ = mainTmpl.Execute(&b, v)
	return events.NginxFile{Path: "nginx.conf", Content: b.String()}
}

// safeLayout replaces what CheckLayout refuses by the defaults.
func safeLayout(l Layout) Layout {
	d := LayoutFor(nil)
	if !rootOK(l.Root) {
		l.Root = d.Root
	}
	if !kindOK(l.Kind) {
		l.Kind = d.Kind
	}
	if !portsOK(l) {
		l.HTTPPort, l.HTTPSPort, l.CheckPort = d.HTTPPort, d.HTTPSPort, d.CheckPort
	}
	return l
}

// Desired renders an agent's complete desired state: nginx.conf plus one
// file per enabled host, sorted by path, with CheckPort from the layout.
// In events.ProxyModeExternal it carries no files (InfraPilot leaves nginx
// alone); mode "" means managed. An invalid layout, mode, duplicate host
// id or host is an invalid error naming the host.
func Desired(l Layout, revision uint64, mode string, hosts []Host) (events.NginxDesired, error) {
	d := events.NginxDesired{V: 1, Revision: revision, Mode: mode, Files: []events.NginxFile{}}
	switch mode {
	case events.ProxyModeExternal:
		return d, nil
	case "", events.ProxyModeManaged:
		d.Mode = events.ProxyModeManaged
	default:
		return events.NginxDesired{}, events.Invalid("proxy mode %q must be %q or %q", mode, events.ProxyModeManaged, events.ProxyModeExternal)
	}
	if err := CheckLayout(l); err != nil {
		return events.NginxDesired{}, err
	}
	d.CheckPort = l.CheckPort
	d.Files = append(d.Files, RenderMain(l, revision))
	ids := map[string]bool{}
	for _, h := range hosts {
		if ids[h.ID] {
			return events.NginxDesired{}, events.Invalid("host %s appears twice", h.ID)
		}
		ids[h.ID] = true
		if !h.Spec.Enabled {
			continue
		}
		f, err := RenderHost(l, h)
		if err != nil {
			e := events.AsError(err)
			return events.NginxDesired{}, (&events.Error{Code: e.Code, Message: "host " + h.ID + ": " + e.Message, Err: err}).WithFields(e.Fields...)
		}
		d.Files = append(d.Files, f)
	}
	sort.Slice(d.Files, func(i, j int) bool { return d.Files[i].Path < d.Files[j].Path })
	return d, nil
}
