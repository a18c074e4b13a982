package ledger

import (
	"fmt"
	"sort"
)

// Sample is a device's utilization as its agent read it (nvidia-smi's
// utilization.gpu), in percent. Device -1 is a reading for the whole node,
// used for records that do not say which devices they hold and for devices
// with no reading of their own.
//
// A sample holds from its time until the next sample of the same device,
// or for the ledger's sample TTL when none comes; a device with no sample
// in force counts as fully used (100%). Samples of a node must come in
// time order and before usage on the node is metered past them.
type Sample struct {
	Node    string
	Device  int
	AtMs    int64
	Percent int
}

// utilSeries is one device's utilization: a step function with its
// running integral, pruned at the seal.
type utilSeries struct {
	t    []int64
	u    []int64 // percent
	pre  []int64 // integral of u from t[0] to t[i], percent x ms
	last int64   // time of the newest sample (merged samples move it)
}

func (s *utilSeries) push(at, pct int64) {
	n := len(s.t)
	if n > 0 && s.u[n-1] == pct {
		return
	}
	p := int64(0)
	if n > 0 {
		p = s.pre[n-1] + s.u[n-1]*(at-s.t[n-1])
	}
	s.t = append(s.t, at)
	s.u = append(s.u, pct)
	s.pre = append(s.pre, p)
}

// add appends a sample at or after the newest.
func (s *utilSeries) add(at, pct, ttl int64) error {
	if len(s.t) == 0 {
		s.push(at, pct)
		s.last = at
		return nil
	}
	if at < s.last {
		return fmt.Errorf("is older than the newest sample of the device (%s); want samples in time order", FormatTime(s.last))
	}
	if at == s.last {
		if s.u[len(s.u)-1] == pct {
			return nil
		}
		return fmt.Errorf("the device already has a sample of %d%% at this time", s.u[len(s.u)-1])
	}
	if at-s.last > ttl {
		// The reading before expired: full use from then until now.
		s.push(s.last+ttl, 100)
	}
	s.push(at, pct)
	s.last = at
	return nil
}

// integral returns the integral of utilization from t[0] to x (negative
// before t[0], where the device counts as fully used).
func (s *utilSeries) integral(x, ttl int64) int64 {
	if x < s.t[0] {
		return 100 * (x - s.t[0])
	}
	i := sort.Search(len(s.t), func(i int) bool { return s.t[i] > x }) - 1
	if i < len(s.t)-1 {
		return s.pre[i] + s.u[i]*(x-s.t[i])
	}
	end := s.last + ttl
	if x <= end {
		return s.pre[i] + s.u[i]*(x-s.t[i])
	}
	return s.pre[i] + s.u[i]*(end-s.t[i]) + 100*(x-end)
}

// prune drops points wholly before t, keeping the one in force at t; the
// integral between any times after t is unchanged.
func (s *utilSeries) prune(t int64) {
	i := sort.Search(len(s.t), func(i int) bool { return s.t[i] > t }) - 1
	if i <= 0 {
		return
	}
	s.t = append(s.t[:0:0], s.t[i:]...)
	s.u = append(s.u[:0:0], s.u[i:]...)
	s.pre = append(s.pre[:0:0], s.pre[i:]...)
}

// nodeInfo is what the ledger knows of a node: how far usage on it is
// metered, and its devices' utilization.
type nodeInfo struct {
	horizon int64
	wide    *utilSeries
	dev     []*utilSeries
}

// series returns the utilization of device d (or the node's when d has
// none of its own), nil for none.
func (n *nodeInfo) series(d int) *utilSeries {
	if d >= 0 && d < len(n.dev) && n.dev[d] != nil {
		return n.dev[d]
	}
	return n.wide
}

func (n *nodeInfo) hasSamples() bool { return n.wide != nil || len(n.dev) > 0 }

// maxSampleDevice bounds device indexes (a DeviceMask has 64 bits).
const maxSampleDevice = 63

// Sample records a utilization sample. It is refused (ErrLate) when usage
// on the node has been metered past its time, since that usage was
// metered without it.
func (l *Ledger) Sample(s Sample) error {
	if s.Node == "" || len(s.Node) > maxField {
		return fmt.Errorf("sample: node: must be 1..%d bytes", maxField)
	}
	if s.Device < -1 || s.Device > maxSampleDevice {
		return fmt.Errorf("sample for node %q: device %d: want 0..%d, or -1 for the whole node", s.Node, s.Device, maxSampleDevice)
	}
	if s.Percent < 0 || s.Percent > 100 {
		return fmt.Errorf("sample for node %q: percent %d: want 0..100", s.Node, s.Percent)
	}
	if s.AtMs < 0 || s.AtMs > maxTimeMs {
		return fmt.Errorf("sample for node %q: atMs %d: want a Unix time in milliseconds", s.Node, s.AtMs)
	}
	if s.AtMs < l.sealed {
		return fmt.Errorf("sample for node %q at %s: %w (%s)", s.Node, FormatTime(s.AtMs), ErrSealed, FormatTime(l.sealed))
	}
	n := l.node(s.Node)
	if s.AtMs < n.horizon {
		return fmt.Errorf("sample for node %q at %s: %w (up to %s)", s.Node, FormatTime(s.AtMs), ErrLate, FormatTime(n.horizon))
	}
	var dst **utilSeries
	if s.Device < 0 {
		dst = &n.wide
	} else {
		for len(n.dev) <= s.Device {
			n.dev = append(n.dev, nil)
		}
		dst = &n.dev[s.Device]
	}
	if *dst == nil {
		*dst = &utilSeries{}
	}
	if err := (*dst).add(s.AtMs, int64(s.Percent), l.ttl); err != nil {
		return fmt.Errorf("sample for node %q device %d at %s: %v", s.Node, s.Device, FormatTime(s.AtMs), err)
	}
	return nil
}

// PruneSamples forgets utilization readings before t, which metering no
// longer needs once every record on their nodes is metered past t: a
// driver that takes samples every few seconds calls it, say, hourly with
// t an hour behind its horizon, so that memory holds an hour of readings
// rather than a month's. The reading in force at t is kept; before it a
// device counts as fully used, so usage before t fed afterwards (a record
// that arrives late, or a close earlier than t, which would be cut back
// with readings that are gone) is metered as fully used: prune only
// behind what the driver may still feed. Seal prunes at the seal.
func (l *Ledger) PruneSamples(t int64) { l.pruneSamples(t) }

func (l *Ledger) pruneSamples(t int64) {
	for i := range l.nodeInf {
		n := &l.nodeInf[i]
		if n.wide != nil {
			n.wide.prune(t)
		}
		for _, d := range n.dev {
			if d != nil {
				d.prune(t)
			}
		}
	}
}
