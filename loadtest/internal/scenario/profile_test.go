package scenario

import (
	"os"
	"strings"
	"testing"
)

// TestSummarizeTop reads a real `go tool pprof -top` output of the hub
// (testdata/pprof-top.txt, the first rows of a 30 s api run's) and checks that the flat CPU
// is summed by area, largest first.
func TestSummarizeTop(t *testing.T) {
	b, err := os.ReadFile("testdata/pprof-top.txt")
	if err != nil {
		t.Fatal(err)
	}
	got := summarizeTop(string(b), 5)
	t.Log(got)
	// The rows are cut after 190 of them: shares stay of all 25.72 s.
	for _, want := range []string{"flat CPU by area: syscalls 28%, ", "encoding/json 1", "[Duration: 30s"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
}

func TestPprofArea(t *testing.T) {
	for fn, want := range map[string]string{
		"github.com/nats-io/nats-server/v2/server.(*client).processInboundClientMsg": "nats-server",
		"internal/runtime/syscall/linux.Syscall6":                                    "syscalls",
		"runtime.scanobject":                "go GC",
		"encoding/json.(*decodeState).skip": "encoding/json",
		"github.com/google/uuid.NewV7":      "github.com/google/uuid",
		"sync.(*Mutex).Lock":                "sync",
	} {
		if got := pprofArea(fn); got != want {
			t.Errorf("pprofArea(%q) = %q, want %q", fn, got, want)
		}
	}
}
