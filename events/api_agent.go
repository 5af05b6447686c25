package events

import "time"

// Operations an agent serves on AgentCommand(org, agent, op). Requests and
// replies are JSON; a failure is a micro-style error reply (the
// HeaderServiceErrorCode and HeaderServiceError headers, *Error as the body),
// so the gateway's request helper reads an agent exactly as it reads a
// service. The agent trusts the hub for authorisation: the gateway checks
// the caller's role (viewer: the read operations; exec needs operator) before
// it sends anything. Container ids may be given as a full id, a unique id
// prefix or a container name.
const (
	// OpAgentPing answers with the agent's facts; the gateway uses it to
	// tell a reachable agent from one that is only marked online. Request:
	// Empty. Reply: AgentInfo.
	OpAgentPing = "ping"
	// OpAgentContainersList lists containers. Request:
	// ContainersListRequest. Reply: List[Container].
	OpAgentContainersList = "containers.list"
	// OpAgentContainerInspect returns one container in detail. Request:
	// ContainerRef. Reply: ContainerDetail. not_found for an unknown id.
	OpAgentContainerInspect = "containers.inspect"
	// OpAgentContainerStart starts a container; starting a running one is
	// not an error. Request: ContainerRef. Reply: Container (its state
	// after the operation).
	OpAgentContainerStart = "containers.start"
	// OpAgentContainerStop stops a container (SIGTERM, then SIGKILL after
	// the timeout). Request: ContainerStopRequest. Reply: Container.
	OpAgentContainerStop = "containers.stop"
	// OpAgentContainerRestart restarts a container. Request:
	// ContainerStopRequest. Reply: Container.
	OpAgentContainerRestart = "containers.restart"
	// OpAgentContainerLogs returns the last lines of a container's log.
	// Request: ContainerLogsRequest. Reply: ContainerLogsReply.
	OpAgentContainerLogs = "containers.logs"
	// OpAgentContainerNetworks lists the networks a container is attached
	// to, named as OpAgentNetworksList names them. Request: ContainerRef.
	// Reply: List[ContainerNetwork].
	OpAgentContainerNetworks = "containers.networks"
	// OpAgentStacksList lists compose stacks: containers grouped by their
	// com.docker.compose.project label. Request: Empty. Reply: List[Stack].
	OpAgentStacksList = "stacks.list"
	// OpAgentNetworksList lists networks. Request: Empty. Reply:
	// List[Network].
	OpAgentNetworksList = "networks.list"
	// OpAgentNetworkConnect attaches a container to a network (the proxy's
	// attach-proxy uses it with the nginx container). Request:
	// NetworkConnectRequest. Reply: Empty. conflict when it is attached
	// already.
	OpAgentNetworkConnect = "networks.connect"
	// OpAgentNetworkDisconnect detaches a container from a network.
	// Request: NetworkConnectRequest (Aliases ignored). Reply: Empty.
	OpAgentNetworkDisconnect = "networks.disconnect"
	// OpAgentExecOpen runs a command in a container, interactively, as a
	// session (see AgentSessionOutput). Request: ExecOpenRequest. Reply:
	// SessionOpened. Needs operator or above at the gateway.
	OpAgentExecOpen = "exec.open"
	// OpAgentLogsFollow streams a container's log as a session, starting
	// with its last Tail lines. Request: LogsFollowRequest. Reply:
	// SessionOpened.
	OpAgentLogsFollow = "logs.follow"
)

// Sessions carry interactive streams (exec, live log tail) between the
// gateway's WebSocket and an agent over core NATS. The caller picks the
// session id (a valid subject token, unique per agent), subscribes to
// AgentSessionOutput first and then opens the session, so no output can
// be missed. Output messages carry HeaderSessionSeq (1, 2, 3…) so a gap
// is detectable; the last message of a session carries HeaderSessionExit
// (the exit code, or -1) and, when it ended abnormally,
// HeaderSessionError. The caller must send something (input, resize, or
// an empty input as a keepalive) at least every SessionIdleTimeout, or
// the agent ends the session: a gateway that died leaves nothing running.
const (
	HeaderSessionSeq   = "Ip-Session-Seq"
	HeaderSessionExit  = "Ip-Session-Exit"
	HeaderSessionError = "Ip-Session-Error"

	// SessionIdleTimeout is how long an agent keeps a session without
	// hearing from its caller.
	SessionIdleTimeout = 90 * time.Second
)

