package routes

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natsreq"
	"github.com/infrapilot/infrapilot/gateway/internal/reqctx"
)

// MountTenancy registers API.md's "Organisations and users" routes.
//
// Every route under /orgs/{org} acts in the request's org (X-Org-ID, else
// the caller's default org, membership checked by the auth middleware):
// {org} must name that same org, and any other value answers 404 before
// the role is even looked at, so a caller learns nothing about orgs that
// are not the one they act in. The org id never comes from a body. GET and
// POST /orgs and accepting an invitation need a signed-in user but no org.
func MountTenancy(api chi.Router, d Deps) {
	t := tenancy{d: d}
	api.With(authn.RequireUser).Get("/orgs", t.listOrgs)
	api.With(authn.RequireUser).Post("/orgs", t.createOrg)
	api.With(authn.RequireUser).Post("/invitations/{token}/accept", t.acceptInvitation)

	api.Route("/orgs/{org}", func(r chi.Router) {
		r.Use(sameOrg)
		need := func(p events.Permission) chi.Router { return r.With(authn.Require(p)) }
		need(events.PermOrgRead).Get("/", t.getOrg)
		need(events.PermOrgUpdate).Patch("/", t.updateOrg)
		need(events.PermOrgDelete).Delete("/", t.deleteOrg)
		need(events.PermOrgRead).Get("/usage", t.usage)

		need(events.PermMembersRead).Get("/members", t.list(events.OpTenancyListMembers))
		need(events.PermMembersManage).Post("/members", t.addMember)
		need(events.PermMembersManage).Patch("/members/{user}", t.updateRole(events.OpTenancyUpdateMember, "user"))
		need(events.PermMembersManage).Delete("/members/{user}", t.removeUser(events.OpTenancyRemoveMember, "user"))

		need(events.PermMembersManage).Get("/invitations", t.list(events.OpTenancyListInvitations))
		need(events.PermMembersManage).Post("/invitations", t.createInvitation)
		need(events.PermMembersManage).Delete("/invitations/{id}", t.byID(events.OpTenancyRevokeInvitation, http.StatusNoContent))

		need(events.PermEnrollmentRead).Get("/enrollment-tokens", t.list(events.OpTenancyListEnrollmentTokens))
		need(events.PermEnrollManage).Post("/enrollment-tokens", t.createEnrollmentToken)
		need(events.PermEnrollManage).Post("/enrollment-tokens/{id}/revoke", t.revokeEnrollmentToken)
		need(events.PermEnrollManage).Delete("/enrollment-tokens/{id}", t.byID(events.OpTenancyDeleteEnrollmentToken, http.StatusNoContent))
	})

	api.With(authn.Require(events.PermMembersManage)).Get("/users", t.list(events.OpTenancyListUsers))
	api.With(authn.Require(events.PermMembersManage)).Post("/users", t.createUser)
	api.With(authn.Require(events.PermMembersManage)).Patch("/users/{id}", t.updateRole(events.OpTenancyUpdateUser, "id"))
	api.With(authn.Require(events.PermMembersManage)).Delete("/users/{id}", t.removeUser(events.OpTenancyDeleteUser, "id"))
}

