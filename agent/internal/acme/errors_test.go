package acme

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	legoacme "github.com/go-acme/lego/v4/acme"

	"github.com/infrapilot/infrapilot/events"
)

// TestFailureReason checks the failure messages built from error trees
// shaped like lego's: per-domain maps joined under "one or more domains
// had a problem", problem documents with subproblems, and plain errors.
func TestFailureReason(t *testing.T) {
	conn := &legoacme.ProblemDetails{Type: problemNS + "connection", HTTPStatus: 400,
		Detail: "Get \"http://b.example.com/.well-known/acme-challenge/x\":\n connection refused"}
	unauth := &legoacme.ProblemDetails{Type: problemNS + "unauthorized", HTTPStatus: 403, Detail: "returned 404"}
	limited := &legoacme.ProblemDetails{Type: problemRateLimited, HTTPStatus: 429, Detail: "too many certificates"}
	rejected := &legoacme.ProblemDetails{Type: problemRejectedIdentifier, HTTPStatus: 400, Detail: "policy forbids issuing",
		SubProblems: []legoacme.SubProblem{{Type: problemRejectedIdentifier, Detail: "blocked name",
			Identifier: legoacme.Identifier{Type: "dns", Value: "b.example.com"}}}}
	joined := func(errs ...error) error {
		return fmt.Errorf("error: one or more domains had a problem:\n%w", errors.Join(errs...))
	}
	domains := []string{"a.example.com", "b.example.com"}
	cases := []struct {
		name string
		err  error
		code events.Code
		want string
	}{
		{"per-domain problems", joined(
			fmt.Errorf("b.example.com: %w", fmt.Errorf("invalid authorization: %w", conn)),
			fmt.Errorf("a.example.com: %w", fmt.Errorf("invalid authorization: %w", unauth))),
			events.CodeUnavailable,
			"certificate for a.example.com, b.example.com: the CA refused: " +
				"b.example.com: Get \"http://b.example.com/.well-known/acme-challenge/x\": connection refused [urn:ietf:params:acme:error:connection]; " +
				"a.example.com: returned 404 [urn:ietf:params:acme:error:unauthorized]"},
		{"resolver's per-domain map", resolverError{"b.example.com": fmt.Errorf("invalid authorization: %w", conn)},
			events.CodeUnavailable,
			"certificate for a.example.com, b.example.com: the CA refused: " +
				"b.example.com: Get \"http://b.example.com/.well-known/acme-challenge/x\": connection refused [urn:ietf:params:acme:error:connection]"},
		{"same problem for every domain", joined(fmt.Errorf("b.example.com: %w", limited), fmt.Errorf("a.example.com: %w", limited)),
			events.CodeRateLimited,
			"certificate for a.example.com, b.example.com: the CA refused: a.example.com, b.example.com: too many certificates [urn:ietf:params:acme:error:rateLimited]"},
		{"order refused with subproblems", rejected, events.CodeInvalid,
			"certificate for a.example.com, b.example.com: the CA refused: policy forbids issuing [urn:ietf:params:acme:error:rejectedIdentifier]; " +
				"b.example.com: blocked name [urn:ietf:params:acme:error:rejectedIdentifier]"},
		{"no problem document", fmt.Errorf("get directory at 'https://ca/dir':\n dial tcp: connection refused"), events.CodeUnavailable,
			"certificate for a.example.com, b.example.com: obtain: get directory at 'https://ca/dir': dial tcp: connection refused"},
	}
	iss := &Issuer{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := iss.failure(context.Background(), events.CertIssueRequest{Domains: domains}, "obtain", tc.err)
			if e.Code != tc.code || e.Message != tc.want {
				t.Errorf("got %s %q\nwant %s %q", e.Code, e.Message, tc.code, tc.want)
			}
			if e.Unwrap() == nil {
				t.Error("the cause is not wrapped")
			}
		})
	}
	long := iss.failure(context.Background(), events.CertIssueRequest{Domains: domains}, "obtain",
		&legoacme.ProblemDetails{Type: problemNS + "unauthorized", Detail: strings.Repeat("é", 2000)})
	if len(long.Message) > maxReason || !strings.HasSuffix(long.Message, "...") {
		t.Errorf("a long reason is %d bytes: %q…", len(long.Message), long.Message[:80])
	}
}

// resolverError mimics lego's challenge/resolver obtainError, whose
// unwrapped errors do not name their domain.
type resolverError map[string]error

func (e resolverError) Error() string {
	var b strings.Builder
	b.WriteString("error: one or more domains had a problem:\n")
	for d, err := range e {
		fmt.Fprintf(&b, "[%s] %s\n", d, err)
	}
	return b.String()
}

func (e resolverError) Unwrap() []error {
	var out []error
	for _, err := range e {
		out = append(out, err)
	}
	return out
}
