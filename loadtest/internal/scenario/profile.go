package scenario

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/infrapilot/infrapilot/loadtest/internal/target"
)

// HubProfile takes a CPU profile of the self-hosted hub while a scenario's
// measured phase runs: call it when the phase starts, with the phase's
// length, and call the returned function when it ended. The profile is
// written to <out>/<name>-hub.pprof with its `go tool pprof -top` beside
// it (<name>-hub-top.txt); the function returns a note naming the top
// functions, for the result ("" when there is no profile: not
// self-hosted, --pprof=false, or it failed).
func HubProfile(ctx context.Context, t *target.Target, env Env, name string, d time.Duration) func() string {
	if !env.Profile || t.PprofURL == "" || d < time.Second {
		return func() string { return "" }
	}
	secs := int(math.Ceil(d.Seconds()))
	done := make(chan string, 1)
	go func() { done <- fetchProfile(ctx, t, env.OutDir, name, secs) }()
	return func() string {
		select {
		case note := <-done:
			return note
		case <-time.After(time.Duration(secs+30) * time.Second):
			return "hub CPU profile: no answer from the pprof listener"
		}
	}
}

func fetchProfile(ctx context.Context, t *target.Target, dir, name string, secs int) string {
	pctx, cancel := context.WithTimeout(ctx, time.Duration(secs+20)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, fmt.Sprintf("%s/profile?seconds=%d", t.PprofURL, secs), nil)
	if err != nil {
		return ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Sprintf("hub CPU profile failed: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("hub CPU profile failed: HTTP %d", resp.StatusCode)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ""
	}
	path := filepath.Join(dir, name+"-hub.pprof")
	f, err := os.Create(path)
	if err != nil {
		return fmt.Sprintf("hub CPU profile: %v", err)
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Sprintf("hub CPU profile: %v", err)
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=40", path).Output()
	if err != nil {
		return fmt.Sprintf("hub CPU profile in %s (go tool pprof -top failed: %v)", path, err)
	}
	_ = os.WriteFile(filepath.Join(dir, name+"-hub-top.txt"), top, 0o644)
	all, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=1000000", "-nodefraction=0", path).Output()
	if err != nil {
		all = top
	}
	return "hub CPU profile (" + filepath.Base(path) + "): " + summarizeTop(string(all), 7)
}

// summarizeTop sums the flat CPU of `go tool pprof -top` output ("flat
// flat% sum% cum cum% name" rows) by area (pprofArea) and names the n
// largest with their share of all samples, and the profile's duration.
func summarizeTop(out string, n int) string {
	header := ""
	inTable := false
	byArea := map[string]float64{}
	// Shares are of every sample the profile has (its header), not only of
	// the rows listed.
	var total, sampled float64
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if strings.HasPrefix(line, "Duration:") {
			header = strings.TrimSpace(line)
			if _, after, ok := strings.Cut(line, "Total samples = "); ok {
				if f := strings.Fields(after); len(f) > 0 {
					sampled, _ = parsePprofDuration(f[0])
				}
			}
			continue
		}
		if len(f) >= 5 && f[0] == "flat" {
			inTable = true
			continue
		}
		if !inTable || len(f) < 6 {
			continue
		}
		secs, ok := parsePprofDuration(f[0])
		if !ok {
			continue
		}
		byArea[pprofArea(strings.Join(f[5:], " "))] += secs
		total += secs
	}
	if total == 0 {
		return "no samples " + header
	}
	if sampled > total {
		total = sampled
	}
	areas := make([]string, 0, len(byArea))
	for a := range byArea {
		areas = append(areas, a)
	}
	sort.Slice(areas, func(i, j int) bool { return byArea[areas[i]] > byArea[areas[j]] })
	var parts []string
	for i, a := range areas {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%%", a, 100*byArea[a]/total))
	}
	return "flat CPU by area: " + strings.Join(parts, ", ") + " [" + header + "]"
}

// parsePprofDuration reads pprof's "0.57s", "120ms", "30us".
func parsePprofDuration(s string) (float64, bool) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, false
	}
	return d.Seconds(), true
}

// pprofAreas maps function-name prefixes to the area they are counted in,
// first match wins.
var pprofAreas = []struct{ prefix, area string }{
	{"github.com/nats-io/nats-server", "nats-server"},
	{"github.com/nats-io/nats.go", "nats client"},
	{"github.com/jackc/", "pgx"},
	{"github.com/ClickHouse/", "clickhouse client"},
	{"github.com/go-chi/", "http routing"},
	{"github.com/infrapilot/", "infrapilot code"},
	{"encoding/json", "encoding/json"},
	{"github.com/gowebpki/jcs", "json canonicalisation"},
	{"crypto/", "crypto"},
	{"internal/runtime/syscall", "syscalls"},
	{"syscall.", "syscalls"},
	{"internal/poll", "net I/O"},
	{"net/http", "net/http"},
	{"net.", "net I/O"},
	{"internal/runtime/maps", "map operations"},
	{"runtime.map", "map operations"},
	{"runtime.memmove", "memory copies"},
	{"runtime.tryDeferToSpanScan", "go GC"},
	{"runtime.(*mspan)", "go GC"},
	{"runtime.(*gcBits)", "go GC"},
	{"runtime.(*spanInlineMarkBits)", "go GC"},
	{"runtime.spanClass", "go GC"},
	{"runtime.gc", "go GC"},
	{"runtime.scan", "go GC"},
	{"runtime.mark", "go GC"},
	{"runtime.greyobject", "go GC"},
	{"runtime.findObject", "go GC"},
	{"runtime.wbBuf", "go GC"},
	{"runtime.mallocgc", "allocation"},
	{"runtime.nextFree", "allocation"},
	{"runtime.memclr", "allocation"},
	{"runtime.futex", "scheduler"},
	{"runtime.", "go runtime"},
	{"aeshash", "go runtime"},
	{"memeqbody", "go runtime"},
	{"indexbyte", "go runtime"},
}

func pprofArea(fn string) string {
	for _, a := range pprofAreas {
		if strings.HasPrefix(fn, a.prefix) {
			return a.area
		}
	}
	// The package path up to the first dot after its last slash.
	pkg := fn
	if i := strings.LastIndex(pkg, "/"); i >= 0 {
		if j := strings.Index(pkg[i:], "."); j >= 0 {
			pkg = pkg[:i+j]
		}
	} else if j := strings.Index(pkg, "."); j >= 0 {
		pkg = pkg[:j]
	}
	return pkg
}
