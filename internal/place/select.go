package place

// Preparer is implemented by scorers that work something out once per
// placement decision (a per-request table, a tie-break draw) before the
// decision's choices are scored. Select calls Prepare before the first Score.
type Preparer interface {
	Prepare(r *Request)
}

// Select places one replica of r on the best of nodes under s: it
// enumerates the same choices as Choices, node by node, scores each and
// keeps the highest. Equal scores go to the lowest node index, then to the
// lowest device index, so the outcome depends on the inputs alone; scorers
// that want random tie-breaking draw it themselves from their Env.Rand.
//
// buf is scratch space that a caller placing many replicas may pass back in
// to save allocations; the returned Choice never aliases it. The bool is
// false when no node can take the replica.
func Select(nodes []*Node, r *Request, s Scorer, buf []Choice) (Choice, bool) {
	if p, ok := s.(Preparer); ok {
		p.Prepare(r)
	}
	return Choose(nodes, r, s, buf)
}

// Choose is Select for a scorer already prepared for this decision: a
// caller that asked a Ranked scorer for keys, or kept Local scores, hands
// the nodes left in the running to Choose, which draws nothing new.
func Choose(nodes []*Node, r *Request, s Scorer, buf []Choice) (Choice, bool) {
	var (
		found     bool
		bestScore float64
		bestNode  int
		bestDev   int
		bestMilli int32
		bestDevs  []int
	)
	for _, n := range nodes {
		if !Fits(n, r) {
			continue
		}
		buf = appendChoices(n, r, buf[:0])
		for i := range buf {
			c := &buf[i]
			sc := s.Score(n, r, *c)
			dev := firstDevice(c)
			if found {
				switch {
				case sc > bestScore:
				case sc == bestScore && (n.Index < bestNode || n.Index == bestNode && dev < bestDev):
				default:
					continue
				}
			}
			found = true
			bestScore, bestNode, bestDev, bestMilli = sc, n.Index, dev, c.Milli
			bestDevs = append(bestDevs[:0], c.Devices...)
		}
	}
	if !found {
		return Choice{}, false
	}
	out := Choice{Node: bestNode, Milli: bestMilli}
	if len(bestDevs) > 0 {
		out.Devices = append([]int(nil), bestDevs...)
	}
	return out, true
}

func firstDevice(c *Choice) int {
	if len(c.Devices) == 0 {
		return -1
	}
	return c.Devices[0]
}

// appendChoices appends the choices that Choices lists for r on n, reusing
// the device slices that buf holds beyond its length, so a caller that
// passes the same buffer back in allocates nothing once it has grown.
func appendChoices(n *Node, r *Request, buf []Choice) []Choice {
	if !Fits(n, r) {
		return buf
	}
	next := func() *Choice {
		if len(buf) < cap(buf) {
			buf = buf[:len(buf)+1]
		} else {
			buf = append(buf, Choice{})
		}
		c := &buf[len(buf)-1]
		c.Node, c.Milli, c.Devices = n.Index, 0, c.Devices[:0]
		return c
	}
	switch {
	case r.Devices > 0:
		c := next()
		c.Milli = Whole
		for i, f := range n.Free {
			if f == Whole {
				c.Devices = append(c.Devices, i)
				if len(c.Devices) == r.Devices {
					break
				}
			}
		}
	case r.Milli > 0:
	devices:
		for i, f := range n.Free {
			if f < r.Milli {
				continue
			}
			for _, g := range n.Free[:i] {
				if g == f {
					continue devices // a lower device with as much free stands for it
				}
			}
			{
				c := next()
				c.Milli = r.Milli
				c.Devices = append(c.Devices, i)
			}
		}
	default:
		next().Devices = nil
	}
	return buf
}
