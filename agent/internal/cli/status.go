package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/state"
)

func statusCmd(_ context.Context, env Env, args []string) int {
	fset := NewFlagSet(env, "status", "Shows whether the agent runs, its link to the hub and its outbox backlog,\n"+
		"from the status the running agent writes to its state directory. Exit code:\n"+
		"0 running, 3 not running, 1 error.")
	stateDir := StateDirFlag(env, fset)
	asJSON := fset.Bool("json", false, "print the status as JSON")
	if code, ok := Parse(env, fset, args); !ok {
		return code
	}
	if _, err := os.Stat(*stateDir); err != nil {
		fmt.Fprintf(env.Stdout, "enrolled:  no\nrunning:   no (no state directory %s)\n", *stateDir)
		return ExitNotRunning
	}
	dir, err := state.Open(*stateDir)
	if err != nil {
		fmt.Fprintf(env.Stderr, "infrapilot-agent status: %v\n", err)
		return ExitError
	}
	id, idErr := dir.Identity()
	var st state.Status
	stErr := dir.ReadJSON(state.StatusFile, &st)
	running := stErr == nil && !st.Stopped && locked(dir)
	if *asJSON {
		out := map[string]any{"running": running, "enrolled": idErr == nil}
		if stErr == nil {
			out["status"] = st
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(env.Stdout, string(b))
	} else {
		w := env.Stdout
		if idErr != nil {
			fmt.Fprintf(w, "enrolled:  no (%v)\n", idErr)
		} else {
			fmt.Fprintf(w, "enrolled:  agent %s of org %s, hub %s\n", id.AgentID, id.OrgID, id.NATSURL)
		}
		switch {
		case errors.Is(stErr, fs.ErrNotExist):
			fmt.Fprintf(w, "running:   no (never started here)\n")
		case stErr != nil:
			fmt.Fprintf(w, "running:   unknown (%v)\n", stErr)
		default:
			if running {
				fmt.Fprintf(w, "running:   yes, pid %d, version %s, since %s\n", st.PID, st.Version, st.StartedAt.Format(time.RFC3339))
			} else {
				fmt.Fprintf(w, "running:   no (last seen %s)\n", st.UpdatedAt.Format(time.RFC3339))
			}
			link := "down"
			if st.LinkUp {
				link = "up"
			}
			fmt.Fprintf(w, "hub link:  %s\n", link)
			fmt.Fprintf(w, "outbox:    %d pending, %d forwarded, %d duplicates, %d refused\n", st.Pending, st.Forwarded, st.Duplicates, st.Dead)
			engine := st.Engine
			if engine == "" {
				engine = "unreachable: " + st.EngineErr
			}
			fmt.Fprintf(w, "engine:    %s; following %d container logs\n", engine, st.Followed)
			if st.LastError != "" {
				fmt.Fprintf(w, "last error: %s\n", st.LastError)
			}
		}
	}
	if !running {
		return ExitNotRunning
	}
	return ExitOK
}

// locked reports whether an agent holds the state directory's lock.
func locked(dir state.Dir) bool {
	f, err := os.OpenFile(dir.File(state.LockFile), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
