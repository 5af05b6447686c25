package target

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// selfAdminEmail is the admin the self-hosted instance is created with.
const selfAdminEmail = "loadtest@infrapilot.local"

// devInfo is the part of `infrapilot dev`'s dev.json the tool reads.
type devInfo struct {
	PID           int    `json:"pid"`
	APIURL        string `json:"api_url"`
	NATSURL       string `json:"nats_url"`
	LeafURL       string `json:"leaf_url"`
	PostgresURL   string `json:"postgres_url"`
	ClickHouseURL string `json:"clickhouse_url"`
	ServiceCreds  string `json:"service_creds"`
	AdminEmail    string `json:"admin_email"`
}

// selfHost starts `infrapilot dev` on a temporary data dir, waits for its
// dev.json, logs in as the generated admin and creates an API key. On
// error everything started is stopped again.
func selfHost(ctx context.Context, f *Flags, log io.Writer) (_ *Target, err error) {
	tmp, err := os.MkdirTemp("", "infrapilot-loadtest-")
	if err != nil {
		return nil, err
	}
	// The private Postgres runs as the postgres user when we are root and
	// must traverse into the data dir.
	if err := os.Chmod(tmp, 0o711); err != nil {
		return nil, err
	}
	cleanupTmp := func() {
		if !f.KeepData {
			_ = os.RemoveAll(tmp)
		}
	}
	defer func() {
		if err != nil {
			cleanupTmp()
		}
	}()
	bin := f.InfrapilotBin
	if bin == "" {
		if bin, err = buildInfrapilot(ctx, tmp, log); err != nil {
			return nil, err
		}
	}
	dataDir := filepath.Join(tmp, "data")
	password, err := randomSecret()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(tmp, "dev.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := []string{"dev", "--data-dir", dataDir, "--http", "127.0.0.1:0", "--nats-port", "0", "--leaf-port", "-1",
		"--pg-port", "0", "--admin-email", selfAdminEmail, "--admin-password", password,
		// Simulated fleets enroll thousands of agents from one IP.
		"--auth-rate-limit", "-1", "--log-level", "warn"}
	if f.NoClickHouse {
		args = append(args, "--no-clickhouse")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = cleanEnv(os.Environ())
	pprofFile := filepath.Join(tmp, "pprof.addr")
	if f.InfrapilotBin == "" {
		// The binary built here serves net/http/pprof on loopback (see
		// pprofOverlay) for the scenarios' hub profiles.
		cmd.Env = append(cmd.Env, "LOADTEST_PPROF_ADDR=127.0.0.1:0", "LOADTEST_PPROF_FILE="+pprofFile)
	}
	cmd.SysProcAttr = sysProcAttr()
	fmt.Fprintf(log, "self-host: starting %s dev (data and log in %s)…\n", bin, tmp)
	started := time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start infrapilot dev: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logFile.Close() }()
	stop := func() error {
		serr := stopProcess(cmd, exited)
		cleanupTmp()
		return serr
	}
	defer func() {
		if err != nil {
			_ = stopProcess(cmd, exited)
			err = fmt.Errorf("%w\n--- tail of %s ---\n%s", err, logPath, tail(logPath, 30))
		}
	}()

	info, err := waitDevInfo(ctx, filepath.Join(dataDir, "dev.json"), exited, 3*time.Minute)
	if err != nil {
		return nil, err
	}
	t := &Target{
		APIURL: strings.TrimRight(info.APIURL, "/"), NATSURL: info.NATSURL, NATSCreds: info.ServiceCreds,
		LeafURL: info.LeafURL, PostgresURL: info.PostgresURL, ClickHouseURL: info.ClickHouseURL,
		SelfHosted: true, DataDir: dataDir, PID: cmd.Process.Pid, HTTP: NewHTTPClient(), stop: stop,
	}
	if err := t.loginSelf(ctx, password, exited); err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(pprofFile); err == nil {
		t.PprofURL = "http://" + strings.TrimSpace(string(b)) + "/debug/pprof"
	}
	fmt.Fprintf(log, "self-host: ready in %s — API %s, NATS %s, Postgres %s, ClickHouse %s\n",
		time.Since(started).Round(time.Millisecond), t.APIURL, t.NATSURL, t.PostgresURL, orNone(t.ClickHouseURL))
	return t, nil
}

