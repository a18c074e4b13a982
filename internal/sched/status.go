package sched

import (
	"fmt"
	"strings"

	"github.com/gpufleet/gpufleet/internal/quota"
)

// Code classifies what stopped (or did not stop) a job's admission or
// placement, in the way the Kubernetes scheduler framework's Status
// separates "does not fit" from "not allowed": every attempt ends in one,
// and the plain-words reason a person reads is built from it.
type Code uint8

const (
	// Fits: the job was placed.
	Fits Code = iota
	// NotTried: no cycle has tried the job since it became pending.
	NotTried
	// NoCapacity: the fleet has no room for the job now (see Room).
	NoCapacity
	// OverQuota: a queue on the job's path refuses (Quota).
	OverQuota
	// NoFlavor: no queue of the tree has quota for the flavor asked.
	NoFlavor
	// AwaitingVictims: jobs preempted for this one are releasing their
	// resources by At.
	AwaitingVictims
	// StrictHead: the job's queue is strict FIFO and its head (Holder)
	// cannot start.
	StrictHead
	// Requeued: the job ran and was put back (Detail says why); when it
	// was preempted, it may start again from At.
	Requeued
	// Preempting: the job is being preempted (Detail says for whom) and
	// stops by At.
	Preempting
	// Impossible: no node or domain of the fleet could ever hold the job
	// (Detail says which resource is short and the most the fleet has).
	Impossible
	// Unschedulable: Impossible, for a job that asked to wait for the fleet
	// to grow (Job.WaitForCapacity).
	Unschedulable
	// Paused: admission to the job's queue is paused (AdmissionPaused;
	// Detail says why).
	Paused
	// PowerCapped: room is free, but starting the job would take a site
	// (Domain) over its power cap (PowerKW drawn of CapKW; NeedKW more
	// for one replica).
	PowerCapped
	// Deferred: the job waits for a window: its own (Shift ShiftWindow,
	// opening at At), or the cleanest one the carbon forecast shows before
	// its deadline Until (ShiftDeferred, starting at At, or ShiftSuspended
	// between two runs), with its capacity held for it.
	Deferred
)

var codeNames = [...]string{"fits", "not-tried", "no-capacity", "over-quota", "no-flavor", "awaiting-victims",
	"strict-head", "requeued", "preempting", "impossible", "unschedulable", "paused", "power-capped", "deferred"}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", c)
}

// CodeNames lists every code's name (metrics label them by it).
func CodeNames() []string { return append([]string(nil), codeNames[:]...) }

// Room says why the fleet could not hold a job, in figures.
type Room int8

const (
	// RoomShort: fewer accelerators of the type are free than it needs.
	RoomShort Room = iota
	// RoomScattered: enough are free, but no node has a replica's worth
	// together.
	RoomScattered
	// RoomHostResources: nodes have the accelerators together, but not
	// the CPU or memory a replica asks beside them.
	RoomHostResources
	// RoomHeld: enough are free, but a backfill reservation holds them for
	// a job (Holder) that waits longer.
	RoomHeld
	// RoomDomain: no domain of the job's required topology level has room
	// (Domain is the best one).
	RoomDomain
	// RoomFraction: no device has the milli a fractional replica asks.
	RoomFraction
	// RoomHost: a CPU-only job finds no node with its CPU and memory.
	RoomHost
	// RoomNode: (Impossible) no node of the fleet could hold one replica;
	// RoomFleet: not all of the job's replicas, even on an empty fleet.
	RoomNode
	RoomFleet
)

// Shift says what a deferred job waits for.
type Shift uint8

const (
	// ShiftDeferred: admitted, its start moved to a cleaner window.
	ShiftDeferred Shift = iota
	// ShiftWindow: its own window (Job.NotBefore) has not opened.
	ShiftWindow
	// ShiftSuspended: suspended at a checkpoint between two clean runs.
	ShiftSuspended
)

