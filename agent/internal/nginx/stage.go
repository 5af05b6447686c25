package nginx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/infrapilot/infrapilot/events"
)

// MainFile is the path of a generation's main file; nginx runs with
// -c Root/current/MainFile, and its relative includes resolve against
// the generation's directory.
const MainFile = "nginx.conf"

// maxFiles bounds a desired state (a host has one file; thousands of
// hosts per agent is far beyond any real proxy).
const maxFiles = 10000

// ValidPath reports whether p may name a file of a generation: relative,
// clean, no "..", only [a-z0-9._/-]. The proxy service renders the paths,
// but the agent writes as root and must not be talked into writing
// anywhere else.
func ValidPath(p string) bool {
	if p == "" || len(p) > 255 || strings.HasPrefix(p, "/") || filepath.Clean(p) != p {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '/' || r == '-') {
			return false
		}
	}
	for _, el := range strings.Split(p, "/") {
		if el == "." || el == ".." || el == "" {
			return false
		}
	}
	return true
}

// validate checks a desired state before anything is written.
func validate(d events.NginxDesired) error {
	switch d.Mode {
	case events.ProxyModeManaged, events.ProxyModeExternal, "":
	default:
		return fmt.Errorf("unknown mode %q", d.Mode)
	}
	if d.Mode == events.ProxyModeExternal {
		return nil
	}
	if len(d.Files) > maxFiles {
		return fmt.Errorf("%d files (at most %d)", len(d.Files), maxFiles)
	}
	if d.CheckPort < 0 || d.CheckPort > 65535 {
		return fmt.Errorf("check port %d out of range", d.CheckPort)
	}
	seen := map[string]bool{}
	main := false
	for i, f := range d.Files {
		if !ValidPath(f.Path) {
			return fmt.Errorf("files[%d]: path %q is not a clean relative path of [a-z0-9._/-]", i, f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("files[%d]: duplicate path %q", i, f.Path)
		}
		seen[f.Path] = true
		if f.HostID != "" && !events.ValidToken(f.HostID) {
			return fmt.Errorf("files[%d]: invalid host id %q", i, f.HostID)
		}
		if f.Path == MainFile {
			if f.HostID != "" {
				return fmt.Errorf("files[%d]: %s belongs to no host", i, MainFile)
			}
			main = true
		}
		for _, r := range f.Requires {
			if r == "" || strings.ContainsRune(r, 0) || filepath.Clean(r) != r || strings.Contains(r, "..") {
				return fmt.Errorf("files[%d]: invalid requirement %q", i, r)
			}
		}
	}
	if !main {
		return fmt.Errorf("no %s", MainFile)
	}
	return nil
}

// missing lists the requirements of f that are not on disk. A
// requirement under Root is looked up under Dir; a relative one is
// relative to Dir.
func (c *Controller) missing(f events.NginxFile) []string {
	var out []string
	for _, r := range f.Requires {
		p := r
		switch {
		case r == c.cfg.Root:
			p = c.cfg.Dir
		case strings.HasPrefix(r, c.cfg.Root+"/"):
			p = filepath.Join(c.cfg.Dir, strings.TrimPrefix(r, c.cfg.Root+"/"))
		case !filepath.IsAbs(r):
			p = filepath.Join(c.cfg.Dir, r)
		}
		if _, err := os.Stat(p); err != nil {
			out = append(out, r)
		}
	}
	return out
}

// newGeneration hands out the next generation name.
func (c *Controller) newGeneration() string {
	c.seq++
	return strconv.FormatUint(c.seq, 10)
}

// stage writes files as generation gen, replacing whatever was there.
// Files are synced: once current points to a generation, its content is
// on disk.
func (c *Controller) stage(gen string, files []events.NginxFile) error {
	dir := c.path("gen", gen)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		if err := writeSynced(p, []byte(f.Content)); err != nil {
			return err
		}
	}
	return nil
}

func writeSynced(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("nginx: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("nginx: %w", err)
	}
	return f.Close()
}

// swap points current to generation gen atomically: a symlink under a
// temporary name renamed over current, so nginx (and a crash) sees the
// old generation or the new one, never none. The link is relative, so it
// resolves the same from the agent and from nginx's container.
func (c *Controller) swap(gen string) error {
	tmp := c.path(".current.tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Join("gen", gen), tmp); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	cur := c.path("current")
	if err := os.Rename(tmp, cur); err != nil {
		// Something else than a link is in the way (a hand-made
		// directory); current is InfraPilot's.
		if fi, lerr := os.Lstat(cur); lerr == nil && fi.Mode()&fs.ModeSymlink == 0 {
			if rerr := os.RemoveAll(cur); rerr == nil {
				err = os.Rename(tmp, cur)
			}
		}
		if err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("nginx: swap: %w", err)
		}
	}
	return nil
}

// unswap removes current (nothing was live before a failed first apply).
func (c *Controller) unswap() { _ = os.Remove(c.path("current")) }

// liveGeneration is the generation current points to ("" if none).
func (c *Controller) liveGeneration() string {
	target, err := os.Readlink(c.path("current"))
	if err != nil {
		return ""
	}
	dir, name := filepath.Split(filepath.Clean(target))
	if filepath.Clean(dir) != "gen" {
		return ""
	}
	return name
}

// prune removes numbered generations but the live one and the newest,
// Keep in all.
func (c *Controller) prune() {
	entries, err := os.ReadDir(c.path("gen"))
	if err != nil {
		return
	}
	var nums []uint64
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "test-") {
			continue // Test removes its own; one may be running
		}
		if n, err := strconv.ParseUint(e.Name(), 10, 64); err == nil {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	live := c.st.Generation
	kept := 0
	for i := len(nums) - 1; i >= 0; i-- {
		name := strconv.FormatUint(nums[i], 10)
		if name == live || kept < c.cfg.Keep {
			kept++
			continue
		}
		if err := os.RemoveAll(c.path("gen", name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.cfg.Log.Warn("nginx: prune", "generation", name, "err", err)
		}
	}
}