// sameOrg answers 404 when {org} is not the org the request acts in. An
// anonymous request passes on, for the permission middleware to answer 401.
func sameOrg(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := reqctx.PrincipalFrom(r.Context()); ok && p.ID != "" && chi.URLParam(r, "org") != p.OrgID {
			httpapi.Error(w, r, events.NotFound("organisation not found"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type tenancy struct{ d Deps }

func (t tenancy) subject(op string) string { return events.ServiceEndpoint("tenancy", op) }

// answer calls op with req and writes the reply with status, or the error.
func answer[Req, Resp any](t tenancy, w http.ResponseWriter, r *http.Request, op string, req Req, status int) {
	resp, err := natsreq.Call[Req, Resp](r.Context(), t.d.NC, t.subject(op), req)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, r, status, resp)
}

// decode reads the body into a Req and calls op with it.
func decodeAnswer[Req, Resp any](t tenancy, w http.ResponseWriter, r *http.Request, op string, status int) {
	var req Req
	if err := httpapi.Decode(r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	answer[Req, Resp](t, w, r, op, req, status)
}

// listRequest reads ?limit= and ?cursor=.
func listRequest(r *http.Request) (events.ListRequest, error) {
	q := r.URL.Query()
	req := events.ListRequest{Cursor: q.Get("cursor")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > events.MaxListLimit {
			return req, events.Invalid("invalid limit").WithFields(events.FieldError{
				Field: "limit", Message: "must be an integer from 1 to " + strconv.Itoa(events.MaxListLimit)})
		}
		req.Limit = n
	}
	return req, nil
}

// list answers a list operation; its reply passes through unchanged.
func (t tenancy) list(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := listRequest(r)
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		answer[events.ListRequest, events.RawJSON](t, w, r, op, req, http.StatusOK)
	}
}

func (t tenancy) listOrgs(w http.ResponseWriter, r *http.Request) {
	t.list(events.OpTenancyListOrgs)(w, r)
}

// createOrgBody is what a user may say about a new org: the owner is the
// caller and the plan is the default one.
type createOrgBody struct {
	Name string `json:"name"`
	Slug string `json:"slug,omitempty"`
}

func (t tenancy) createOrg(w http.ResponseWriter, r *http.Request) {
	var body createOrgBody
	if err := httpapi.Decode(r, &body); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	p, _ := reqctx.PrincipalFrom(r.Context())
	req := events.CreateOrgRequest{Name: body.Name, Slug: body.Slug, OwnerUserID: p.ID}
	answer[events.CreateOrgRequest, events.OrgSummary](t, w, r, events.OpTenancyCreateOrg, req, http.StatusCreated)
}

func (t tenancy) getOrg(w http.ResponseWriter, r *http.Request) {
	answer[events.Empty, events.OrgSummary](t, w, r, events.OpTenancyGetOrg, events.Empty{}, http.StatusOK)
}

func (t tenancy) updateOrg(w http.ResponseWriter, r *http.Request) {
	decodeAnswer[events.UpdateOrgRequest, events.OrgSummary](t, w, r, events.OpTenancyUpdateOrg, http.StatusOK)
}

func (t tenancy) deleteOrg(w http.ResponseWriter, r *http.Request) {
	answer[events.Empty, events.Empty](t, w, r, events.OpTenancyDeleteOrg, events.Empty{}, http.StatusNoContent)
}

func (t tenancy) usage(w http.ResponseWriter, r *http.Request) {
	answer[events.Empty, events.Usage](t, w, r, events.OpTenancyUsage, events.Empty{}, http.StatusOK)
}

func (t tenancy) addMember(w http.ResponseWriter, r *http.Request) {
	decodeAnswer[events.AddMemberRequest, events.Member](t, w, r, events.OpTenancyAddMember, http.StatusCreated)
}

// roleBody is the body of PATCH …/members/{user} and PATCH /users/{id}.
type roleBody struct {
	Role events.Role `json:"role"`
}

func (t tenancy) updateRole(op, param string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body roleBody
		if err := httpapi.Decode(r, &body); err != nil {
			httpapi.Error(w, r, err)
			return
		}
		req := events.UpdateMemberRequest{UserID: chi.URLParam(r, param), Role: body.Role}
		answer[events.UpdateMemberRequest, events.Member](t, w, r, op, req, http.StatusOK)
	}
}

func (t tenancy) removeUser(op, param string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := events.UserRef{UserID: chi.URLParam(r, param)}
		answer[events.UserRef, events.Empty](t, w, r, op, req, http.StatusNoContent)
	}
}

func (t tenancy) byID(op string, status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		answer[events.IDRequest, events.RawJSON](t, w, r, op, events.IDRequest{ID: chi.URLParam(r, "id")}, status)
	}
}

func (t tenancy) createInvitation(w http.ResponseWriter, r *http.Request) {
	decodeAnswer[events.CreateInvitationRequest, events.NewInvitation](t, w, r, events.OpTenancyCreateInvitation, http.StatusCreated)
}

// acceptInvitation takes no body: the token is in the path and the user is
// the caller.
func (t tenancy) acceptInvitation(w http.ResponseWriter, r *http.Request) {
	req := events.AcceptInvitationRequest{Token: chi.URLParam(r, "token")}
	answer[events.AcceptInvitationRequest, events.OrgSummary](t, w, r, events.OpTenancyAcceptInvitation, req, http.StatusOK)
}

func (t tenancy) createEnrollmentToken(w http.ResponseWriter, r *http.Request) {
	decodeAnswer[events.CreateEnrollmentTokenRequest, events.NewEnrollmentToken](t, w, r, events.OpTenancyCreateEnrollmentToken, http.StatusCreated)
}

func (t tenancy) revokeEnrollmentToken(w http.ResponseWriter, r *http.Request) {
	answer[events.IDRequest, events.EnrollmentToken](t, w, r, events.OpTenancyRevokeEnrollmentToken,
		events.IDRequest{ID: chi.URLParam(r, "id")}, http.StatusOK)
}

func (t tenancy) createUser(w http.ResponseWriter, r *http.Request) {
	decodeAnswer[events.CreateOrgUserRequest, events.Member](t, w, r, events.OpTenancyCreateUser, http.StatusCreated)
}
