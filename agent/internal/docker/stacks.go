package docker

import (
	"context"
	"sort"

	"github.com/infrapilot/infrapilot/events"
)

// Stacks groups every container (running or not) by its compose project
// label. Containers without the label belong to no stack.
func (c *Client) Stacks(ctx context.Context) ([]events.Stack, error) {
	list, err := c.Containers(ctx, true)
	if err != nil {
		return nil, err
	}
	byName := map[string]*events.Stack{}
	for _, ctr := range list {
		if ctr.Stack == "" {
			continue
		}
		s, ok := byName[ctr.Stack]
		if !ok {
			s = &events.Stack{Name: ctr.Stack, Services: []string{}}
			byName[ctr.Stack] = s
		}
		s.Containers = append(s.Containers, ctr)
		s.Total++
		if ctr.State == "running" {
			s.Running++
		}
		if ctr.Service != "" && !contains(s.Services, ctr.Service) {
			s.Services = append(s.Services, ctr.Service)
		}
	}
	out := make([]events.Stack, 0, len(byName))
	for _, s := range byName {
		sort.Strings(s.Services)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
