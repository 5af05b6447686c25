package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
)

type widgetMade struct {
	Name  string `json:"name"`
	Count int    `json:"count,omitempty"`
}

func (widgetMade) EventType() string { return "proxy.widget.made" }
func (widgetMade) EventVersion() int { return 1 }

type widgetMadeV2 struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

func (widgetMadeV2) EventType() string { return "proxy.widget.made" }
func (widgetMadeV2) EventVersion() int { return 2 }

func meta() events.Meta {
	return events.Meta{OrgID: "org1", Actor: events.Actor{Kind: events.ActorUser, ID: "u1"}}
}

func TestNewEnvelopeRoundTrip(t *testing.T) {
	env, err := events.New(widgetMade{Name: "a", Count: 2}, events.Aggregate{Type: "widget", ID: "w1"}, meta())
	if err != nil {
		t.Fatal(err)
	}
	id, err := uuid.Parse(env.ID)
	if err != nil || id.Version() != 7 {
		t.Fatalf("id %q is not a UUIDv7 (%v)", env.ID, err)
	}
	if env.CorrelationID != env.ID {
		t.Errorf("a new causal chain should correlate on its own id, got %q", env.CorrelationID)
	}
	if env.Time.Location().String() != "UTC" {
		t.Errorf("time not UTC: %v", env.Time)
	}
	if err := env.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := events.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Time.Equal(env.Time) || back.ID != env.ID || string(back.Data) != string(env.Data) {
		t.Fatalf("round trip changed the envelope: %+v vs %+v", back, env)
	}
	var wire map[string]any
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "type", "version", "org_id", "aggregate", "actor", "time", "correlation_id", "data"} {
		if _, ok := wire[k]; !ok {
			t.Errorf("wire form lacks %q: %s", k, b)
		}
	}
	if _, ok := wire["Sequence"]; ok {
		t.Errorf("sequence must not be on the wire: %s", b)
	}
}

func TestValidateRejects(t *testing.T) {
	good, err := events.New(widgetMade{Name: "a"}, events.Aggregate{Type: "widget", ID: "w1"}, meta())
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(e *events.Envelope){
		"no id":             func(e *events.Envelope) { e.ID = "" },
		"no type":           func(e *events.Envelope) { e.Type = "" },
		"version 0":         func(e *events.Envelope) { e.Version = 0 },
		"org with dot":      func(e *events.Envelope) { e.OrgID = "a.b" },
		"org wildcard":      func(e *events.Envelope) { e.OrgID = ">" },
		"aggregate spaces":  func(e *events.Envelope) { e.Aggregate.ID = "a b" },
		"no actor":          func(e *events.Envelope) { e.Actor = events.Actor{} },
		"no data":           func(e *events.Envelope) { e.Data = nil },
		"empty aggregate":   func(e *events.Envelope) { e.Aggregate.Type = "" },
		"org too long":      func(e *events.Envelope) { e.OrgID = strings.Repeat("a", 129) },
		"org with asterisk": func(e *events.Envelope) { e.OrgID = "*" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			e := good
			mutate(&e)
			err := e.Validate()
			if events.ErrorCode(err) != events.CodeInvalid {
				t.Fatalf("want invalid, got %v", err)
			}
		})
	}
}

