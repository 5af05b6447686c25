package target

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// pprofSource is added to the infrapilot binary the tool builds (through
// go build -overlay, the repository is not touched): with
// LOADTEST_PPROF_ADDR set it serves net/http/pprof on that loopback
// address and writes the address it got to LOADTEST_PPROF_FILE, so that a
// scenario can take a CPU profile of the hub while it is under load.
const pprofSource = `package main

import (
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("LOADTEST_PPROF_ADDR")
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return
	}
	if f := os.Getenv("LOADTEST_PPROF_FILE"); f != "" {
		_ = os.WriteFile(f, []byte(ln.Addr().String()), 0o600)
	}
	go func() { _ = http.Serve(ln, http.DefaultServeMux) }()
}
`

// writePprofOverlay writes the pprof file and the overlay that adds it to
// the package in pkgDir, and returns the overlay's path.
func writePprofOverlay(dir, pkgDir string) (string, error) {
	src := filepath.Join(dir, "zz_loadtest_pprof.go")
	if err := os.WriteFile(src, []byte(pprofSource), 0o644); err != nil {
		return "", err
	}
	b, err := json.Marshal(map[string]map[string]string{
		"Replace": {filepath.Join(pkgDir, "zz_loadtest_pprof.go"): src},
	})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "overlay.json")
	return path, os.WriteFile(path, b, 0o644)
}
