package service

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/readmodel"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/domain"
	"github.com/infrapilot/infrapilot/services/tenancy/internal/mail"
)

// createInvitation records an invitation, mails its link when SMTP is
// configured, and answers the token once. A failed mail does not undo the
// invitation: the reply says email_sent false and the inviter can pass the
// link on another way.
func (s *Service) createInvitation(ctx context.Context, req events.CreateInvitationRequest) (events.NewInvitation, error) {
	c, err := inOrg(ctx, events.PermMembersManage)
	if err != nil {
		return events.NewInvitation{}, err
	}
	var p domain.Problems
	email := domain.CleanEmail(&p, "email", req.Email)
	domain.CheckRole(&p, "role", req.Role)
	if err := p.Err(); err != nil {
		return events.NewInvitation{}, err
	}
	if err := domain.MayGrant(c.Role, req.Role); err != nil {
		return events.NewInvitation{}, err
	}
	o, err := s.loadOrg(ctx, c.OrgID)
	if err != nil {
		return events.NewInvitation{}, err
	}
	if !o.Exists() {
		return events.NewInvitation{}, domain.ErrOrgNotFound
	}
	uid, err := uuid.NewV7()
	if err != nil {
		return events.NewInvitation{}, err
	}
	id := uid.String()
	token, hash := domain.NewSecret(domain.InvitationPrefix)
	now := s.now().UTC()
	expires := now.Add(s.cfg.InvitationTTL).Truncate(time.Microsecond)
	v, err := s.appendTo(ctx, c.OrgID, events.TenancyAggInvitation, id, 0,
		events.InvitationCreated{Email: email, Role: req.Role, ExpiresAt: expires, TokenSHA256: hash})
	if err != nil {
		return events.NewInvitation{}, err
	}
	s.await(ctx, events.TenancyAggInvitation, id, v)
	out := events.NewInvitation{
		Invitation: events.Invitation{ID: id, Email: email, Role: req.Role, Status: events.InvitationStatusPending,
			InvitedBy: c.Actor.ID, CreatedAt: now, ExpiresAt: expires},
		Token:     token,
		AcceptURL: s.acceptURL(token),
	}
	if s.mailer != nil {
		err := s.mailer.Send(ctx, invitationMail(o.Name, email, req.Role, out.AcceptURL, token, expires))
		if err != nil {
			s.log.Warn("invitation not mailed", "org_id", c.OrgID, "invitation_id", id, "err", err)
		}
		out.EmailSent = err == nil
	}
	return out, nil
}

// acceptURL is the link an invitee follows, under the configured public
// URL: <public URL>/invitations/<token>. The web app there asks the user
// to sign in and then calls POST /api/v1/invitations/<token>/accept.
func (s *Service) acceptURL(token string) string {
	if s.cfg.PublicURL == "" {
		return ""
	}
	return strings.TrimRight(s.cfg.PublicURL, "/") + "/invitations/" + url.PathEscape(token)
}

func invitationMail(orgName, to string, role events.Role, link, token string, expires time.Time) mail.Message {
	var b strings.Builder
	fmt.Fprintf(&b, "You have been invited to join %s on InfraPilot as %s.\n\n", orgName, role)
	if link != "" {
		fmt.Fprintf(&b, "Accept the invitation here:\n\n  %s\n\n", link)
	} else {
		fmt.Fprintf(&b, "Accept it with this invitation token:\n\n  %s\n\n", token)
	}
	fmt.Fprintf(&b, "Sign in (or sign up) with %s to accept. The invitation expires on %s.\n",
		to, expires.Format("2 January 2006 at 15:04 MST"))
	b.WriteString("If you did not expect this e-mail, you can ignore it.\n")
	return mail.Message{To: to, Subject: "You are invited to " + orgName + " on InfraPilot", Body: b.String()}
}