// Status is the outcome of one attempt to admit and place a job, with the
// figures its reason is made of.
type Status struct {
	Code Code
	Room Room
	// What a capacity failure is about: replicas of Devices accelerators
	// (or Milli of one) of Type, with CPUMilli and MemoryMiB each; Free is
	// what is free where it looked, Most the most on one node.
	Replicas, Devices int
	Milli             int32
	CPUMilli          int64
	MemoryMiB         int64
	Type              string
	Free, Most        int
	// Level and Domain name the required topology and its best domain.
	Level, Domain string
	// Holder is the job a reservation keeps capacity for, or the head of a
	// strict queue; HeldUntil when that reservation starts.
	Holder    JobID
	HeldUntil int64
	// Quota is the queue tree's refusal (OverQuota); Flavor the flavor
	// without quota (NoFlavor).
	Quota  *quota.Refusal
	Flavor string
	// At is a time the reason names: when victims release (AwaitingVictims),
	// when a preempted job may start again (Requeued), when a preempted
	// job stops (Preempting).
	At int64
	// Count is how many victims are awaited, or how many times a requeued
	// job was preempted.
	Count int
	// Detail is the cause of a requeue or preemption, in plain words; the
	// best node of an impossible job.
	Detail string
	// PreemptAt, when set, is when the job may start preempting
	// (Config.PreemptAfterSec): it waits for room on its own until then.
	// NoPreempt, when set, says why preemption cannot help it.
	PreemptAt int64
	NoPreempt string
	// PowerKW is what the site Domain draws or has committed, CapKW its
	// cap and NeedKW what one more replica would add (PowerCapped), all
	// of facility power when Facility is set, else of IT power.
	PowerKW, CapKW, NeedKW float64
	Facility               bool
	// Shift, Until, Intensity and IntensityNow describe a deferral: what
	// it waits for, the deadline, and the forecast mean carbon intensity
	// (gCO2/kWh) of its planned run and of a run started now. Count is
	// the clean runs left of an interruptible job's plan.
	Shift                   Shift
	Until                   int64
	Intensity, IntensityNow float64
}

// OK reports whether the job was placed.
func (s *Status) OK() bool { return s.Code == Fits }

// capacity reports whether the failure is one of capacity (and not of
// quota): the failures a backfill reservation can plan for. A power cap
// is one: work that ends gives back power as it gives back devices.
func (s *Status) capacity() bool { return s.Code == NoCapacity || s.Code == PowerCapped }

// TimeFormat renders one of the core's times (seconds) for people.
type TimeFormat func(t int64) string

// Virtual renders times as the core counts them: "t=120".
func Virtual(t int64) string { return fmt.Sprintf("t=%d", t) }

// Reason is the status in plain words, times rendered by virtual time.
func (s Status) Reason() string { return s.Text(nil) }

// Text is the status in plain words; tf renders times (nil: Virtual).
func (s Status) Text(tf TimeFormat) string {
	if tf == nil {
		tf = Virtual
	}
	var b strings.Builder
	switch s.Code {
	case Fits:
	case NotTried:
		b.WriteString("waiting for the next scheduling cycle")
	case NoCapacity:
		s.roomText(&b, tf)
	case OverQuota:
		if s.Quota != nil {
			b.WriteString(s.Quota.Text())
		}
	case NoFlavor:
		fmt.Fprintf(&b, "no queue has quota for flavor %s", s.Flavor)
	case AwaitingVictims:
		if s.Count == 1 {
			fmt.Fprintf(&b, "waiting for the job preempted for it to release its resources by %s", tf(s.At))
		} else {
			fmt.Fprintf(&b, "waiting for the %s preempted for it to release their resources by %s", count(s.Count, "job"), tf(s.At))
		}
	case StrictHead:
		fmt.Fprintf(&b, "queue %s is strict FIFO and its head %s cannot start", s.Detail, s.Holder)
	case Requeued:
		b.WriteString("requeued: " + s.Detail)
		if s.Count > 0 {
			fmt.Fprintf(&b, "; preempted %s, may start again from %s", count(s.Count, "time"), tf(s.At))
		}
	case Preempting, Paused:
		b.WriteString(s.Detail)
	case Impossible, Unschedulable:
		s.impossibleText(&b)
		if s.Code == Unschedulable {
			b.WriteString("; it waits until the fleet can hold it")
		}
	case PowerCapped:
		kind := "IT"
		if s.Facility {
			kind = "facility"
		}
		fmt.Fprintf(&b, "site %s is at its power cap: %.1f of %.1f kW of %s power drawn or committed, and one more replica needs %.1f kW",
			s.Domain, s.PowerKW, s.CapKW, kind, s.NeedKW)
	case Deferred:
		s.deferredText(&b, tf)
	}
	if s.PreemptAt > 0 {
		if s.NoPreempt != "" {
			fmt.Fprintf(&b, "; preemption cannot help: %s", s.NoPreempt)
		} else {
			fmt.Fprintf(&b, "; waits for room on its own until %s, then may preempt", tf(s.PreemptAt))
		}
	} else if s.NoPreempt != "" {
		fmt.Fprintf(&b, "; preemption cannot help: %s", s.NoPreempt)
	}
	return b.String()
}