// loginSelf logs in as the self-hosted admin (retrying while the instance
// bootstraps the admin, which happens just after dev.json is written),
// finds the admin's org and creates an owner API key for the run.
func (t *Target) loginSelf(ctx context.Context, password string, exited <-chan error) error {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := t.DoAs(ctx, "", "", http.MethodPost, "/auth/login", map[string]string{"email": selfAdminEmail, "password": password}, &tok)
		if err == nil && tok.AccessToken != "" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("log in as %s: %v", selfAdminEmail, err)
		}
		if werr := waitOrExit(ctx, 200*time.Millisecond, exited); werr != nil {
			return werr
		}
	}
	t.UserToken = tok.AccessToken
	if err := t.fillIdentity(ctx); err != nil {
		return err
	}
	var key struct {
		Key string `json:"key"`
	}
	if err := t.DoAs(ctx, t.UserToken, t.OrgID, http.MethodPost, "/auth/api-keys", map[string]string{"name": "infrapilot-loadtest", "role": "owner"}, &key); err != nil {
		return fmt.Errorf("create API key: %w", err)
	}
	t.Token = key.Key
	return nil
}

// waitDevInfo polls for dev.json until it exists and parses, the process
// exits, or limit passes.
func waitDevInfo(ctx context.Context, path string, exited <-chan error, limit time.Duration) (devInfo, error) {
	deadline := time.Now().Add(limit)
	for {
		if b, err := os.ReadFile(path); err == nil {
			var info devInfo
			if err := json.Unmarshal(b, &info); err == nil && info.APIURL != "" {
				return info, nil
			}
		}
		if time.Now().After(deadline) {
			return devInfo{}, fmt.Errorf("infrapilot dev did not write %s within %s", path, limit)
		}
		if err := waitOrExit(ctx, 100*time.Millisecond, exited); err != nil {
			return devInfo{}, err
		}
	}
}

// waitOrExit waits d (a poll interval), failing early when the process
// exits or ctx ends.
func waitOrExit(ctx context.Context, d time.Duration, exited <-chan error) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-exited:
		return fmt.Errorf("infrapilot dev exited early: %v", err)
	case <-t.C:
		return nil
	}
}

// stopProcess asks dev to stop (SIGINT: it stops its Postgres and
// ClickHouse itself), waits up to a minute, then kills its process group.
func stopProcess(cmd *exec.Cmd, exited <-chan error) error {
	if cmd.Process == nil {
		return nil
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
		return nil
	case <-time.After(60 * time.Second):
	}
	killGroup(cmd)
	<-exited
	return errors.New("infrapilot dev did not stop within 60s after SIGINT; killed")
}

// buildInfrapilot builds the infrapilot binary from the repository the
// working directory is in (found by walking up to go.work).
func buildInfrapilot(ctx context.Context, dir string, log io.Writer) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("--self-host without --infrapilot-bin: %w", err)
	}
	out := filepath.Join(dir, "infrapilot")
	overlay, err := writePprofOverlay(dir, filepath.Join(root, "services", "cmd", "infrapilot"))
	if err != nil {
		return "", err
	}
	fmt.Fprintf(log, "self-host: building infrapilot from %s (go build ./services/cmd/infrapilot, with a pprof listener)…\n", root)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-overlay", overlay, "-o", out, "./services/cmd/infrapilot")
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./services/cmd/infrapilot: %v\n%s", err, stderr.String())
	}
	fmt.Fprintf(log, "self-host: built in %s\n", time.Since(start).Round(time.Millisecond))
	return out, nil
}

// RepoRoot walks up from the working directory to the directory holding
// go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory: run from the InfraPilot repository or pass --infrapilot-bin")
		}
		dir = parent
	}
}

// cleanEnv drops INFRAPILOT_* variables so that settings of the caller's
// shell cannot change the self-hosted instance (flags set everything).
func cleanEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "INFRAPILOT_") {
			out = append(out, kv)
		}
	}
	return out
}

func randomSecret() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
