// Package docker is the agent's thin layer over the Docker Engine API
// (docker/docker's client): containers, compose stacks, networks, logs,
// exec sessions, events and stats, returned as the wire types of
// events/api_agent.go. It speaks to Docker and to podman's
// Docker-compatible service alike; where podman answers differently (see
// docs/agent.md) the difference is absorbed here so that callers see one
// behaviour. Every error it returns is an *events.Error (see mapError).
package docker

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/docker/docker/client"
)

// Engine says which engine is behind the API.
type Engine struct {
	// Name is "docker" or "podman".
	Name    string
	Version string
	// APIVersion is the negotiated API version, for example "1.41".
	APIVersion string
}

// Podman reports whether the engine is podman.
func (e Engine) Podman() bool { return e.Name == "podman" }

// String is "docker 28.0.1" or "podman 4.3.1".
func (e Engine) String() string { return e.Name + " " + e.Version }

// Client talks to one engine. It is safe for concurrent use.
type Client struct {
	api *client.Client

	mu         sync.Mutex
	negotiated bool
	engine     *Engine
	netAlias   map[string]string // podman's "podman" → "bridge", see canonicalNetwork
}

// New returns a client for host ("unix:///var/run/docker.sock",
// "tcp://…"; empty means the DOCKER_HOST environment variable, then the
// default socket). The API version is negotiated on first use. New does
// not connect.
func New(host string) (*Client, error) {
	// The version is negotiated once, by ready, not by the client on
	// every request: the client's own negotiation races when the first
	// requests are concurrent.
	var opts []client.Opt
	if host != "" {
		opts = append(opts, client.WithHost(host))
	} else {
		opts = append(opts, client.FromEnv)
	}
	api, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: client for %q: %w", host, err)
	}
	return &Client{api: api}, nil
}

// ready negotiates the API version with the engine, once; until it
// succeeds every operation tries again (and fails as unavailable while
// the engine is unreachable).
func (c *Client) ready(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.negotiated {
		return nil
	}
	ping, err := c.api.Ping(ctx)
	if err != nil {
		return mapError(err, "engine")
	}
	c.api.NegotiateAPIVersionPing(ping)
	c.negotiated = true
	return nil
}

// Close releases the client's idle connections.
func (c *Client) Close() error { return c.api.Close() }

// Engine pings the engine and identifies it; the answer is cached after
// the first success.
func (c *Client) Engine(ctx context.Context) (Engine, error) {
	if err := c.ready(ctx); err != nil {
		return Engine{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.engine != nil {
		return *c.engine, nil
	}
	v, err := c.api.ServerVersion(ctx)
	if err != nil {
		return Engine{}, mapError(err, "engine")
	}
	e := Engine{Name: "docker", Version: v.Version, APIVersion: c.api.ClientVersion()}
	for _, comp := range v.Components {
		if strings.Contains(strings.ToLower(comp.Name), "podman") {
			e.Name = "podman"
			e.Version = comp.Version
		}
	}
	c.engine = &e
	return e, nil
}

// Ping checks that the engine answers.
func (c *Client) Ping(ctx context.Context) error {
	if err := c.ready(ctx); err != nil {
		return err
	}
	_, err := c.api.Ping(ctx)
	return mapError(err, "engine")
}
