package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// The state dir holds, per replica, a record (replicas/NAME.json) and the
// replica's output (logs/NAME.log), plus agent.lock so that two agents never
// share one dir. NAME is keyName of the replica's key.
const (
	replicasDir = "replicas"
	logsDir     = "logs"
	lockFile    = "agent.lock"
)

// Replica states on the wire.
const (
	StateRunning = "running"
	StateExited  = "exited"
)

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
	State      string         `json:"state"` // StateRunning or StateExited
	ExitCode   int            `json:"exitCode"`
	Signal     string         `json:"signal,omitempty"`
	Shipped    int64          `json:"shipped"` // log bytes the server has taken
	Acked      bool           `json:"acked,omitempty"`
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

// stateDir is the agent's directory on disk.
type stateDir struct {
	root string
	lock *os.File
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
	return &stateDir{root: root, lock: f}, nil
}

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
