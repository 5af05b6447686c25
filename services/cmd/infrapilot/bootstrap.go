package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go"
)

// bootstrapFile marks a data dir whose first admin exists. It records the
// admin's e-mail and org, never the password.
const bootstrapFile = "bootstrap.json"

type bootstrapRecord struct {
	AdminEmail string    `json:"admin_email"`
	AdminID    string    `json:"admin_id"`
	OrgID      string    `json:"org_id"`
	CreatedAt  time.Time `json:"created_at"`
}

// bootstrapAdmin creates the first admin user and their organisation on the
// first start of a data dir, through the services' own operations (so the
// creation is events like any other). A generated password is printed once;
// later starts only remind who the admin is.
func bootstrapAdmin(ctx context.Context, nc *nats.Conn, dataDir, email, password string, stdout io.Writer) (*bootstrapRecord, error) {
	path := filepath.Join(dataDir, bootstrapFile)
	if b, err := os.ReadFile(path); err == nil {
		var rec bootstrapRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("bootstrap: %s is corrupt: %w", path, err)
		}
		fmt.Fprintf(stdout, "  admin      %s (created %s)\n", rec.AdminEmail, rec.CreatedAt.Format(time.RFC3339))
		return &rec, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	generated := password == ""
	if generated {
		var b [18]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		password = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if email == "" {
		email = "admin@infrapilot.local"
	}
	system := events.Actor{Kind: events.ActorSystem, ID: "bootstrap"}
	var user events.UserSummary
	err := request(ctx, nc, events.ServiceEndpoint("auth", events.OpAuthCreateUser), system,
		events.CreateUserRequest{Email: email, Password: password, Name: "Administrator"}, &user)
	if events.ErrorCode(err) == events.CodeConflict {
		// The user exists (a bootstrap interrupted before its record was
		// written): reuse it, and only create the org if it has none.
		if err := request(ctx, nc, events.ServiceEndpoint("auth", events.OpAuthFindUser), system,
			events.FindUserRequest{Email: email}, &user); err != nil {
			return nil, fmt.Errorf("bootstrap: find admin: %w", err)
		}
		generated = false
	} else if err != nil {
		return nil, fmt.Errorf("bootstrap: create admin: %w", err)
	}
	var org events.MembershipReply
	err = request(ctx, nc, events.ServiceEndpoint("tenancy", events.OpTenancyDefaultOrg), system,
		events.DefaultOrgRequest{UserID: user.ID}, &org)
	if events.ErrorCode(err) == events.CodeNotFound {
		var created events.OrgSummary
		if err := request(ctx, nc, events.ServiceEndpoint("tenancy", events.OpTenancyCreateOrg), system,
			events.CreateOrgRequest{Name: "Default", OwnerUserID: user.ID}, &created); err != nil {
			return nil, fmt.Errorf("bootstrap: create org: %w", err)
		}
		org.OrgID = created.ID
	} else if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	rec := bootstrapRecord{AdminEmail: user.Email, AdminID: user.ID, OrgID: org.OrgID, CreatedAt: time.Now().UTC()}
	b, _ := json.MarshalIndent(rec, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	fmt.Fprintf(stdout, "  admin      %s\n", rec.AdminEmail)
	if generated {
		fmt.Fprintf(stdout, "  password   %s   (generated; shown this once — change it after logging in)\n", password)
	}
	return &rec, nil
}

// request calls a service operation as actor and decodes the reply or the
// service's error.
func request(ctx context.Context, nc *nats.Conn, subject string, actor events.Actor, in, out any) error {
	return requestIn(ctx, nc, subject, actor, "", "", in, out)
}

// requestIn is request acting in org with role (empty: no org).
func requestIn(ctx context.Context, nc *nats.Conn, subject string, actor events.Actor, org string, role events.Role, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(subject)
	msg.Data = body
	if org != "" {
		msg.Header.Set(events.HeaderOrgID, org)
		msg.Header.Set(events.HeaderRole, string(role))
	}
	msg.Header.Set(events.HeaderActorKind, string(actor.Kind))
	msg.Header.Set(events.HeaderActorID, actor.ID)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	msg.Header.Set(events.HeaderDeadline, time.Now().Add(30*time.Second).UTC().Format(time.RFC3339Nano))
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return events.Errorf(events.CodeUnavailable, "%s: %w", subject, err)
	}
	if code := reply.Header.Get(events.HeaderServiceErrorCode); code != "" {
		var e events.Error
		if json.Unmarshal(reply.Data, &e) != nil || e.Code == "" {
			e = events.Error{Code: events.Code(code), Message: reply.Header.Get(events.HeaderServiceError)}
		}
		return &e
	}
	return json.Unmarshal(reply.Data, out)
}

// printEnrollCommand creates a short-lived enrollment token in the admin's
// org and prints the command that enrolls an agent on this machine. A
// token per start keeps each one short-lived; it is shown this once.
func printEnrollCommand(ctx context.Context, nc *nats.Conn, rec *bootstrapRecord, server string, stdout io.Writer) error {
	var tok events.NewEnrollmentToken
	err := requestIn(ctx, nc, events.ServiceEndpoint("tenancy", events.OpTenancyCreateEnrollmentToken),
		events.Actor{Kind: events.ActorUser, ID: rec.AdminID}, rec.OrgID, events.RoleOwner,
		events.CreateEnrollmentTokenRequest{Name: "infrapilot dev " + time.Now().UTC().Format(time.DateTime), MaxUses: 5, ExpiresIn: "24h"}, &tok)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  agent      go run ./agent/cmd/infrapilot-agent enroll --server %s --token %s --state-dir ./.infrapilot-agent\n", server, tok.Token)
	fmt.Fprintf(stdout, "             go run ./agent/cmd/infrapilot-agent run --state-dir ./.infrapilot-agent   (token valid 24h, 5 machines)\n")
	return nil
}
