package agent

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Ports of service replicas. Each replica of an inference service gets a
// port of its own from the agent's range (PORT and GPUFLEET_PORT in its
// environment), which it reports in its heartbeat so that the server's
// gateway can reach it: the lowest port of the range that no live replica
// of this agent holds and that nothing else on the machine is bound to at
// that moment. Agents that share a machine (gpufleet up's) get ranges of
// their own.

// DefaultPortRange is the range service replicas' ports are taken from
// (Kubernetes' NodePort range, which operators already keep free).
var DefaultPortRange = PortRange{First: 30000, Last: 32767}

// PortRange is an inclusive range of TCP ports.
type PortRange struct{ First, Last int }

// ParsePortRange reads "FIRST-LAST".
func ParsePortRange(s string) (PortRange, error) {
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.Atoi(strings.TrimSpace(a))
	last, err2 := strconv.Atoi(strings.TrimSpace(b))
	r := PortRange{first, last}
	if !ok || err1 != nil || err2 != nil {
		return r, fmt.Errorf("port range %q: want FIRST-LAST, e.g. 30000-32767", s)
	}
	return r, r.check()
}

func (r PortRange) check() error {
	if r.First < 1024 || r.Last > 65535 || r.First > r.Last {
		return fmt.Errorf("port range %d-%d: want FIRST-LAST within 1024-65535, FIRST at most LAST", r.First, r.Last)
	}
	return nil
}

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// freePort is the lowest port of the range no live replica holds and
// nothing is listening on, or an error when there is none.
func (a *agent) freePort() (int, error) {
	held := map[int]bool{}
	for _, r := range a.replicas {
		if !r.exited() && r.rec.Port > 0 {
			held[r.rec.Port] = true
		}
	}
	pr := a.cfg.Ports
	for p := pr.First; p <= pr.Last; p++ {
		if held[p] || !bindable(p) {
			continue
		}
		return p, nil
	}
	return 0, fmt.Errorf("no free port in %s for the replica (%d held by replicas of this agent)", pr, len(held))
}

// bindable reports whether nothing listens on a port now.
func bindable(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}
