package nginx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/infrapilot/infrapilot/events"
)

// activate makes generation gen live: swap, reload, check.
func (c *Controller) activate(ctx context.Context, gen string, revision uint64, checkPort int) error {
	if err := c.swap(gen); err != nil {
		return err
	}
	off := c.logSize()
	if err := c.reload(ctx); err != nil {
		return err
	}
	return c.check(ctx, revision, checkPort, off)
}

// restore makes the last-known-good generation live again after a failed
// activation; with none, current is removed.
func (c *Controller) restore(ctx context.Context) error {
	if !c.st.lkg() {
		c.unswap()
		return nil
	}
	if err := c.swap(c.st.Generation); err != nil {
		return err
	}
	off := c.logSize()
	if err := c.reload(ctx); err != nil {
		return err
	}
	return c.check(ctx, c.st.Revision, c.st.CheckPort, off)
}

// reload makes nginx read current: `nginx -s reload`, or, when nginx is
// not running, starting it (it daemonises).
func (c *Controller) reload(ctx context.Context) error {
	if c.cfg.Kind == events.NginxKindLocal && !c.running() {
		return c.start(ctx)
	}
	args := append(c.quietArgs(), "-s", "reload", "-c", c.root("current", MainFile))
	out, err := c.cfg.Exec.Run(ctx, args...)
	if err == nil {
		return nil
	}
	if notRunning(out) {
		return c.start(ctx)
	}
	return fmt.Errorf("nginx -s reload: %s", failure(out, err))
}

func (c *Controller) start(ctx context.Context) error {
	args := append(c.startArgs(), "-c", c.root("current", MainFile))
	out, err := c.cfg.Exec.Run(ctx, args...)
	if err != nil {
		return fmt.Errorf("start nginx: %s", failure(out, err))
	}
	c.cfg.Log.Info("nginx: started", "config", c.root("current", MainFile))
	return nil
}

// notRunning recognises nginx's answers to a signal for a master that is
// not there: no pid file, an empty one, or a dead pid.
func notRunning(out string) bool {
	return strings.Contains(out, "nginx.pid") || strings.Contains(out, "invalid PID") ||
		strings.Contains(out, "No such process")
}

func failure(out string, err error) string {
	if m := Message(out); m != "" {
		return m
	}
	return err.Error()
}

// running reports whether the local master in Dir/run/nginx.pid lives.
func (c *Controller) running() bool {
	b, err := os.ReadFile(c.path("run", "nginx.pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return (err == nil || errors.Is(err, syscall.EPERM)) && !Zombie(pid)
}

// Zombie reports whether pid has exited but not been reaped: signals to
// it succeed and do nothing. A daemonised master that stopped stays so
// until init reaps it, which some container inits do slowly.
func Zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S …": the state follows the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}

// ensureRunning starts a local nginx that is not running with the live
// generation: after a reboot the agent is the one to bring it back.
func (c *Controller) ensureRunning(ctx context.Context) error {
	if c.cfg.Kind != events.NginxKindLocal || !c.st.lkg() || c.running() {
		return nil
	}
	off := c.logSize()
	if err := c.start(ctx); err != nil {
		return err
	}
	return c.check(ctx, c.st.Revision, c.st.CheckPort, off)
}

// check polls the check server until it answers revision: only then has
// the reload taken effect (nginx -s reload only signals the master). An
// [emerg] the master logs meanwhile (a port it cannot bind) ends the
// wait at once with that line.
func (c *Controller) check(ctx context.Context, revision uint64, port int, logOff int64) error {
	if port == 0 {
		c.cfg.Log.Warn("nginx: no check port: a reload is not verified")
		return nil
	}
	host, err := c.cfg.Exec.CheckHost(ctx)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/infrapilot-revision"
	want := strconv.FormatUint(revision, 10)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(c.cfg.CheckTimeout)
	var last string
	for {
		got, err := getBody(ctx, client, url)
		if err == nil && got == want {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("revision %q", got)
		}
		if line := c.newEmerg(logOff); line != "" {
			return fmt.Errorf("nginx refused the configuration: %s", line)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("nginx did not answer revision %s on %s within %s (last: %s)%s",
				want, url, c.cfg.CheckTimeout, last, c.logTail(logOff))
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func getBody(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return strings.TrimSpace(string(b)), nil
}

// The error log the check reads: the rendered nginx.conf logs to
// Root/logs/error.log.
func (c *Controller) errorLog() string { return c.path("logs", "error.log") }

func (c *Controller) logSize() int64 {
	fi, err := os.Stat(c.errorLog())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince is what nginx logged after offset off (at most 64 KiB).
func (c *Controller) logSince(off int64) string {
	f, err := os.Open(c.errorLog())
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() < off {
		off = 0 // rotated
	}
	b, _ := io.ReadAll(io.LimitReader(io.NewSectionReader(f, off, 1<<40), 64<<10))
	return string(b)
}

func (c *Controller) newEmerg(off int64) string {
	for _, p := range ParseProblems(c.logSince(off)) {
		if p.Level == "emerg" {
			return p.Line
		}
	}
	return ""
}

// logTail is the last lines nginx logged since off, for an error message.
func (c *Controller) logTail(off int64) string {
	lines := strings.Split(strings.TrimSpace(c.logSince(off)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	tail := strings.TrimSpace(strings.Join(lines, "\n"))
	if tail == "" {
		return ""
	}
	return "; error log: " + tail
}
