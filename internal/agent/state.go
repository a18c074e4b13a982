package agent

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// The state dir holds, per replica, a record (replicas/NAME.json) and the
// replica's output (logs/NAME.log), plus agent.lock so that two agents never
// share one dir, and agent.id, the marker this dir's agents put in the
// environment of every replica they start. NAME is keyName of the
// replica's key.
const (
	replicasDir = "replicas"
	logsDir     = "logs"
	lockFile    = "agent.lock"
	idFile      = "agent.id"
)

// Replica states on the wire.
const (
	StateRunning = "running"
	StateExited  = "exited"
)

// stateStarting is a record's state from just before its process is
// started until its pid is recorded; it never goes on the wire. An agent
// that finds one after a restart was killed in between, and looks for the
// process by its marker.
const stateStarting = "starting"

// MarkerEnv is the variable that marks a replica's processes as started by
// the agent of one state dir: its value is the dir's agent ID, a '/', and
// the replica's NAME. Children inherit it, so a restarted agent finds
// every process its predecessor started, recorded or not.
const MarkerEnv = "GPUFLEET_AGENT_REPLICA"

// SignalLost is reported, with exit code -1, for a replica whose process
// ended while no agent watched it (the agent was down or restarted): its exit
// status went to another parent and is unknown.
const SignalLost = "lost"

// record is what the agent keeps on disk about one replica so that a
// restarted agent can adopt it or report how it ended.
type record struct {
	Key        api.ReplicaKey `json:"key"`
	Command    []string       `json:"command"`
	PID        int            `json:"pid"`
	PGID       int            `json:"pgid"`
	StartTicks uint64         `json:"startTicks"` // /proc/PID/stat starttime: the pid's identity
	StartedAt  time.Time      `json:"startedAt"`
	LogPath    string         `json:"logPath"`
	State      string         `json:"state"` // stateStarting, StateRunning or StateExited
	ExitCode   int            `json:"exitCode"`
	Signal     string         `json:"signal,omitempty"`
	Shipped    int64          `json:"shipped"` // log bytes the server has taken
	Acked      bool           `json:"acked,omitempty"`
	// Devices and Milli are the devices the replica was started on and
	// its milli of each (0: whole devices): no other replica is started on
	// them while its process lives.
	Devices []int `json:"devices,omitempty"`
	Milli   int32 `json:"milli,omitempty"`
	// MemberGen is 1 + the membership generation last written to the
	// replica's membership file (a resizable gang); 0 when none was.
	MemberGen int `json:"memberGen,omitempty"`
	// Port is a service replica's port, ReadinessPath what is probed on
	// it (see readiness.go): kept so that an agent that adopts the
	// replica goes on probing it.
	Port          int    `json:"port,omitempty"`
	ReadinessPath string `json:"readinessPath,omitempty"`
}

