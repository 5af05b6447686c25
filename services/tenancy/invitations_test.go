package tenancy_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/infrapilot/infrapilot/services/tenancy"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/domain"
)

// mailpitEnv returns the SMTP address and HTTP API of the mailpit sink the
// suite mails to (deploy/test/mailpit.sh starts it and prints both). Like
// Postgres, a missing sink fails the test: skipping would pass without
// testing the mail.
func mailpitEnv(t *testing.T) (host string, port int, api string) {
	t.Helper()
	addr, api := os.Getenv("INFRAPILOT_TEST_SMTP_ADDR"), os.Getenv("INFRAPILOT_TEST_MAILPIT_URL")
	if addr == "" || api == "" {
		t.Fatal("INFRAPILOT_TEST_SMTP_ADDR and INFRAPILOT_TEST_MAILPIT_URL are not set and this test needs a real SMTP sink: " +
			"run `eval \"$(deploy/test/mailpit.sh start | sed 's/^/export /')\"` first")
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("INFRAPILOT_TEST_SMTP_ADDR: %v", err)
	}
	port, err = strconv.Atoi(p)
	if err != nil {
		t.Fatalf("INFRAPILOT_TEST_SMTP_ADDR: %v", err)
	}
	return h, port, strings.TrimRight(api, "/")
}

// mailTo waits for the one message mailpit received for to and returns its
// subject and text.
func mailTo(t *testing.T, api, to string) (subject, text string) {
	t.Helper()
	var id string
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		var res struct {
			Messages []struct {
				ID      string
				Subject string
			} `json:"messages"`
		}
		if err := getJSON(api+"/api/v1/search?query="+url.QueryEscape("to:"+to), &res); err != nil {
			return err
		}
		if len(res.Messages) != 1 {
			return fmt.Errorf("%d messages to %s", len(res.Messages), to)
		}
		id, subject = res.Messages[0].ID, res.Messages[0].Subject
		return nil
	})
	var msg struct {
		Text string
		To   []struct{ Address string }
	}
	if err := getJSON(api+"/api/v1/message/"+id, &msg); err != nil {
		t.Fatal(err)
	}
	return subject, msg.Text
}

