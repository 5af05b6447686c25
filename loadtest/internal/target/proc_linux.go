package target

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts the self-hosted instance in its own process group (a
// Ctrl-C of the tool reaches it only through Close, in order) and asks the
// kernel to interrupt it if the tool dies without Close.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
}

// killGroup kills the instance's whole process group.
func killGroup(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
