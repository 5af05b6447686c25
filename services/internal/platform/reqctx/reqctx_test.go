package reqctx_test

import (
	"context"
	"testing"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/reqctx"
)

func TestMetaIn(t *testing.T) {
	t.Parallel()
	system := events.SystemActor("proxy")
	user := events.Actor{Kind: events.ActorUser, ID: "u1", IP: "192.0.2.1"}
	for _, tc := range []struct {
		name string
		info reqctx.Info
		want events.Meta
	}{
		{"a user's request", reqctx.Info{OrgID: "o1", Actor: user, CorrelationID: "c1", CausationID: "e1"},
			events.Meta{OrgID: "o2", Actor: user, CorrelationID: "c1", CausationID: "e1"}},
		{"work without an actor is the system's", reqctx.Info{CorrelationID: "c1"},
			events.Meta{OrgID: "o2", Actor: system, CorrelationID: "c1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := reqctx.With(context.Background(), tc.info)
			if got := reqctx.MetaIn(ctx, "o2", system); got != tc.want {
				t.Fatalf("MetaIn = %+v, want %+v", got, tc.want)
			}
		})
	}
}