func getJSON(u string, out any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func TestInvitationMailedAndAccepted(t *testing.T) {
	t.Parallel()
	host, port, api := mailpitEnv(t)
	h := start(t, tenancy.Config{
		SMTP:      tenancy.SMTP{Host: host, Port: port, From: "InfraPilot <noreply@infrapilot.test>", TLS: tenancy.TLSNone},
		PublicURL: "https://app.infrapilot.test/",
	})
	owner := h.signUp("owner@example.com", "Invite Co")
	// Unique per run: mailpit keeps mail across runs.
	email := "invitee-" + domain.RandomHex(6) + "@example.com"

	var inv events.NewInvitation
	h.must(owner, events.OpTenancyCreateInvitation, events.CreateInvitationRequest{Email: strings.ToUpper(email[:1]) + email[1:], Role: events.RoleOperator}, &inv)
	if !inv.EmailSent || !strings.HasPrefix(inv.Token, "ipi_") || inv.Email != email || inv.Status != events.InvitationStatusPending ||
		inv.AcceptURL != "https://app.infrapilot.test/invitations/"+inv.Token {
		t.Fatalf("invitation: %+v", inv)
	}
	if d := time.Until(inv.ExpiresAt); d < 6*24*time.Hour || d > 7*24*time.Hour+time.Minute {
		t.Fatalf("expires in %s, want 7 days", d)
	}

	subject, text := mailTo(t, api, email)
	if !strings.Contains(subject, "Invite Co") || !strings.Contains(text, inv.AcceptURL) || !strings.Contains(text, "operator") {
		t.Fatalf("mail %q:\n%s", subject, text)
	}
	// The token the invitee follows is the one in the mail.
	i := strings.Index(text, "/invitations/")
	token := strings.Fields(text[i+len("/invitations/"):])[0]
	if token != inv.Token {
		t.Fatalf("mailed token %q, returned %q", token, inv.Token)
	}

	// The token is stored only hashed: not in any event, not in the table.
	var stored string
	if err := h.db.QueryRow(t.Context(), `SELECT token_hash FROM invitations WHERE id = $1`, inv.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored == token || stored != domain.HashSecret(token) {
		t.Fatalf("stored %q", stored)
	}

	// The invitee signs up with the address in another case and accepts.
	invitee := h.auth.add(strings.ToUpper(email), "Invitee")
	var org events.OrgSummary
	h.must(who{user: invitee.ID}, events.OpTenancyAcceptInvitation, events.AcceptInvitationRequest{Token: token}, &org)
	if org.ID != owner.org || org.Role != events.RoleOperator || org.Name != "Invite Co" {
		t.Fatalf("accepted: %+v", org)
	}
	var ms events.MembershipReply
	h.must(who{}, events.OpTenancyMembership, events.MembershipRequest{OrgID: owner.org, UserID: invitee.ID}, &ms)
	if ms.Role != events.RoleOperator {
		t.Fatalf("membership: %+v", ms)
	}
	var list events.List[events.Invitation]
	h.must(owner, events.OpTenancyListInvitations, events.ListRequest{}, &list)
	if len(list.Items) != 1 || list.Items[0].Status != events.InvitationStatusAccepted || list.Items[0].AcceptedBy != invitee.ID {
		t.Fatalf("list: %+v", list)
	}

	// Used once, never again: not by the invitee, not by anyone.
	h.fails(who{user: invitee.ID}, events.OpTenancyAcceptInvitation, events.AcceptInvitationRequest{Token: token}, events.CodeConflict, "already been used")
	h.fails(owner, events.OpTenancyRevokeInvitation, events.IDRequest{ID: inv.ID}, events.CodeConflict, "accepted")
}

func TestInvitationRules(t *testing.T) {
	t.Parallel()
	// No SMTP host: nothing is mailed, the returned token is the way in.
	h := start(t, tenancy.Config{})
	owner := h.signUp("owner@example.com", "Rules")
	invite := func(email string, role events.Role) events.NewInvitation {
		t.Helper()
		var inv events.NewInvitation
		h.must(owner, events.OpTenancyCreateInvitation, events.CreateInvitationRequest{Email: email, Role: role}, &inv)
		if inv.EmailSent || inv.AcceptURL != "" || inv.Token == "" {
			t.Fatalf("invitation without SMTP: %+v", inv)
		}
		return inv
	}
	accept := func(u events.UserSummary, token string) *events.Error {
		return h.call(who{user: u.ID}, events.OpTenancyAcceptInvitation, events.AcceptInvitationRequest{Token: token}, nil)
	}

	// Another user's invitation.
	inv := invite("bob@example.com", events.RoleViewer)
	eve := h.auth.add("eve@example.com", "Eve")
	if e := accept(eve, inv.Token); e == nil || e.Code != events.CodeForbidden {
		t.Fatalf("eve accepted bob's invitation: %+v", e)
	}
	// API keys cannot accept; unknown and malformed tokens are not found.
	h.fails(who{user: "k1", kind: events.ActorAPIKey}, events.OpTenancyAcceptInvitation, events.AcceptInvitationRequest{Token: inv.Token}, events.CodeForbidden, "")
	forged, _ := domain.NewSecret(domain.InvitationPrefix)
	for _, tok := range []string{forged, "ipi_short", "", inv.Token + "x"} {
		if e := accept(eve, tok); e == nil || e.Code != events.CodeNotFound {
			t.Fatalf("token %q: %+v", tok, e)
		}
	}

	// Revoked.
	bob := h.auth.add("bob@example.com", "Bob")
	h.must(owner, events.OpTenancyRevokeInvitation, events.IDRequest{ID: inv.ID}, nil)
	h.must(owner, events.OpTenancyRevokeInvitation, events.IDRequest{ID: inv.ID}, nil) // idempotent
	if e := accept(bob, inv.Token); e == nil || e.Code != events.CodeConflict || !strings.Contains(e.Message, "revoked") {
		t.Fatalf("revoked invitation: %+v", e)
	}

	// Expired: the service's clock moves past the 7 days.
	inv = invite("bob@example.com", events.RoleViewer)
	h.clock.Advance(7*24*time.Hour + time.Second)
	if e := accept(bob, inv.Token); e == nil || e.Code != events.CodeConflict || !strings.Contains(e.Message, "expired") {
		t.Fatalf("expired invitation: %+v", e)
	}
	var list events.List[events.Invitation]
	h.must(owner, events.OpTenancyListInvitations, events.ListRequest{}, &list)
	statuses := map[string]int{}
	for _, it := range list.Items {
		statuses[it.Status]++
	}
	if statuses[events.InvitationStatusRevoked] != 1 || statuses[events.InvitationStatusExpired] != 1 {
		t.Fatalf("statuses %v", statuses)
	}

	// Owner invitations are for owners; validation names the fields.
	h.fails(who{org: owner.org, user: "adm", role: events.RoleAdmin}, events.OpTenancyCreateInvitation,
		events.CreateInvitationRequest{Email: "x@example.com", Role: events.RoleOwner}, events.CodeForbidden, "owner")
	e := h.fails(owner, events.OpTenancyCreateInvitation, events.CreateInvitationRequest{Email: "x@", Role: ""}, events.CodeInvalid, "")
	hasField(t, e, "email")
	hasField(t, e, "role")

	// The plan's user limit holds at acceptance (free: 3 users).
	invC, invD := invite("carol@example.com", events.RoleViewer), invite("dan@example.com", events.RoleViewer)
	invB := invite("bob@example.com", events.RoleAdmin)
	if e := accept(bob, invB.Token); e != nil {
		t.Fatal(e)
	}
	if e := accept(h.auth.add("carol@example.com", "Carol"), invC.Token); e != nil {
		t.Fatal(e)
	}
	if e := accept(h.auth.add("dan@example.com", "Dan"), invD.Token); e == nil || e.Code != events.CodeConflict || !strings.Contains(e.Message, "plan") {
		t.Fatalf("over the plan: %+v", e)
	}
}

func TestInvitationMailFailureKeepsTheInvitation(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now: the connection is refused
	h := start(t, tenancy.Config{SMTP: tenancy.SMTP{Host: "127.0.0.1", Port: port, From: "noreply@infrapilot.test", TLS: tenancy.TLSNone}})
	owner := h.signUp("owner@example.com", "Mailless")
	var inv events.NewInvitation
	h.must(owner, events.OpTenancyCreateInvitation, events.CreateInvitationRequest{Email: "x@example.com", Role: events.RoleViewer}, &inv)
	if inv.EmailSent || inv.Token == "" {
		t.Fatalf("%+v", inv)
	}
	x := h.auth.add("x@example.com", "X")
	h.must(who{user: x.ID}, events.OpTenancyAcceptInvitation, events.AcceptInvitationRequest{Token: inv.Token}, nil)
}
