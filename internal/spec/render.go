package spec

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gpufleet/gpufleet/internal/sched"
)

// RenderJob writes a job as the YAML that ParseJob reads back to the same
// value. Fields at their defaults are left out; priorities with a class
// name, sizes and durations are written the way a person would.
//
// The text is written here rather than by the YAML library's encoder, which
// loses trailing whitespace and control characters in strings.
func RenderJob(js JobSpec) ([]byte, error) {
	if err := checkUTF8(&js); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	writeJob(&b, &js)
	return b.Bytes(), nil
}

// RenderJobs writes several jobs as one multi-document file that ParseJobs
// reads back.
func RenderJobs(jobs []JobSpec) ([]byte, error) {
	var b bytes.Buffer
	for i := range jobs {
		if err := checkUTF8(&jobs[i]); err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		writeJob(&b, &jobs[i])
	}
	return b.Bytes(), nil
}

// checkUTF8 refuses strings YAML cannot carry: YAML text is Unicode, so
// bytes that are not UTF-8 would not read back as themselves; and NUL bytes
// in what a process is started with, which ParseJob refuses.
func checkUTF8(js *JobSpec) error {
	bad := func(s string) bool { return !utf8.ValidString(s) }
	j := &js.Job
	fail := bad(string(j.ID)) || bad(j.Tenant) || bad(j.Queue) || bad(j.Tier) || bad(j.Topology.Level)
	for _, g := range j.Gangs {
		fail = fail || bad(g.Name)
		for _, a := range g.Shape.Accel {
			fail = fail || bad(a)
		}
	}
	nul := false
	for _, c := range js.Run.Command {
		fail = fail || bad(c)
		nul = nul || strings.IndexByte(c, 0) >= 0
	}
	for k, v := range js.Run.Env {
		fail = fail || bad(k) || bad(v)
		nul = nul || strings.IndexByte(v, 0) >= 0
	}
	if js.Service != nil {
		fail = fail || bad(js.Service.ReadinessPath)
	}
	if fail {
		return fmt.Errorf("render job %q: a string is not valid UTF-8", j.ID)
	}
	if nul {
		return fmt.Errorf("render job %q: a command argument or environment value holds a NUL byte", j.ID)
	}
	return nil
}

func writeJob(b *bytes.Buffer, js *JobSpec) {
	j := &js.Job
	kv := func(indent, k, v string) { fmt.Fprintf(b, "%s%s: %s\n", indent, k, v) }
	kv("", "name", quote(string(j.ID)))
	if j.Tenant != "" {
		kv("", "tenant", quote(j.Tenant))
	}
	kv("", "queue", quote(j.Queue))
	kv("", "kind", j.Kind.String())
	if c := priorityClass(j.Priority); c == "" {
		kv("", "priority", strconv.Itoa(int(j.Priority)))
	} else if j.Priority != DefaultPriority {
		kv("", "priority", c)
	}
	if j.Tier != "" {
		kv("", "tier", quote(j.Tier))
	}
	if j.Preemptible {
		kv("", "preemptible", "true")
	}
	if j.WaitForCapacity {
		kv("", "waitForCapacity", "true")
	}
	for _, d := range []struct {
		key string
		sec int64
	}{
		{"noticePeriod", j.NoticeSec}, {"checkpointEvery", j.CheckpointSec},
		{"estimatedRuntime", j.EstimatedSec}, {"maxRuntime", j.MaxSec},
	} {
		if d.sec != 0 {
			kv("", d.key, formatDuration(d.sec))
		}
	}
	switch {
	case j.NotBefore > 0 && j.Deadline > 0:
		b.WriteString("window:\n")
		kv("  ", "from", formatTime(j.NotBefore))
		kv("  ", "to", formatTime(j.Deadline))
	case j.Deadline > 0:
		kv("", "deadline", formatTime(j.Deadline))
	}
	if j.Interruptible {
		kv("", "interruptible", "true")
	}
	if j.Topology.Level != "" {
		k := "preferred"
		if j.Topology.Required {
			k = "required"
		}
		b.WriteString("topology:\n")
		kv("  ", k, quote(j.Topology.Level))
	}
	if js.Service != nil && len(j.Gangs) == 1 {
		writeService(b, js.Service, &j.Gangs[0])
	} else {
		b.WriteString("gangs:\n")
		for i := range j.Gangs {
			writeGang(b, &j.Gangs[i])
		}
	}
	run := &js.Run
	if len(run.Command) > 0 {
		b.WriteString("command:\n")
		for _, c := range run.Command {
			fmt.Fprintf(b, "  - %s\n", quote(c))
		}
	}
	if len(run.Env) > 0 {
		keys := make([]string, 0, len(run.Env))
		for k := range run.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("env:\n")
		for _, k := range keys {
			kv("  ", quote(k), quote(run.Env[k]))
		}
	}
	if run.RestartPolicy != "" && run.RestartPolicy != RestartNever {
		kv("", "restartPolicy", quote(run.RestartPolicy))
	}
	if run.MaxRestarts != 0 {
		kv("", "maxRestarts", strconv.Itoa(run.MaxRestarts))
	}
	if run.Resize != "" {
		kv("", "resize", run.Resize)
	}
	if run.Replicas != "" {
		kv("", "replicaPolicy", run.Replicas)
	}
}

func writeGang(b *bytes.Buffer, g *sched.Gang) {
	first := true
	kv := func(k, v string) {
		lead := "    "
		if first {
			lead, first = "  - ", false
		}
		fmt.Fprintf(b, "%s%s: %s\n", lead, k, v)
	}
	if g.Name != "" {
		kv("name", quote(g.Name))
	}
	kv("replicas", strconv.Itoa(g.Replicas))
	if g.MinReplicas != 0 {
		kv("minReplicas", strconv.Itoa(g.MinReplicas))
	}
	r := &g.Shape
	if len(r.Accel) > 0 {
		q := make([]string, len(r.Accel))
		for i, a := range r.Accel {
			q[i] = quote(a)
		}
		if len(q) == 1 {
			kv("accelerators", q[0])
		} else {
			kv("accelerators", "["+strings.Join(q, ", ")+"]")
		}
	}
	if r.Devices > 0 {
		kv("count", strconv.Itoa(r.Devices))
	} else if r.Milli > 0 {
		kv("fraction", formatMilli(int64(r.Milli)))
	}
	if r.CPUMilli != 0 {
		kv("cpu", formatCPU(r.CPUMilli))
	}
	if r.MemoryMiB != 0 {
		kv("memory", formatMemory(r.MemoryMiB))
	}
}

// plain matches strings safe to write unquoted in block and flow context:
// no indicator characters, no leading digit (numbers), no spaces.
var plain = regexp.MustCompile(`^(?:[A-Za-z_/]|-+[A-Za-z])[A-Za-z0-9_./=-]*$`)

// reserved are words YAML reads as something other than a string.
var reserved = map[string]bool{
	"true": true, "false": true, "null": true, "yes": true, "no": true,
	"on": true, "off": true, "y": true, "n": true, "nan": true, "inf": true,
}

// quote writes s as a YAML scalar that reads back as exactly s: plain when
// that is unambiguous, otherwise double-quoted with escapes.
func quote(s string) string {
	if plain.MatchString(s) && !reserved[strings.ToLower(s)] {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case !unicode.IsPrint(r) || r == 0xfeff:
			if r > 0xffff {
				fmt.Fprintf(&b, `\U%08x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
		i += size
	}
	b.WriteByte('"')
	return b.String()
}
