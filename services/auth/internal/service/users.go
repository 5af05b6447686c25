package service

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/auth/internal/domain"
	"github.com/infrapilot/infrapilot/services/auth/internal/secret"
	"github.com/infrapilot/infrapilot/services/internal/platform/eventstore"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
	"github.com/jackc/pgx/v5"
)

// maxGetUsers bounds one users_get request.
const maxGetUsers = 500

// newUser is a validated user to create.
type newUser struct {
	email, name, password string
}

func validateNewUser(email, password, name string) (newUser, domain.Fields) {
	var f domain.Fields
	e, fe := domain.NormalizeEmail("email", email)
	f.Add(fe)
	n, fe := domain.CleanName("name", name, domain.MaxNameLen)
	f.Add(fe)
	f.Add(domain.CheckPassword("password", password))
	return newUser{email: e, name: n, password: password}, f
}

// createUser creates a user account. The e-mail claim is the commit point:
// it is appended at expected version 0 of the address's aggregate, so of
// two registrations of one address exactly one wins and the other gets
// conflict. The password hash is stored first, under the fresh user id, so
// it exists by the time the user does. A crash between the claim and the
// registration leaves the address claimed without a user: a retry answers
// conflict (a known gap; an operator can release the claim).
func (s *Service) createUser(ctx context.Context, nu newUser, actor events.Actor) (*domain.User, error) {
	hash, err := secret.HashPassword(nu.password, s.cfg.Argon2)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	uid := id.String()
	if actor.Kind == "" {
		actor = userActor(ctx, uid)
	}
	m := meta(ctx, events.PlatformOrg, actor)
	if _, err := s.db.Exec(ctx, `INSERT INTO credentials (user_id, password_hash) VALUES ($1, $2)`, uid, hash); err != nil {
		return nil, err
	}
	_, err = s.append(ctx, platformRef(domain.AggEmail, domain.EmailKey(nu.email)), 0, m, events.EmailClaimed{UserID: uid})
	if errors.Is(err, eventstore.ErrConflict) {
		_, _ = s.db.Exec(context.WithoutCancel(ctx), `DELETE FROM credentials WHERE user_id = $1`, uid)
		return nil, events.Errorf(events.CodeConflict, "this e-mail address is already registered").
			WithFields(events.FieldError{Field: "email", Message: "is already registered"})
	}
	if err != nil {
		return nil, err
	}
	v, err := s.append(ctx, platformRef(domain.AggUser, uid), 0, m, events.UserRegistered{Email: nu.email, Name: nu.name})
	if err != nil {
		return nil, err
	}
	if err := s.waitVersion(ctx, "users", uid, v); err != nil {
		return nil, err
	}
	return s.loadUser(ctx, uid)
}

// Register signs a user up with a new org they own, and signs them in.
// Tenancy creates the org; when it does not answer, the user stays created
// without an org and the caller gets unavailable (a retry then answers
// conflict: the user can sign in and create an org).
func (s *Service) Register(ctx context.Context, req events.RegisterRequest) (events.RegisterResponse, error) {
	var out events.RegisterResponse
	if !s.cfg.AllowSignup {
		return out, events.Errorf(events.CodeForbidden, "sign-up is disabled on this installation")
	}
	nu, f := validateNewUser(req.Email, req.Password, req.Name)
	orgName, fe := domain.CleanName("org_name", req.OrgName, domain.MaxNameLen)
	f.Add(fe)
	if err := f.Err(); err != nil {
		return out, err
	}
	u, err := s.createUser(ctx, nu, events.Actor{})
	if err != nil {
		return out, err
	}
	// The org is created on the new user's behalf.
	info := reqctx.From(ctx)
	info.Actor = userActor(ctx, u.ID)
	info.OrgID, info.Role = "", ""
	org, err := s.createOrg(reqctx.With(ctx, info), events.CreateOrgRequest{Name: orgName, OwnerUserID: u.ID})
	if err != nil {
		return out, err
	}
	tok, _, err := s.startSession(reqctx.With(ctx, info), u, false)
	if err != nil {
		return out, err
	}
	return events.RegisterResponse{User: u.Summary(), Org: org, AccessToken: tok.AccessToken,
		RefreshToken: tok.RefreshToken, TokenType: tok.TokenType, ExpiresIn: tok.ExpiresIn}, nil
}

