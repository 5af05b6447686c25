package service

import (
	"context"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/services/internal/platform/svcclient"
)

// createOrg asks the tenancy service to create an org, on behalf of the
// request in ctx (svcclient.Call: its ids go along, and its deadline).
func (s *Service) createOrg(ctx context.Context, req events.CreateOrgRequest) (events.OrgSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TenancyTimeout)
	defer cancel()
	subject := events.ServiceEndpoint("tenancy", events.OpTenancyCreateOrg)
	var out events.OrgSummary
	err := svcclient.Call(ctx, s.nc, subject, svcclient.Unreachable{
		NoResponders: subject + " is not answering; retry later",
		Timeout:      subject + " did not answer in time",
	}, req, &out)
	return out, err
}
