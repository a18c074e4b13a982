//go:build !linux

package agent

import "errors"

// procStat has no portable source outside Linux; without it the agent
// cannot tell a replica from a process that reuses its pid, so it never
// adopts a replica it did not start itself (see docs/AGENT.md).
func procStat(pid int) (procInfo, error) {
	return procInfo{}, errors.New("process identity needs /proc (Linux)")
}

func parseProcStat(b []byte) (procInfo, error) { return procStat(0) }

// markedProcesses needs /proc: elsewhere the agent finds no process its
// predecessor started without recording it.
func markedProcesses(prefix string) ([]markedProc, error) { return nil, nil }

const procIdentity = false
