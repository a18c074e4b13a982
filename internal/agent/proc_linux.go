package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// procStat reads what the agent needs from /proc/PID/stat: the start time
// in clock ticks since boot (the identity of a pid: a recycled pid has
// another start time), the process group and the state letter.
func procStat(pid int) (procInfo, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) {
		return procInfo{}, errNoProcess
	}
	if err != nil {
		return procInfo{}, err
	}
	return parseProcStat(b)
}

// parseProcStat reads a /proc/PID/stat line. The command name sits in
// parentheses and may hold spaces and parentheses itself, so the fields are
// counted from the last ')'.
func parseProcStat(b []byte) (procInfo, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procInfo{}, fmt.Errorf("proc stat %q: no ')' after the command name", clip(s))
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), f[2] field 5 (pgrp), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return procInfo{}, fmt.Errorf("proc stat %q: too few fields", clip(s))
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procInfo{}, fmt.Errorf("proc stat: pgrp %q: %w", f[2], err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procInfo{}, fmt.Errorf("proc stat: starttime %q: %w", f[19], err)
	}
	return procInfo{State: f[0][0], PGrp: pgrp, StartTicks: start}, nil
}

const procIdentity = true

// markedProcesses lists the live processes whose environment holds
// MarkerEnv with a value that starts with prefix: the processes of the
// replicas an agent of one state dir started, and their children. A
// process whose environment cannot be read (another user's) is not one of
// them: replicas run as the agent's user.
func markedProcesses(prefix string) ([]markedProc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	want := []byte(MarkerEnv + "=" + prefix)
	var out []markedProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if !bytes.HasPrefix(kv, want) {
				continue
			}
			p, err := procStat(pid)
			if err != nil || p.exited() {
				break
			}
			out = append(out, markedProc{PID: pid, PGrp: p.PGrp, StartTicks: p.StartTicks, Name: string(kv[len(want):]), Env: env})
			break
		}
	}
	return out, nil
}
