package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// procInfo is the identity and liveness of one process.
type procInfo struct {
	State      byte // R, S, D, Z, ...; Z and X mean the process has exited
	PGrp       int
	StartTicks uint64
}

var errNoProcess = errors.New("no such process")

// markedProc is a live process that carries a replica's marker.
type markedProc struct {
	PID, PGrp  int
	StartTicks uint64
	// Name is the replica's NAME, as the marker gives it.
	Name string
	// Env is the process's environment as the kernel keeps it
	// (NUL-separated).
	Env []byte
}

func (p procInfo) exited() bool { return p.State == 'Z' || p.State == 'X' || p.State == 'x' }

// alive tells whether pid still is the process that started at startTicks
// and has not exited.
func alive(pid int, startTicks uint64) bool {
	p, err := procStat(pid)
	return err == nil && p.StartTicks == startTicks && !p.exited()
}

// signalGroup sends sig to the process group led by pgid, which was started
// at startTicks, unless the pid has since been reused: when /proc shows a
// process of that pid with another start time, the group is someone else's.
// When the leader is gone the group may still hold its children; Linux does
// not hand out a pid that is still a live group's id, so signalling the group
// then reaches only them. ESRCH (nobody left) is not an error.
func signalGroup(pgid int, startTicks uint64, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pgid)
	}
	p, err := procStat(pgid)
	switch {
	case errors.Is(err, errNoProcess):
	case err != nil:
		return fmt.Errorf("check process %d before %s: %w", pgid, signalName(sig), err)
	case p.StartTicks != startTicks:
		return fmt.Errorf("process %d was replaced by another process (start time %d, want %d): not signalling", pgid, p.StartTicks, startTicks)
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s to process group %d: %w", signalName(sig), pgid, err)
	}
	return nil
}

// signalName gives the conventional name, e.g. "SIGTERM".
func signalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("SIG%d", int(sig))
}

// waitStatus turns a process's wait status into the protocol's exit code
// and signal name.
func waitStatus(ws syscall.WaitStatus) (code int, signal string) {
	if ws.Signaled() {
		return -1, signalName(ws.Signal())
	}
	return ws.ExitStatus(), ""
}

// lookPath finds a command in the PATH the replica will run with, not the
// agent's own.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return name, executable(name)
	}
	for dir := range strings.SplitSeq(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in PATH %q", name, path)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}