// keyName turns a replica key into a file name that is unique per key: the
// job name with every byte outside [A-Za-z0-9_-] escaped as %XX, then a
// fixed-shape suffix. Over-long job names are cut and completed by a hash.
func keyName(k api.ReplicaKey) string {
	var b strings.Builder
	for i := 0; i < len(k.Job); i++ {
		c := k.Job[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	job := b.String()
	if len(job) > 160 {
		sum := sha256.Sum256([]byte(k.Job))
		job = job[:120] + "~" + hex.EncodeToString(sum[:8])
	}
	return fmt.Sprintf("%s_g%d_r%d_a%d", job, k.Gang, k.Replica, k.Attempt)
}

var keyNameRE = regexp.MustCompile(`^(.*)_g([0-9]+)_r([0-9]+)_a([0-9]+)$`)

// parseKeyName reads a replica key back from its NAME, when the name holds
// the whole job name (names cut and hashed do not).
func parseKeyName(name string) (api.ReplicaKey, bool) {
	m := keyNameRE.FindStringSubmatch(name)
	if m == nil {
		return api.ReplicaKey{}, false
	}
	var job strings.Builder
	for i := 0; i < len(m[1]); i++ {
		c := m[1][i]
		if c == '%' && i+2 < len(m[1]) {
			if b, err := hex.DecodeString(m[1][i+1 : i+3]); err == nil {
				job.WriteByte(b[0])
				i += 2
				continue
			}
		}
		job.WriteByte(c)
	}
	var k api.ReplicaKey
	var err error
	k.Job = job.String()
	if k.Gang, err = strconv.Atoi(m[2]); err != nil {
		return k, false
	}
	if k.Replica, err = strconv.Atoi(m[3]); err != nil {
		return k, false
	}
	if k.Attempt, err = strconv.Atoi(m[4]); err != nil {
		return k, false
	}
	return k, keyName(k) == name
}

// membershipPath is where a replica's membership file lives.
func (d *stateDir) membershipPath(k api.ReplicaKey) string {
	return filepath.Join(d.root, replicasDir, keyName(k)+".membership.json")
}

// writeMembership replaces a replica's membership file whole: written
// aside, then renamed over the old one, so a reader sees one or the other.
func (d *stateDir) writeMembership(k api.ReplicaKey, ms *api.Membership) error {
	data, err := json.MarshalIndent(ms, "", "  ")
	if err != nil {
		return err
	}
	p := d.membershipPath(k)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// stateDir is the agent's directory on disk.
type stateDir struct {
	root string
	lock *os.File
	// id tells this dir's replicas from those of other agents on the
	// machine (several agents may share one, as gpufleet up's do).
	id string
}

// openStateDir creates the layout and takes the lock, failing when another
// agent holds it.
func openStateDir(root string) (*stateDir, error) {
	for _, d := range []string{root, filepath.Join(root, replicasDir), filepath.Join(root, logsDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
	}
	f, err := os.OpenFile(filepath.Join(root, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("state dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state dir %s is in use by another agent (%s is locked)", root, lockFile)
		}
		return nil, fmt.Errorf("state dir lock: %w", err)
	}
	_ = f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	id, err := agentID(root)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &stateDir{root: root, lock: f, id: id}, nil
}

// agentID reads the dir's agent ID, making one the first time.
func agentID(root string) (string, error) {
	p := filepath.Join(root, idFile)
	if b, err := os.ReadFile(p); err == nil {
		if id := strings.TrimSpace(string(b)); len(id) == 32 && !strings.ContainsAny(id, "/ \t") {
			return id, nil
		}
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("state dir: agent id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("state dir: agent id: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("state dir: agent id: %w", err)
	}
	return id, nil
}

// marker is the value of MarkerEnv for a replica of this dir.
func (s *stateDir) marker(name string) string { return s.id + "/" + name }

func (s *stateDir) close() error { return s.lock.Close() }

func (s *stateDir) recordPath(name string) string {
	return filepath.Join(s.root, replicasDir, name+".json")
}

func (s *stateDir) logPath(name string) string { return filepath.Join(s.root, logsDir, name+".log") }

// save writes a record atomically (temp file, rename). It does not fsync:
// the record must survive the agent's death, which the page cache does; a
// crash of the machine takes the replicas with it.
func (s *stateDir) save(r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	p := s.recordPath(keyName(r.Key))
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save replica record: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("save replica record: %w", err)
	}
	return nil
}

func (s *stateDir) remove(k api.ReplicaKey) error {
	err := os.Remove(s.recordPath(keyName(k)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// load reads every record; unreadable ones are returned as errors beside
// the good ones so that one bad file does not hide the others.
func (s *stateDir) load() ([]*record, []error) {
	dir := filepath.Join(s.root, replicasDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("read state dir: %w", err)}
	}
	var recs []*record
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			errs = append(errs, fmt.Errorf("replica record %s: %w", name, err))
			continue
		}
		if keyName(r.Key)+".json" != name {
			errs = append(errs, fmt.Errorf("replica record %s: holds key %+v of another file name", name, r.Key))
			continue
		}
		recs = append(recs, &r)
	}
	sort.Slice(recs, func(i, j int) bool { return keyName(recs[i].Key) < keyName(recs[j].Key) })
	return recs, errs
}
