package docker

import (
	"context"
	"sort"

	"github.com/docker/docker/api/types/network"
	"github.com/infrapilot/infrapilot/events"
)

// netIndex maps the engine's networks both ways, as NetworkList names
// them.
type netIndex struct {
	byID   map[string]string // id → name
	byName map[string]string // name → id
}

func (c *Client) networkNames(ctx context.Context) (netIndex, error) {
	list, err := c.api.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return netIndex{}, mapError(err, "networks")
	}
	idx := netIndex{byID: map[string]string{}, byName: map[string]string{}}
	for _, n := range list {
		idx.byID[n.ID] = n.Name
		idx.byName[n.Name] = n.ID
	}
	return idx, nil
}

// canonicalNetwork names a container's network endpoint (key is the name
// the container's NetworkSettings uses, id its NetworkID) as NetworkList
// names the network.
//
// Podman differs from Docker here: its default network is "bridge" in
// NetworkList but "podman" (with NetworkID "podman", not the id) in a
// container's settings. An inspect of the key gives the real id, which
// gives the listed name; the answer is cached, the mapping being fixed
// for the engine's life.
func (c *Client) canonicalNetwork(ctx context.Context, key, id string, idx netIndex) string {
	if _, ok := idx.byName[key]; ok {
		return key
	}
	if name, ok := idx.byID[id]; ok {
		return name
	}
	c.mu.Lock()
	alias, ok := c.netAlias[key]
	c.mu.Unlock()
	if ok {
		return alias
	}
	n, err := c.api.NetworkInspect(ctx, key, network.InspectOptions{})
	if err != nil {
		return key
	}
	name, ok := idx.byID[n.ID]
	if !ok {
		return key
	}
	c.mu.Lock()
	if c.netAlias == nil {
		c.netAlias = map[string]string{}
	}
	c.netAlias[key] = name
	c.mu.Unlock()
	return name
}

// networkIDOf is the listed id of a network, else the endpoint's own.
func networkIDOf(name, epID string, idx netIndex) string {
	if id, ok := idx.byName[name]; ok {
		return id
	}
	return epID
}

// Networks lists the engine's networks with the number of containers
// attached to each.
func (c *Client) Networks(ctx context.Context) ([]events.Network, error) {
	if err := c.ready(ctx); err != nil {
		return nil, err
	}
	list, err := c.api.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, mapError(err, "networks")
	}
	out := make([]events.Network, 0, len(list))
	for _, n := range list {
		item := events.Network{ID: n.ID, Name: n.Name, Driver: n.Driver, Scope: n.Scope,
			Internal: n.Internal, Labels: n.Labels, Containers: len(n.Containers)}
		for _, cfg := range n.IPAM.Config {
			if cfg.Subnet != "" {
				item.Subnets = append(item.Subnets, cfg.Subnet)
			}
		}
		out = append(out, item)
	}
	// NetworkList leaves Containers empty on Docker; an inspect per
	// network fills it in.
	for i := range out {
		if out[i].Containers > 0 {
			continue
		}
		if n, err := c.api.NetworkInspect(ctx, out[i].ID, network.InspectOptions{}); err == nil {
			out[i].Containers = len(n.Containers)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ContainerNetworks lists the networks a container is attached to.
func (c *Client) ContainerNetworks(ctx context.Context, ref string) ([]events.ContainerNetwork, error) {
	d, err := c.Container(ctx, ref)
	if err != nil {
		return nil, err
	}
	if d.NetworkInfo == nil {
		return []events.ContainerNetwork{}, nil
	}
	return d.NetworkInfo, nil
}

// Connect attaches a container to a network. Attaching it twice is a
// conflict on both engines.
func (c *Client) Connect(ctx context.Context, netRef, ctrRef string, aliases []string) error {
	if err := c.ready(ctx); err != nil {
		return err
	}
	nid, err := checkRef("network", netRef)
	if err != nil {
		return err
	}
	cid, err := checkRef("container", ctrRef)
	if err != nil {
		return err
	}
	var cfg *network.EndpointSettings
	if len(aliases) > 0 {
		cfg = &network.EndpointSettings{Aliases: aliases}
	}
	return mapError(c.api.NetworkConnect(ctx, nid, cid, cfg), "network "+nid+" or container "+cid)
}

// Disconnect detaches a container from a network.
func (c *Client) Disconnect(ctx context.Context, netRef, ctrRef string) error {
	if err := c.ready(ctx); err != nil {
		return err
	}
	nid, err := checkRef("network", netRef)
	if err != nil {
		return err
	}
	cid, err := checkRef("container", ctrRef)
	if err != nil {
		return err
	}
	return mapError(c.api.NetworkDisconnect(ctx, nid, cid, false), "network "+nid+" or container "+cid)
}
