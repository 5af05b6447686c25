package acme

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	legoacme "github.com/go-acme/lego/v4/acme"
	legolog "github.com/go-acme/lego/v4/log"

	"github.com/infrapilot/infrapilot/events"
)

// ACME problem types (RFC 8555 §6.7) the issuer treats specially.
const (
	problemNS                  = "urn:ietf:params:acme:error:"
	problemAccountDoesNotExist = problemNS + "accountDoesNotExist"
	problemRateLimited         = problemNS + "rateLimited"
	problemRejectedIdentifier  = problemNS + "rejectedIdentifier"
	problemUnsupportedIdent    = problemNS + "unsupportedIdentifier"
	problemCAA                 = problemNS + "caa"
)

// maxReason bounds a failure reason: it is stored on the host and shown
// in the UI, and a CA's detail can quote a whole HTTP response.
const maxReason = 1024

// problem is one CA problem document and the domains it was reported for.
type problem struct {
	domains []string
	p       *legoacme.ProblemDetails
}

// failure turns an error of lego into the *events.Error of a failed issue.
// Its message is the host's failure reason, so it names the domains and
// quotes the CA's problem detail and type (for example
// urn:ietf:params:acme:error:connection with pebble's "connection refused"
// detail) rather than lego's multi-line wrapping.
func (i *Issuer) failure(ctx context.Context, req events.CertIssueRequest, stage string, err error) *events.Error {
	names := strings.Join(req.Domains, ", ")
	if ctx.Err() != nil {
		return events.Errorf(events.CodeUnavailable, "certificate for %s: %s: %w", names, ctxReason(ctx), err)
	}
	probs := problems(err, req.Domains)
	if len(probs) == 0 {
		return &events.Error{Code: events.CodeUnavailable, Err: err,
			Message: clip(fmt.Sprintf("certificate for %s: %s: %s", names, stage, oneLine(err.Error())))}
	}
	code := events.CodeUnavailable
	var parts []string
	for _, pr := range probs {
		switch pr.p.Type {
		case problemRateLimited:
			code = events.CodeRateLimited
		case problemRejectedIdentifier, problemUnsupportedIdent, problemCAA:
			if code == events.CodeUnavailable {
				code = events.CodeInvalid
			}
		}
		parts = append(parts, describe(pr))
	}
	return &events.Error{Code: code, Err: err,
		Message: clip(fmt.Sprintf("certificate for %s: the CA refused: %s", names, strings.Join(parts, "; ")))}
}

// describe renders one problem: "<domains>: <detail> [<type>]", then its
// subproblems (RFC 8555 §6.7.1), which carry their own identifiers.
func describe(pr problem) string {
	var b strings.Builder
	if len(pr.domains) > 0 {
		b.WriteString(strings.Join(pr.domains, ", ") + ": ")
	}
	b.WriteString(oneLine(pr.p.Detail))
	if pr.p.Type != "" {
		b.WriteString(" [" + pr.p.Type + "]")
	}
	for _, sub := range pr.p.SubProblems {
		fmt.Fprintf(&b, "; %s: %s [%s]", sub.Identifier.Value, oneLine(sub.Detail), sub.Type)
	}
	return b.String()
}

// problems collects the CA problem documents in err's tree, grouping
// identical ones. lego reports per-domain failures in maps whose error
// text names the domain ("[a.com] …" or "a.com: …") while the unwrapped
// errors do not, so the domain is recovered from the parent's text.
func problems(err error, domains []string) []problem {
	var out []problem
	var walk func(err error, domain string)
	walk = func(err error, domain string) {
		if err == nil {
			return
		}
		if p, ok := err.(*legoacme.ProblemDetails); ok {
			for k := range out {
				if out[k].p.Type == p.Type && out[k].p.Detail == p.Detail {
					if domain != "" && !contains(out[k].domains, domain) {
						out[k].domains = append(out[k].domains, domain)
					}
					return
				}
			}
			pr := problem{p: p}
			if domain != "" {
				pr.domains = []string{domain}
			}
			out = append(out, pr)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			parent := err.Error()
			for _, child := range u.Unwrap() {
				walk(child, domainOf(parent, child, domains, domain))
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap(), domain)
		}
	}
	walk(err, "")
	for k := range out {
		if len(domains) == 1 {
			out[k].domains = domains[:1]
		}
		// lego's per-domain maps iterate in random order.
		slices.SortStableFunc(out[k].domains, func(a, b string) int {
			return slices.Index(domains, a) - slices.Index(domains, b)
		})
	}
	return out
}

func domainOf(parent string, child error, domains []string, def string) string {
	msg := child.Error()
	for _, d := range domains {
		if strings.HasPrefix(msg, d+": ") || strings.Contains(parent, "["+d+"] "+msg) {
			return d
		}
	}
	return def
}

// problemType is the type of the first CA problem in err, or "".
func problemType(err error) string {
	var p *legoacme.ProblemDetails
	if errors.As(err, &p) {
		return p.Type
	}
	return ""
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

// oneLine folds whitespace runs (lego's errors span lines) into spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func clip(s string) string {
	if len(s) <= maxReason {
		return s
	}
	return strings.ToValidUTF8(s[:maxReason-3], "") + "..."
}

// lego logs through a package-level logger (stderr by default). The
// agent's log is structured, so lego's lines are forwarded to the most
// recently configured Issuer's logger at debug level (warnings at warn):
// one agent has one Issuer.
var (
	legoOnce   sync.Once
	legoTarget atomic.Pointer[slog.Logger]
)

func setLegoLogger(l *slog.Logger) {
	legoTarget.Store(l)
	legoOnce.Do(func() { legolog.Logger = legoLogger{} })
}

// legoLogger implements lego's StdLogger on top of slog.
type legoLogger struct{}

func (legoLogger) emit(msg string) {
	l := legoTarget.Load()
	msg = strings.TrimSpace(msg)
	level := slog.LevelDebug
	switch {
	case strings.HasPrefix(msg, "[ERROR] "):
		level, msg = slog.LevelError, strings.TrimPrefix(msg, "[ERROR] ")
	case strings.HasPrefix(msg, "[WARN] "):
		level, msg = slog.LevelWarn, strings.TrimPrefix(msg, "[WARN] ")
	case strings.HasPrefix(msg, "[INFO] "):
		msg = strings.TrimPrefix(msg, "[INFO] ")
	}
	l.Log(context.Background(), level, "lego: "+msg)
}

// Fatal, Fatalf and Fatalln log at error level and do not exit: no
// library may end the agent (lego's non-command code never calls them).
func (g legoLogger) Fatal(args ...any)   { g.emit("[ERROR] " + fmt.Sprint(args...)) }
func (g legoLogger) Fatalln(args ...any) { g.emit("[ERROR] " + fmt.Sprintln(args...)) }
func (g legoLogger) Fatalf(format string, args ...any) {
	g.emit("[ERROR] " + fmt.Sprintf(format, args...))
}
func (g legoLogger) Print(args ...any)                 { g.emit(fmt.Sprint(args...)) }
func (g legoLogger) Println(args ...any)               { g.emit(fmt.Sprintln(args...)) }
func (g legoLogger) Printf(format string, args ...any) { g.emit(fmt.Sprintf(format, args...)) }