// CreateUser creates a user for another service (tenancy's user
// administration, the dev bootstrap).
func (s *Service) CreateUser(ctx context.Context, req events.CreateUserRequest) (events.UserSummary, error) {
	nu, f := validateNewUser(req.Email, req.Password, req.Name)
	if err := f.Err(); err != nil {
		return events.UserSummary{}, err
	}
	u, err := s.createUser(ctx, nu, reqctx.From(ctx).Actor)
	if err != nil {
		return events.UserSummary{}, err
	}
	return u.Summary(), nil
}

const userColumns = `id, email, name, mfa_enabled, disabled, created_at, last_login_at, version`

func scanUser(row pgx.Row) (*domain.User, events.UserSummary, error) {
	u := &domain.User{}
	var lastLogin *time.Time
	var version int64
	if err := row.Scan(&u.ID, &u.Email, &u.Name, &u.MFAEnabled, &u.Disabled, &u.CreatedAt, &lastLogin, &version); err != nil {
		return nil, events.UserSummary{}, err
	}
	u.Version = uint64(version)
	sum := u.Summary()
	if lastLogin != nil {
		sum.LastLoginAt = domain.FormatTime(*lastLogin)
	}
	return u, sum, nil
}

// GetUsers returns the users with the given ids that exist, from the read
// model.
func (s *Service) GetUsers(ctx context.Context, req events.GetUsersRequest) (events.List[events.UserSummary], error) {
	out := events.List[events.UserSummary]{Items: []events.UserSummary{}}
	if len(req.IDs) > maxGetUsers {
		return out, fieldInvalid("ids", "must list at most 500 ids")
	}
	rows, err := s.db.Query(ctx, `SELECT `+userColumns+` FROM users WHERE id = ANY($1) ORDER BY id`, req.IDs)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		_, sum, err := scanUser(rows)
		if err != nil {
			return out, err
		}
		out.Items = append(out.Items, sum)
	}
	return out, rows.Err()
}

// FindUser returns the user with an e-mail address.
func (s *Service) FindUser(ctx context.Context, req events.FindUserRequest) (events.UserSummary, error) {
	email, fe := domain.NormalizeEmail("email", req.Email)
	if fe != nil {
		return events.UserSummary{}, events.Invalid("invalid input").WithFields(*fe)
	}
	_, sum, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1`, email))
	if errors.Is(err, pgx.ErrNoRows) {
		return sum, events.NotFound("no user with this e-mail address")
	}
	return sum, err
}

// Me returns the calling user.
func (s *Service) Me(ctx context.Context, _ events.Empty) (events.UserSummary, error) {
	uid, err := callerUser(ctx)
	if err != nil {
		return events.UserSummary{}, err
	}
	_, sum, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, uid))
	if errors.Is(err, pgx.ErrNoRows) {
		return sum, events.NotFound("user not found")
	}
	return sum, err
}

// userByEmail returns the user and password hash for a login, from the
// read model; found is false for an unknown address.
func (s *Service) userByEmail(ctx context.Context, email string) (u *domain.User, hash string, found bool, err error) {
	u = &domain.User{}
	var version int64
	err = s.db.QueryRow(ctx, `SELECT u.id, u.email, u.name, u.mfa_enabled, u.disabled, u.created_at, u.version, c.password_hash
		FROM users u JOIN credentials c ON c.user_id = u.id WHERE u.email = $1`, email).
		Scan(&u.ID, &u.Email, &u.Name, &u.MFAEnabled, &u.Disabled, &u.CreatedAt, &version, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, err
	}
	u.Version = uint64(version)
	return u, hash, true, nil
}
