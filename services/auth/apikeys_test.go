package auth_test

import (
	"strings"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

func TestAPIKeysCreateVerifyListRevoke(t *testing.T) {
	e := start(t)
	reg := e.register("keys@example.com")
	orgA, orgB := reg.Org.ID, "0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee"
	admin := member(reg.User.ID, orgA, events.RoleAdmin)

	// Role above the caller's, or unknown: field errors.
	for _, role := range []events.Role{events.RoleOwner, "root"} {
		err := e.call(events.OpAuthAPIKeyCreate, admin, events.APIKeyCreateRequest{Name: "ci", Role: role}, nil)
		wantCode(t, err, events.CodeInvalid)
		if len(err.Fields) != 1 || err.Fields[0].Field != "role" {
			t.Fatalf("fields %+v", err.Fields)
		}
	}
	// A viewer may not manage keys; an anonymous caller is unauthorized.
	wantCode(t, e.call(events.OpAuthAPIKeyCreate, member(reg.User.ID, orgA, events.RoleViewer),
		events.APIKeyCreateRequest{Name: "ci", Role: events.RoleViewer}, nil), events.CodeForbidden)
	wantCode(t, e.call(events.OpAuthAPIKeyList, anon("192.0.2.1"), nil, nil), events.CodeUnauthorized)

	var created events.NewAPIKey
	e.must(events.OpAuthAPIKeyCreate, admin, events.APIKeyCreateRequest{Name: "ci deploy", Role: events.RoleOperator, ExpiresIn: 3600}, &created)
	e.secret(created.Key, strings.TrimPrefix(created.Key, "ipk_"))
	if !strings.HasPrefix(created.Key, "ipk_") || len(created.Key) < 40 || created.ID == "" ||
		!strings.HasPrefix(created.Key, created.Prefix) || created.Role != events.RoleOperator || created.ExpiresAt == "" {
		t.Fatalf("created %+v", created)
	}

	var p events.ResolvedPrincipal
	e.must(events.OpAuthVerifyAPIKey, caller{}, events.VerifyAPIKeyRequest{Key: created.Key}, &p)
	want := events.ResolvedPrincipal{Kind: events.ActorAPIKey, ID: created.ID, UserID: reg.User.ID, OrgID: orgA, Role: events.RoleOperator}
	if p != want {
		t.Fatalf("verify %+v, want %+v", p, want)
	}
	// A forged or altered key does not verify.
	for _, bad := range []string{created.Key[:len(created.Key)-1] + "A", "ipk_" + strings.Repeat("A", 43), "nope", ""} {
		if bad == created.Key {
			continue
		}
		wantCode(t, e.call(events.OpAuthVerifyAPIKey, caller{}, events.VerifyAPIKeyRequest{Key: bad}, nil), events.CodeUnauthorized)
	}

	// The list shows it without the key, with its last use; org B sees nothing.
	var list events.List[events.APIKey]
	checkFor(t, func() error {
		e.must(events.OpAuthAPIKeyList, admin, nil, &list)
		if len(list.Items) != 1 || list.Items[0].LastUsedAt == "" {
			return errf("list %+v", list)
		}
		return nil
	})
	if list.Items[0].ID != created.ID || list.Items[0].Prefix != created.Prefix {
		t.Fatalf("list %+v", list)
	}
	adminB := member(reg.User.ID, orgB, events.RoleOwner)
	e.must(events.OpAuthAPIKeyList, adminB, nil, &list)
	if len(list.Items) != 0 {
		t.Fatalf("org B sees org A's keys: %+v", list)
	}
	// Org B cannot revoke org A's key: not found.
	wantCode(t, e.call(events.OpAuthAPIKeyRevoke, adminB, events.APIKeyRevokeRequest{ID: created.ID}, nil), events.CodeNotFound)
	wantCode(t, e.call(events.OpAuthAPIKeyRevoke, admin, events.APIKeyRevokeRequest{ID: "../x"}, nil), events.CodeNotFound)

	// Revoke: the key stops working at once.
	e.must(events.OpAuthAPIKeyRevoke, admin, events.APIKeyRevokeRequest{ID: created.ID}, nil)
	wantCode(t, e.call(events.OpAuthVerifyAPIKey, caller{}, events.VerifyAPIKeyRequest{Key: created.Key}, nil), events.CodeUnauthorized)
	e.must(events.OpAuthAPIKeyRevoke, admin, events.APIKeyRevokeRequest{ID: created.ID}, nil) // idempotent
	e.must(events.OpAuthAPIKeyList, admin, nil, &list)
	if len(list.Items) != 0 {
		t.Fatalf("revoked key still listed: %+v", list)
	}
	ev := e.eventsOf("auth.apikey.created")
	if len(ev) != 1 || ev[0].OrgID != orgA || len(e.eventsOf("auth.apikey.revoked")) != 1 {
		t.Fatal("API key events missing or in the wrong org")
	}

	// An expired key does not verify.
	var short events.NewAPIKey
	e.must(events.OpAuthAPIKeyCreate, admin, events.APIKeyCreateRequest{Name: "short", Role: events.RoleViewer, ExpiresIn: 60}, &short)
	e.secret(short.Key)
	e.must(events.OpAuthVerifyAPIKey, caller{}, events.VerifyAPIKeyRequest{Key: short.Key}, &p)
	e.clock.Advance(2 * time.Minute)
	wantCode(t, e.call(events.OpAuthVerifyAPIKey, caller{}, events.VerifyAPIKeyRequest{Key: short.Key}, nil), events.CodeUnauthorized)
	e.assertNoSecrets()
}
