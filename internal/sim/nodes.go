package sim

import (
	"fmt"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// NodeEventKind is what happens to the fleet at a node event.
type NodeEventKind uint8

const (
	// NodeAdd delivers a node: it joins the fleet, ready, at the event's
	// time.
	NodeAdd NodeEventKind = iota + 1
	// NodeRetire takes a node out of service: it takes no new work from
	// the event's time on, lets what runs on it finish, and leaves the
	// fleet once it is empty.
	NodeRetire
)

var nodeEventNames = map[NodeEventKind]string{NodeAdd: "add", NodeRetire: "retire"}

func (k NodeEventKind) String() string {
	if s, ok := nodeEventNames[k]; ok {
		return s
	}
	return fmt.Sprintf("NodeEventKind(%d)", k)
}

// NodeEvent changes the fleet during a run: the fleet as it grows and
// shrinks, for capacity plans and for replays of a live fleet's history.
type NodeEvent struct {
	// At is the virtual time of the event, in seconds.
	At   int64
	Kind NodeEventKind
	// Node is the node delivered (NodeAdd), or names the node retired
	// (NodeRetire: only Name is read).
	Node fleet.Node
}

// queueNodeEvents checks the node events of the configuration and puts
// them on the clock.
func (e *engine) queueNodeEvents() error {
	for i, ev := range e.cfg.NodeEvents {
		switch {
		case ev.At < 0:
			return fmt.Errorf("node events[%d] (%s %s): at %d must not be negative", i, ev.Kind, ev.Node.Name, ev.At)
		case ev.Node.Name == "":
			return fmt.Errorf("node events[%d]: the node has no name", i)
		case ev.Kind != NodeAdd && ev.Kind != NodeRetire:
			return fmt.Errorf("node events[%d] (%s): kind %s, want add or retire", i, ev.Node.Name, ev.Kind)
		}
		kind := evNodeAdd
		if ev.Kind == NodeRetire {
			kind = evNodeRetire
		} else {
			// A delivery still to come may let waiting jobs start: the
			// run must not end before it, as it would not before a repair.
			e.adds++
		}
		e.q.push(event{t: ev.At, kind: kind, job: int32(i)})
	}
	return nil
}

// addNode gives the engine its record of a fleet node: power class,
// capacity, speed; and counts its capacity when it is up.
func (e *engine) addNode(cat *fleet.Catalog, n *fleet.Node) int32 {
	pue := DefaultPUE
	if e.cfg.PUE != nil {
		if p := e.cfg.PUE(n); p > 0 {
			pue = p
		}
	}
	ni := nodeInfo{name: n.Name, up: n.State == fleet.Ready, speed: 1, class: -1}
	if n.Count > 0 {
		t := cat.Types[cat.Index(n.Accel)]
		key := classKey{n.Accel, pue}
		k, ok := e.classOf[key]
		if !ok {
			k = int32(len(e.classes))
			e.classOf[key] = k
			e.classes = append(e.classes, powerClass{accel: n.Accel, idleW: t.IdlePowerW, busyW: t.BoardPowerW - t.IdlePowerW, pue: pue})
		}
		ni.class = k
		ni.cap = int64(n.Count) * 1000
		if t.RelSpeed > 0 {
			ni.speed = t.RelSpeed
		}
	}
	idx := int32(len(e.nodes))
	e.nodeByName[n.Name] = idx
	e.nodes = append(e.nodes, ni)
	if ni.up {
		e.capUp += ni.cap
		e.freeEmpty += ni.cap
		if ni.class >= 0 {
			e.classes[ni.class].upAccels += int64(n.Count)
		}
	}
	return idx
}

// classKey identifies a power class: an accelerator type at one PUE.
type classKey struct {
	accel string
	pue   float64
}

// deliver adds a node to the core and to the engine's books.
func (e *engine) deliver(i int) error {
	e.adds--
	n := e.cfg.NodeEvents[i].Node
	n.State = fleet.Ready
	if _, err := e.core.Apply(sched.NodeAdded{Node: n}); err != nil {
		return fmt.Errorf("node events[%d] (add %s at %d): %w", i, n.Name, e.now, err)
	}
	e.addNode(e.catalog, &n)
	e.dirty = true
	return nil
}

// retire cordons a node in the core; the engine takes it out of the fleet
// at once if it is empty, else when its last replica leaves (see take).
func (e *engine) retire(i int) error {
	name := e.cfg.NodeEvents[i].Node.Name
	ni, ok := e.nodeByName[name]
	if !ok {
		return fmt.Errorf("node events[%d] (retire %s at %d): the node is not in the fleet", i, name, e.now)
	}
	n := &e.nodes[ni]
	if n.retiring {
		return fmt.Errorf("node events[%d] (retire %s at %d): the node is already retired", i, name, e.now)
	}
	if err := e.apply(sched.NodeCordoned{Node: name}); err != nil {
		return fmt.Errorf("node events[%d] (retire %s at %d): %w", i, name, e.now, err)
	}
	n.retiring = true
	if n.used == 0 {
		e.remove(ni)
	}
	return nil
}

// remove takes an empty retiring node out of the fleet's capacity for good.
func (e *engine) remove(ni int32) {
	e.setUp(ni, false)
	e.nodes[ni].gone = true
}
