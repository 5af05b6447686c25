package routes

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/gateway/internal/authn"
	"github.com/infrapilot/infrapilot/gateway/internal/httpapi"
	"github.com/infrapilot/infrapilot/gateway/internal/natsreq"
)

// MountAuth registers API.md's Auth routes except SSO. Register, login,
// MFA verification, refresh and logout are public: the credentials travel
// in the body (logout needs only the refresh token, so a client whose
// access token has expired can still sign out). /auth/me and the MFA
// routes need a signed-in user; API keys need apikeys:manage in the
// request's org. The client IP reaches the auth service in the request
// headers (natsreq), where it drives login throttling.
func MountAuth(api chi.Router, d Deps) {
	a := authRoutes{d: d}
	// Unauthenticated entry points are rate limited per client IP, on top
	// of the auth service's per-account and per-IP throttling.
	limited := api.With(authn.LimitAuth)
	limited.Post("/auth/register", authBody[events.RegisterRequest, events.RegisterResponse](a, events.OpAuthRegister, http.StatusCreated))
	limited.Post("/auth/login", authBody[events.LoginRequest, events.LoginResponse](a, events.OpAuthLogin, http.StatusOK))
	limited.Post("/auth/mfa/verify", authBody[events.MFAVerifyRequest, events.TokenResponse](a, events.OpAuthMFAVerify, http.StatusOK))
	limited.Post("/auth/refresh", authBody[events.RefreshRequest, events.TokenResponse](a, events.OpAuthRefresh, http.StatusOK))
	api.Post("/auth/logout", authBody[events.LogoutRequest, events.Empty](a, events.OpAuthLogout, http.StatusNoContent))

	user := api.With(authn.RequireUser)
	user.Get("/auth/me", authNoBody[events.UserSummary](a, events.OpAuthMe, http.StatusOK))
	user.Post("/auth/mfa/setup", authNoBody[events.MFASetupResponse](a, events.OpAuthMFASetup, http.StatusOK))
	user.Post("/auth/mfa/confirm", authBody[events.MFACodeRequest, events.BackupCodesResponse](a, events.OpAuthMFAConfirm, http.StatusOK))
	user.Post("/auth/mfa/disable", authBody[events.MFACodeRequest, events.Empty](a, events.OpAuthMFADisable, http.StatusNoContent))
	user.Post("/auth/mfa/backup-codes", authBody[events.MFACodeRequest, events.BackupCodesResponse](a, events.OpAuthMFABackupCodes, http.StatusOK))

	keys := api.With(authn.Require(events.PermAPIKeysManage))
	keys.Get("/auth/api-keys", authNoBody[events.List[events.APIKey]](a, events.OpAuthAPIKeyList, http.StatusOK))
	keys.Post("/auth/api-keys", authBody[events.APIKeyCreateRequest, events.NewAPIKey](a, events.OpAuthAPIKeyCreate, http.StatusCreated))
	keys.Delete("/auth/api-keys/{id}", a.revokeAPIKey)
}

type authRoutes struct{ d Deps }

// authCall calls an auth operation and writes its reply with status.
func authCall[Req, Resp any](a authRoutes, w http.ResponseWriter, r *http.Request, op string, req Req, status int) {
	resp, err := natsreq.Call[Req, Resp](r.Context(), a.d.NC, events.ServiceEndpoint("auth", op), req)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, r, status, resp)
}

// authBody is a handler that decodes a Req body and calls op.
func authBody[Req, Resp any](a authRoutes, op string, status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := httpapi.Decode(r, &req); err != nil {
			httpapi.Error(w, r, err)
			return
		}
		authCall[Req, Resp](a, w, r, op, req, status)
	}
}

// authNoBody is a handler for an operation without a request body.
func authNoBody[Resp any](a authRoutes, op string, status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		authCall[events.Empty, Resp](a, w, r, op, events.Empty{}, status)
	}
}

// revokeAPIKey answers DELETE /auth/api-keys/{id}. The org is the
// request's; a key of another org is not found.
func (a authRoutes) revokeAPIKey(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !events.ValidToken(id) {
		httpapi.Error(w, r, events.NotFound("API key not found"))
		return
	}
	authCall[events.APIKeyRevokeRequest, events.Empty](a, w, r, events.OpAuthAPIKeyRevoke, events.APIKeyRevokeRequest{ID: id}, http.StatusNoContent)
}