// count writes n with its noun, singular or plural.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func (s *Status) what() string {
	acc := s.Type
	if acc == "" {
		acc = "accelerator"
	}
	return acc
}

func (s *Status) roomText(b *strings.Builder, tf TimeFormat) {
	held := ""
	if s.Holder != "" && s.Room != RoomHeld {
		held = fmt.Sprintf(" (some free capacity is held until %s for %s, which waits longer)", tf(s.HeldUntil), s.Holder)
	}
	need := s.Replicas * s.Devices
	switch s.Room {
	case RoomHost:
		fmt.Fprintf(b, "needs %s with cpu %dm and memory %dMi; no schedulable node has that CPU and memory free",
			count(s.Replicas, "replica"), s.CPUMilli, s.MemoryMiB)
	case RoomFraction:
		if s.Most > 0 {
			// Devices with the milli exist; the host is short.
			fmt.Fprintf(b, "needs %d milli of one %s (%s); devices with that much free are on nodes without cpu %dm and memory %dMi free",
				s.Milli, s.what(), count(s.Replicas, "replica"), s.CPUMilli, s.MemoryMiB)
		} else {
			fmt.Fprintf(b, "needs %d milli of one %s (%s); no schedulable %s device has that much free",
				s.Milli, s.what(), count(s.Replicas, "replica"), s.what())
		}
	case RoomDomain:
		if s.Domain == "" {
			fmt.Fprintf(b, "needs %d %s in one %s; the fleet has no %s", need, s.what(), s.Level, s.Level)
		} else {
			fmt.Fprintf(b, "needs %d %s in one %s; the best %s (%s) has %d free", need, s.what(), s.Level, s.Level, s.Domain, s.Free)
		}
	case RoomHeld:
		fmt.Fprintf(b, "needs %d x %d %s; %d are free, but held for %s's backfill reservation at %s, which this job would delay",
			s.Replicas, s.Devices, s.what(), s.Free, s.Holder, tf(s.HeldUntil))
	case RoomScattered:
		fmt.Fprintf(b, "needs %d x %d %s; %d %s are free but no node has %d free together (the most on one node is %d)",
			s.Replicas, s.Devices, s.what(), s.Free, s.what(), s.Devices, s.Most)
	case RoomHostResources:
		fmt.Fprintf(b, "needs %d x %d %s; %d %s are free, but not on nodes that also have cpu %dm and memory %dMi free per replica",
			s.Replicas, s.Devices, s.what(), s.Free, s.what(), s.CPUMilli, s.MemoryMiB)
	default:
		fmt.Fprintf(b, "needs %d %s (%d x %d); the fleet has %d free", need, s.what(), s.Replicas, s.Devices, s.Free)
	}
	b.WriteString(held)
}

func (s *Status) impossibleText(b *strings.Builder) { b.WriteString(s.Detail) }

func (s *Status) deferredText(b *strings.Builder, tf TimeFormat) {
	deadline := ""
	if s.Until > 0 {
		deadline = " before its deadline " + tf(s.Until)
	}
	switch s.Shift {
	case ShiftWindow:
		fmt.Fprintf(b, "waits for its window, which opens at %s", tf(s.At))
		if s.Until > 0 {
			fmt.Fprintf(b, " (deadline %s)", tf(s.Until))
		}
		return
	case ShiftSuspended:
		fmt.Fprintf(b, "suspended at a checkpoint until its next clean window at %s (%s left%s); its capacity on %s is held for it",
			tf(s.At), count(s.Count, "run"), deadline, s.Domain)
	default:
		fmt.Fprintf(b, "deferred to the cleanest window%s: starts at %s on %s", deadline, tf(s.At), s.Domain)
		if s.Count > 1 {
			fmt.Fprintf(b, ", in %s", count(s.Count, "run"))
		}
		b.WriteString("; its capacity is held for it")
	}
	if s.Intensity > 0 || s.IntensityNow > 0 {
		fmt.Fprintf(b, " (forecast %.1f gCO2/kWh over its run, %.1f if it ran now)", s.Intensity, s.IntensityNow)
	}
}