// AgentSessionOutput is the subject an agent publishes a session's output
// on: "agent.<org>.<agent>.out.<session>". It is the one subject shape
// besides telemetry that the agents' NATS account exports to the control
// plane (natsauth's AgentOutput).
func AgentSessionOutput(org, agent, session string) string {
	return join("agent", org, agent, "out", session)
}

// AgentSessionInput is the subject the caller sends a session's input on
// (raw bytes for the process's stdin; an empty message is a keepalive).
// It is below AgentCommands, so only that agent receives it.
func AgentSessionInput(org, agent, session string) string {
	return AgentCommand(org, agent, join("session", session, "input"))
}

// AgentSessionResize is the subject of a session's terminal size changes
// (body: SessionResize).
func AgentSessionResize(org, agent, session string) string {
	return AgentCommand(org, agent, join("session", session, "resize"))
}

// AgentSessionClose is the subject that ends a session (empty body).
func AgentSessionClose(org, agent, session string) string {
	return AgentCommand(org, agent, join("session", session, "close"))
}

// AgentHeartbeat is the subject an agent publishes its heartbeat on, every
// few seconds, with core NATS (a stale heartbeat is worthless, so it does
// not go through the outbox). Body: AgentHeartbeatMessage.
func AgentHeartbeat(org, agent string) string { return join("agent", org, agent, "heartbeat") }

// AgentInfo describes a running agent.
type AgentInfo struct {
	AgentID   string    `json:"agent_id"`
	Version   string    `json:"version"`
	Hostname  string    `json:"hostname"`
	OS        string    `json:"os"`
	Arch      string    `json:"arch"`
	StartedAt time.Time `json:"started_at"`
	// Engine is the container engine: "docker" or "podman", with its
	// version, for example "podman 4.3.1".
	Engine string `json:"engine,omitempty"`
}

// ContainersListRequest selects containers: running ones, or all with All.
type ContainersListRequest struct {
	All bool `json:"all,omitempty"`
}

// ContainerRef names one container by id, id prefix or name.
type ContainerRef struct {
	ID string `json:"id"`
}

// ContainerStopRequest stops or restarts a container. Timeout is the
// grace period in seconds before SIGKILL; nil means the engine's default.
type ContainerStopRequest struct {
	ID      string `json:"id"`
	Timeout *int   `json:"timeout,omitempty"`
}

// ContainerLogsRequest asks for the end of a container's log: the last
// Tail lines (default 100, at most 10000), optionally only those at or
// after Since.
type ContainerLogsRequest struct {
	ID    string    `json:"id"`
	Tail  int       `json:"tail,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

// ContainerLogsReply is the end of a container's log, oldest line first.
type ContainerLogsReply struct {
	Lines []LogLine `json:"lines"`
}

// Log streams.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// LogLine is one line of a container's log. Time is the engine's
// timestamp: nanoseconds with Docker, whole seconds with podman.
type LogLine struct {
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"`
	Text   string    `json:"text"`
}

// Port is a published or exposed container port.
type Port struct {
	IP          string `json:"ip,omitempty"`
	PrivatePort int    `json:"private_port"`
	PublicPort  int    `json:"public_port,omitempty"`
	Type        string `json:"type"`
}

// Container is the summary of a container. Stack and Service come from the
// compose labels. Health is the engine's health status ("healthy",
// "unhealthy", "starting") and empty without a health check; podman
// without systemd never runs health checks, so its containers stay
// "starting".
type Container struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Image    string            `json:"image"`
	ImageID  string            `json:"image_id,omitempty"`
	Command  string            `json:"command,omitempty"`
	State    string            `json:"state"`
	Status   string            `json:"status,omitempty"`
	Health   string            `json:"health,omitempty"`
	Created  time.Time         `json:"created"`
	Labels   map[string]string `json:"labels,omitempty"`
	Stack    string            `json:"stack,omitempty"`
	Service  string            `json:"service,omitempty"`
	Ports    []Port            `json:"ports,omitempty"`
	Networks []string          `json:"networks,omitempty"`
}

// Mount is a volume or bind mount of a container.
type Mount struct {
	Type        string `json:"type"`
	Name        string `json:"name,omitempty"`
	Source      string `json:"source,omitempty"`
	Destination string `json:"destination"`
	ReadWrite   bool   `json:"read_write"`
}