func (s *Service) listInvitations(ctx context.Context, req events.ListRequest) (events.List[events.Invitation], error) {
	c, err := inOrg(ctx, events.PermMembersManage)
	if err != nil {
		return events.List[events.Invitation]{}, err
	}
	page, err := readmodel.PageOf(req.Limit, req.Cursor)
	if err != nil {
		return events.List[events.Invitation]{}, err
	}
	items, next, err := s.db.ListInvitations(ctx, c.OrgID, s.now(), page)
	return events.List[events.Invitation]{Items: nonNil(items), NextCursor: next}, err
}

func (s *Service) revokeInvitation(ctx context.Context, req events.IDRequest) (events.Empty, error) {
	c, err := inOrg(ctx, events.PermMembersManage)
	if err != nil {
		return events.Empty{}, err
	}
	if !events.ValidToken(req.ID) {
		return events.Empty{}, domain.ErrInvitationNotFound
	}
	var v uint64
	err = eventstore.RetryConflicts(func() error {
		inv, err := s.loadInvitation(ctx, c.OrgID, req.ID)
		if err != nil {
			return err
		}
		ev, err := inv.Revoke()
		if err != nil || ev == nil {
			v = inv.Version
			return err
		}
		v, err = s.appendTo(ctx, c.OrgID, events.TenancyAggInvitation, req.ID, inv.Version, *ev)
		return err
	})
	if err != nil {
		return events.Empty{}, err
	}
	s.await(ctx, events.TenancyAggInvitation, req.ID, v)
	return events.Empty{}, nil
}

// acceptInvitation makes the calling user a member of the inviting org.
// The token is looked up by its hash (it names the org), checked again in
// constant time against the aggregate, and the user's e-mail must be the
// invited one. The membership is appended first, on the org's version, so
// the plan's limit holds under races; the invitation is then marked used.
func (s *Service) acceptInvitation(ctx context.Context, req events.AcceptInvitationRequest) (events.OrgSummary, error) {
	a, err := user(ctx)
	if err != nil {
		return events.OrgSummary{}, err
	}
	if !domain.PlausibleSecret(domain.InvitationPrefix, req.Token) {
		return events.OrgSummary{}, domain.ErrInvitationNotFound
	}
	orgID, id, ok, err := s.db.InvitationByHash(ctx, domain.HashSecret(req.Token))
	if err != nil {
		return events.OrgSummary{}, err
	}
	if !ok {
		return events.OrgSummary{}, domain.ErrInvitationNotFound
	}
	inv, err := s.loadInvitation(ctx, orgID, id)
	if err != nil {
		return events.OrgSummary{}, err
	}
	if !inv.Exists() || !domain.SecretMatches(req.Token, inv.TokenHash) {
		return events.OrgSummary{}, domain.ErrInvitationNotFound
	}
	users, err := s.users(ctx, []string{a.ID})
	if err != nil {
		return events.OrgSummary{}, err
	}
	u, ok := users[a.ID]
	if !ok {
		return events.OrgSummary{}, events.Errorf(events.CodeUnauthorized, "unknown user")
	}
	accepted, err := inv.Accept(s.now(), a.ID, u.Email)
	if err != nil {
		return events.OrgSummary{}, err
	}
	if _, err := s.join(ctx, orgID, "", a.ID, inv.Role, inv.ID); err != nil {
		return events.OrgSummary{}, err
	}
	var v uint64
	err = eventstore.RetryConflicts(func() error {
		inv, err := s.loadInvitation(ctx, orgID, id)
		if err != nil {
			return err
		}
		if inv.Accepted {
			v = inv.Version
			return nil
		}
		v, err = s.appendTo(ctx, orgID, events.TenancyAggInvitation, id, inv.Version, accepted)
		return err
	})
	if err != nil {
		// The user is a member; the invitation merely still looks
		// pending, and accepting it again fails as "already a member".
		s.log.Error("invitation not marked accepted", "org_id", orgID, "invitation_id", id, "err", err)
	} else {
		s.await(ctx, events.TenancyAggInvitation, id, v)
	}
	o, ok, err := s.db.GetOrg(ctx, orgID)
	if err != nil {
		return events.OrgSummary{}, err
	}
	if !ok {
		return events.OrgSummary{}, domain.ErrOrgNotFound
	}
	o.Role = inv.Role
	return o, nil
}
