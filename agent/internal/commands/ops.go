package commands

import (
	"context"

	"github.com/infrapilot/infrapilot/events"
)

func (r *Responder) operations() map[string]Handler {
	return map[string]Handler{
		events.OpAgentPing: handle(r.ping),
		events.OpAgentContainersList: handle(func(ctx context.Context, req events.ContainersListRequest) (events.List[events.Container], error) {
			items, err := r.dc.Containers(ctx, req.All)
			return events.List[events.Container]{Items: items}, err
		}),
		events.OpAgentContainerInspect: handle(func(ctx context.Context, req events.ContainerRef) (events.ContainerDetail, error) {
			return r.dc.Container(ctx, req.ID)
		}),
		events.OpAgentContainerStart: handle(func(ctx context.Context, req events.ContainerRef) (events.Container, error) {
			return r.dc.Start(ctx, req.ID)
		}),
		events.OpAgentContainerStop: handle(func(ctx context.Context, req events.ContainerStopRequest) (events.Container, error) {
			if err := checkTimeout(req.Timeout); err != nil {
				return events.Container{}, err
			}
			return r.dc.Stop(ctx, req.ID, req.Timeout)
		}),
		events.OpAgentContainerRestart: handle(func(ctx context.Context, req events.ContainerStopRequest) (events.Container, error) {
			if err := checkTimeout(req.Timeout); err != nil {
				return events.Container{}, err
			}
			return r.dc.Restart(ctx, req.ID, req.Timeout)
		}),
		events.OpAgentContainerLogs: handle(func(ctx context.Context, req events.ContainerLogsRequest) (events.ContainerLogsReply, error) {
			if req.Tail < 0 || req.Tail > 10000 {
				return events.ContainerLogsReply{}, events.Invalid("tail must be between 0 and 10000").
					WithFields(events.FieldError{Field: "tail", Message: "between 0 and 10000"})
			}
			lines, err := r.dc.Tail(ctx, req.ID, req.Tail, req.Since)
			return events.ContainerLogsReply{Lines: lines}, err
		}),
		events.OpAgentContainerNetworks: handle(func(ctx context.Context, req events.ContainerRef) (events.List[events.ContainerNetwork], error) {
			items, err := r.dc.ContainerNetworks(ctx, req.ID)
			return events.List[events.ContainerNetwork]{Items: items}, err
		}),
		events.OpAgentStacksList: handle(func(ctx context.Context, _ events.Empty) (events.List[events.Stack], error) {
			items, err := r.dc.Stacks(ctx)
			return events.List[events.Stack]{Items: items}, err
		}),
		events.OpAgentNetworksList: handle(func(ctx context.Context, _ events.Empty) (events.List[events.Network], error) {
			items, err := r.dc.Networks(ctx)
			return events.List[events.Network]{Items: items}, err
		}),
		events.OpAgentNetworkConnect: handle(func(ctx context.Context, req events.NetworkConnectRequest) (events.Empty, error) {
			return events.Empty{}, r.dc.Connect(ctx, req.Network, req.Container, req.Aliases)
		}),
		events.OpAgentNetworkDisconnect: handle(func(ctx context.Context, req events.NetworkConnectRequest) (events.Empty, error) {
			return events.Empty{}, r.dc.Disconnect(ctx, req.Network, req.Container)
		}),
		events.OpAgentExecOpen:   handle(r.execOpen),
		events.OpAgentLogsFollow: handle(r.logsFollow),
	}
}

func (r *Responder) ping(ctx context.Context, _ events.Empty) (events.AgentInfo, error) {
	info := r.cfg.Info
	if info.Engine == "" {
		if e, err := r.dc.Engine(ctx); err == nil {
			info.Engine = e.String()
		}
	}
	return info, nil
}

func checkTimeout(t *int) error {
	if t != nil && (*t < 0 || *t > 600) {
		return events.Invalid("timeout must be between 0 and 600 seconds").
			WithFields(events.FieldError{Field: "timeout", Message: "between 0 and 600"})
	}
	return nil
}