// ContainerDetail is one container in detail. Environment values are
// never sent (they routinely hold secrets): EnvKeys lists the variable
// names only.
type ContainerDetail struct {
	Container
	StartedAt     time.Time          `json:"started_at,omitzero"`
	FinishedAt    time.Time          `json:"finished_at,omitzero"`
	ExitCode      int                `json:"exit_code"`
	OOMKilled     bool               `json:"oom_killed,omitempty"`
	RestartCount  int                `json:"restart_count"`
	RestartPolicy string             `json:"restart_policy,omitempty"`
	PID           int                `json:"pid,omitempty"`
	TTY           bool               `json:"tty,omitempty"`
	Entrypoint    []string           `json:"entrypoint,omitempty"`
	Cmd           []string           `json:"cmd,omitempty"`
	WorkingDir    string             `json:"working_dir,omitempty"`
	EnvKeys       []string           `json:"env_keys,omitempty"`
	Mounts        []Mount            `json:"mounts,omitempty"`
	NetworkInfo   []ContainerNetwork `json:"network_info,omitempty"`
}

// Stack is a compose project: the containers sharing a
// com.docker.compose.project label.
type Stack struct {
	Name       string      `json:"name"`
	Services   []string    `json:"services"`
	Running    int         `json:"running"`
	Total      int         `json:"total"`
	Containers []Container `json:"containers"`
}

// Network is a container network.
type Network struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Driver     string            `json:"driver"`
	Scope      string            `json:"scope,omitempty"`
	Internal   bool              `json:"internal,omitempty"`
	Subnets    []string          `json:"subnets,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Containers int               `json:"containers"`
}

// ContainerNetwork is a container's attachment to one network.
type ContainerNetwork struct {
	NetworkID  string   `json:"network_id"`
	Name       string   `json:"name"`
	IPAddress  string   `json:"ip_address,omitempty"`
	Gateway    string   `json:"gateway,omitempty"`
	MacAddress string   `json:"mac_address,omitempty"`
	Aliases    []string `json:"aliases,omitempty"`
}

// NetworkConnectRequest attaches a container to (or detaches it from) a
// network named by id or name.
type NetworkConnectRequest struct {
	Network   string   `json:"network"`
	Container string   `json:"container"`
	Aliases   []string `json:"aliases,omitempty"`
}

// ExecOpenRequest runs Cmd (default /bin/sh) in a container as session
// Session. With TTY the process gets a terminal of Rows×Cols, and stdout
// and stderr are one stream.
type ExecOpenRequest struct {
	Session    string   `json:"session"`
	Container  string   `json:"container"`
	Cmd        []string `json:"cmd,omitempty"`
	TTY        bool     `json:"tty,omitempty"`
	Rows       uint     `json:"rows,omitempty"`
	Cols       uint     `json:"cols,omitempty"`
	User       string   `json:"user,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
}

// LogsFollowRequest streams a container's log as session Session: the
// last Tail lines (default 100), then new lines as they are written. Each
// output message is a JSON LogLine.
type LogsFollowRequest struct {
	Session   string `json:"session"`
	Container string `json:"container"`
	Tail      int    `json:"tail,omitempty"`
}

// SessionOpened confirms a session; its output is on Output.
type SessionOpened struct {
	Session string `json:"session"`
	Output  string `json:"output"`
}

// SessionResize changes a session's terminal size.
type SessionResize struct {
	Rows uint `json:"rows"`
	Cols uint `json:"cols"`
}

// TelemetryVersion is the version ("v") of the telemetry messages below.
// Additive changes keep it; a breaking change increments it and readers
// keep reading the old one.
const TelemetryVersion = 1

// AgentMetricsMessage is one sample of an agent's host and containers, on
// AgentMetrics(org, agent) every collection interval. The org and agent
// are the subject's, never the body's.
type AgentMetricsMessage struct {
	V          int              `json:"v"`
	Time       time.Time        `json:"time"`
	Host       HostMetrics      `json:"host"`
	Containers []ContainerStats `json:"containers"`
}

