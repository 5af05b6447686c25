//go:build !linux

package target

import (
	"os/exec"
	"syscall"
)

// sysProcAttr is the default elsewhere: the instance shares the tool's
// process group.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// killGroup kills the instance's process.
func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