func TestRegistryDecodeKnownUnknownAndVersions(t *testing.T) {
	r := events.NewRegistry()
	if err := r.Register(widgetMade{}, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(widgetMadeV2{}, "v2"); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(widgetMade{}, "again"); err == nil {
		t.Fatal("registering the same type and version twice must fail")
	}

	v1, _ := events.New(widgetMade{Name: "a", Count: 3}, events.Aggregate{Type: "widget", ID: "w"}, meta())
	p, err := r.Decode(v1)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := p.(*widgetMade); !ok || got.Count != 3 {
		t.Fatalf("decoded %T %+v", p, p)
	}
	v2, _ := events.New(widgetMadeV2{Name: "b", Tags: []string{"x"}}, events.Aggregate{Type: "widget", ID: "w"}, meta())
	p, err = r.Decode(v2)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := p.(*widgetMadeV2); !ok || got.Tags[0] != "x" {
		t.Fatalf("decoded %T %+v", p, p)
	}

	// A version nobody registered is kept whole, not an error.
	v9 := v1
	v9.Version = 9
	p, err = r.Decode(v9)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := p.(*events.Unknown)
	if !ok || u.Type != "proxy.widget.made" || u.Version != 9 || string(u.Raw) != string(v1.Data) {
		t.Fatalf("unknown version not kept: %T %+v", p, p)
	}
	// So is a type nobody registered.
	other := v1
	other.Type = "proxy.gizmo.exploded"
	if p, err := r.Decode(other); err != nil {
		t.Fatal(err)
	} else if _, ok := p.(*events.Unknown); !ok {
		t.Fatalf("unknown type decoded as %T", p)
	}

	// Malformed data of a known type is an invalid error.
	bad := v1
	bad.Data = json.RawMessage(`{"name": 5}`)
	if _, err := r.Decode(bad); events.ErrorCode(err) != events.CodeInvalid {
		t.Fatalf("want invalid for malformed data, got %v", err)
	}
}

type orphan struct{}

func (orphan) EventType() string { return "nosuchservice.thing.done" }
func (orphan) EventVersion() int { return 1 }

func TestRegisterRejectsTypesWithoutAStream(t *testing.T) {
	if err := events.NewRegistry().Register(orphan{}, ""); err == nil {
		t.Fatal("a type whose service owns no stream must be refused")
	}
}

func TestUnmarshalRejectsGarbage(t *testing.T) {
	for _, in := range []string{``, `nope`, `{}`, `{"id":"x"}`, `[1,2]`} {
		if _, err := events.Unmarshal([]byte(in)); events.ErrorCode(err) != events.CodeInvalid {
			t.Errorf("%q: want invalid, got %v", in, err)
		}
	}
}

func TestCatalogueTypesBelongToTheirStreams(t *testing.T) {
	entries := events.Catalogue.Entries()
	if len(entries) == 0 {
		t.Fatal("the catalogue is empty")
	}
	for _, e := range entries {
		stream, _ := events.StreamForEventType(e.Type)
		if e.Stream != stream {
			t.Errorf("%s: stream %s, want %s", e.Type, e.Stream, stream)
		}
		subject := events.DomainEvent(strings.SplitN(e.Type, ".", 2)[0], "org", "agg", "id")
		if !subjectMatchesStream(subject, e.Stream) {
			t.Errorf("%s: subject %s is not captured by stream %s", e.Type, subject, e.Stream)
		}
	}
}

func subjectMatchesStream(subject, stream string) bool {
	for _, s := range events.Streams(events.DefaultTopology()) {
		if s.Name != stream {
			continue
		}
		for _, pat := range s.Subjects {
			if matches(pat, subject) {
				return true
			}
		}
	}
	return false
}

// matches implements NATS subject matching for the test.
func matches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

func TestStreamsDoNotOverlap(t *testing.T) {
	samples := []string{
		events.DomainEvent("auth", "o", "user", "u"),
		events.DomainEvent("audit", "o", "config", "c"),
		events.AuditChain("o"), events.AuditCheckpoint("o"),
		events.AgentMetrics("o", "a"), events.AgentLogs("o", "a"), events.AgentEvents("o", "a"),
		events.DeadLetter("auth", "h"),
	}
	for _, subj := range samples {
		n := 0
		for _, s := range events.Streams(events.DefaultTopology()) {
			for _, pat := range s.Subjects {
				if matches(pat, subj) {
					n++
				}
			}
		}
		if n != 1 {
			t.Errorf("%s is captured by %d streams, want exactly 1", subj, n)
		}
	}
	// Commands and replies are request-reply: no stream may capture them.
	for _, subj := range []string{events.AgentCommand("o", "a", "restart"), events.ServiceEndpoint("auth", "login")} {
		for _, s := range events.Streams(events.DefaultTopology()) {
			for _, pat := range s.Subjects {
				if matches(pat, subj) {
					t.Errorf("%s must not be stored, but stream %s captures it", subj, s.Name)
				}
			}
		}
	}
}

func TestAuditStreamIsAppendOnly(t *testing.T) {
	for _, s := range events.Streams(events.DefaultTopology()) {
		if s.Name == events.StreamAudit && (!s.DenyDelete || !s.DenyPurge || s.MaxAge != 0 || s.MaxMsgs > 0 || s.MaxBytes > 0) {
			t.Fatalf("AUDIT must deny delete and purge and never expire: %+v", s)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	cause := errors.New("disk on fire")
	err := fmt.Errorf("saving: %w", events.Errorf(events.CodeConflict, "version moved: %w", cause))
	if events.ErrorCode(err) != events.CodeConflict {
		t.Fatalf("code lost through wrapping: %v", events.ErrorCode(err))
	}
	if !errors.Is(err, cause) {
		t.Fatal("cause not unwrappable")
	}
	if events.ErrorCode(errors.New("plain")) != events.CodeInternal {
		t.Fatal("plain errors are internal")
	}
	if e := events.AsError(errors.New("secret detail")); e.Message != "internal error" {
		t.Fatalf("internal detail leaked: %q", e.Message)
	}
	if events.ErrorCode(nil) != "" {
		t.Fatal("nil has no code")
	}
}

func TestSubjectBuildersAndTokens(t *testing.T) {
	if got := events.DomainEvent("proxy", "o1", "host", "h1"); got != "proxy.evt.o1.host.h1" {
		t.Fatal(got)
	}
	if got := events.AgentCommand("o1", "a1", "restart"); got != "agent.o1.a1.cmd.restart" {
		t.Fatal(got)
	}
	if got := events.AgentDesiredKey("o1", "a1"); got != "o1.a1.nginx" {
		t.Fatal(got)
	}
	for _, ok := range []string{"0195f3b2-7c1a-7d2e-8f00-000000000001", "acme_corp", "A-1"} {
		if !events.ValidToken(ok) {
			t.Errorf("%q should be a valid token", ok)
		}
	}
	for _, bad := range []string{"", "a.b", "*", ">", "a b", "a\tb", "é", "a\n"} {
		if events.ValidToken(bad) {
			t.Errorf("%q must not be a valid token", bad)
		}
	}
}

// The catalogue in docs/ must be exactly what the registry generates.
func TestDocsCatalogueMatchesRegistry(t *testing.T) {
	want := events.Markdown(events.Catalogue)
	got, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("docs/events.md is out of date: run `go run ./events/cmd/eventsdoc > docs/events.md`")
	}
}

func FuzzUnmarshal(f *testing.F) {
	env, _ := events.New(widgetMade{Name: "seed"}, events.Aggregate{Type: "widget", ID: "w"}, meta())
	b, _ := env.Marshal()
	f.Add(b)
	f.Add([]byte(`{"id":"1","type":"x","data":null}`))
	r := events.NewRegistry()
	_ = r.Register(widgetMade{}, "")
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := events.Unmarshal(in)
		if err != nil {
			if events.ErrorCode(err) != events.CodeInvalid {
				t.Fatalf("non-invalid error %v", err)
			}
			return
		}
		if _, err := r.Decode(e); err != nil && events.ErrorCode(err) != events.CodeInvalid {
			t.Fatalf("decode: %v", err)
		}
	})
}