// HostMetrics is one sample of the agent's host. Rates are per second
// over the last interval (zero on the first sample).
type HostMetrics struct {
	CPUPercent    float64     `json:"cpu_percent"`
	CPUs          int         `json:"cpus"`
	Load1         float64     `json:"load1"`
	Load5         float64     `json:"load5"`
	Load15        float64     `json:"load15"`
	MemTotal      uint64      `json:"mem_total"`
	MemUsed       uint64      `json:"mem_used"`
	MemPercent    float64     `json:"mem_percent"`
	SwapTotal     uint64      `json:"swap_total"`
	SwapUsed      uint64      `json:"swap_used"`
	Disks         []DiskUsage `json:"disks"`
	NetRxBytes    uint64      `json:"net_rx_bytes"`
	NetTxBytes    uint64      `json:"net_tx_bytes"`
	NetRxRate     float64     `json:"net_rx_rate"`
	NetTxRate     float64     `json:"net_tx_rate"`
	UptimeSeconds uint64      `json:"uptime_seconds"`
}

// DiskUsage is the usage of one mounted filesystem.
type DiskUsage struct {
	Path    string  `json:"path"`
	FSType  string  `json:"fs_type,omitempty"`
	Total   uint64  `json:"total"`
	Used    uint64  `json:"used"`
	Percent float64 `json:"percent"`
}

// ContainerStats is one sample of a running container. CPUPercent is
// relative to one CPU (200 = two CPUs busy) and zero on the first sample.
type ContainerStats struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	CPUPercent float64 `json:"cpu_percent"`
	MemUsage   uint64  `json:"mem_usage"`
	MemLimit   uint64  `json:"mem_limit"`
	MemPercent float64 `json:"mem_percent"`
	NetRxBytes uint64  `json:"net_rx_bytes"`
	NetTxBytes uint64  `json:"net_tx_bytes"`
	BlockRead  uint64  `json:"block_read"`
	BlockWrite uint64  `json:"block_write"`
	PIDs       uint64  `json:"pids"`
}

// LogPosition is a point in one container's log: the timestamp of the
// last line read and how many lines of each stream carry exactly that
// timestamp up to that point. It is how an agent resumes without loss or
// repetition, even with podman's whole-second timestamps, and how a
// reader orders and de-duplicates lines: a line is identified by
// (container, Time, stream, its count at Time).
type LogPosition struct {
	Time   time.Time `json:"time"`
	Stdout int       `json:"stdout"`
	Stderr int       `json:"stderr"`
}

// AgentLogBatch is a batch of one container's log lines, in log order, on
// AgentLogs(org, agent). From is the position before the first line and
// To the position after the last; batches of a container chain From→To
// with no gap and no overlap. Its Nats-Msg-Id is derived from the
// container and both positions, so a batch re-sent after an agent restart
// is recognised by the hub's de-duplication.
type AgentLogBatch struct {
	V         int         `json:"v"`
	Container string      `json:"container"`
	Name      string      `json:"name"`
	Stack     string      `json:"stack,omitempty"`
	From      LogPosition `json:"from"`
	To        LogPosition `json:"to"`
	Lines     []LogLine   `json:"lines"`
}

// Docker event actions an agent reports.
const (
	DockerStart   = "start"
	DockerDie     = "die"
	DockerOOM     = "oom"
	DockerRestart = "restart"
)

// AgentDockerEvent is a container event (DockerStart, DockerDie,
// DockerOOM, DockerRestart) on AgentEvents(org, agent).
type AgentDockerEvent struct {
	V         int       `json:"v"`
	Kind      string    `json:"kind"`
	Action    string    `json:"action"`
	Time      time.Time `json:"time"`
	Container string    `json:"container"`
	Name      string    `json:"name,omitempty"`
	Image     string    `json:"image,omitempty"`
	Stack     string    `json:"stack,omitempty"`
	ExitCode  *int      `json:"exit_code,omitempty"`
}

// AgentEventKindDocker is the Kind of AgentDockerEvent; nginx and
// certificate events will have kinds of their own on the same subject.
const AgentEventKindDocker = "docker"

// AgentHeartbeatMessage is an agent's heartbeat: enough for presence
// (online while they arrive) and for showing the agent's backlog.
type AgentHeartbeatMessage struct {
	V    int       `json:"v"`
	Time time.Time `json:"time"`
	AgentInfo
	// OutboxPending is how many telemetry messages wait in the agent's
	// outbox for the hub.
	OutboxPending uint64 `json:"outbox_pending"`
}
