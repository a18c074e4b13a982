// Package agent is the node agent: it declares a node's inventory to the
// server, runs the replicas the server assigns as process groups, ships
// their output, reports how they end and stops what the server no longer
// wants. A small record per replica in the state dir lets a restarted agent
// adopt the replicas its predecessor left running.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// Config is everything one agent needs. Run does not probe the machine:
// fill Inventory with Discover first, or give it outright.
type Config struct {
	Server  string // base URL of the server, e.g. http://10.0.0.1:8080
	Token   string // bearer token (a node token or an admin's)
	Name    string // node name
	Address string // host the node's replicas are reachable at (MASTER_ADDR)

	Inventory Inventory
	Path      map[string]string // topology level -> domain name
	Labels    map[string]string

	StateDir string        // replica records and logs; required
	Interval time.Duration // heartbeat interval until the server says otherwise; default 2s

	// StopGrace is how long a replica the server no longer lists gets
	// between SIGTERM and SIGKILL; default 5s.
	StopGrace time.Duration
	// MaxBackoff bounds the wait between tries while the server is away;
	// default 30s.
	MaxBackoff time.Duration
	// LogChunkBytes bounds the output sent per replica per heartbeat
	// (default 64 KiB), MaxLogBytes all output per heartbeat (default 1 MiB).
	LogChunkBytes int
	MaxLogBytes   int

	// LogRetention is how long the log of a forgotten replica (its end
	// reported, acknowledged and its output shipped) stays in the state
	// dir; default 72h, negative keeps logs forever.
	LogRetention time.Duration

	// WorkDir is the replicas' working directory; "" keeps the agent's.
	WorkDir string
	// BaseEnv is the environment every replica starts from, before the
	// assignment's own variables; nil means PATH, HOME and LANG taken from
	// the agent's environment (PATH and LANG with defaults).
	BaseEnv map[string]string
	// StopReplicasOnExit makes Run stop its replicas (SIGTERM, SIGKILL after
	// StopGrace) when ctx ends. By default they keep running, to be adopted
	// by the next agent on this state dir.
	StopReplicasOnExit bool

	// Ports is the range service replicas' ports come from (default
	// DefaultPortRange).
	Ports PortRange
	// ProbeInterval is how often a service replica's readiness path is
	// asked (default 1s), ProbeTimeout how long one probe may take
	// (default 1s).
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration

	// Utilization, when set, reads the devices' utilization for the
	// server's energy meter; it is called before each heartbeat, on the
	// goroutine that sends it, one call at a time, and may return nothing
	// (NvidiaSMIUtilization reads every UtilizationEvery). An error is
	// logged and the heartbeat goes without readings.
	Utilization func(ctx context.Context, now time.Time) ([]api.DeviceUtilization, error)

	HTTPClient *http.Client // default: 10s timeout
	Logger     *slog.Logger // default: discard
}

// NodeInfo is what the agent registers.
func (c *Config) NodeInfo() api.NodeInfo {
	accel := c.Inventory.Accel
	if accel == "none" {
		accel = ""
	}
	return api.NodeInfo{
		Name:      c.Name,
		Address:   c.Address,
		Path:      c.Path,
		Accel:     accel,
		Count:     c.Inventory.Count,
		CPUMilli:  c.Inventory.CPUMilli,
		MemoryMiB: c.Inventory.MemoryMiB,
		Labels:    c.Labels,
	}
}

func (c *Config) validate() error {
	switch {
	case c.Server == "":
		return errors.New("agent: server URL is empty")
	case c.Name == "":
		return errors.New("agent: node name is empty")
	case c.StateDir == "":
		return errors.New("agent: state dir is empty")
	case c.Inventory.Count < 0:
		return fmt.Errorf("agent: accelerator count %d is negative", c.Inventory.Count)
	case c.Inventory.Count > 0 && (c.Inventory.Accel == "" || c.Inventory.Accel == "none"):
		return fmt.Errorf("agent: %d accelerators of no type", c.Inventory.Count)
	}
	if c.Ports != (PortRange{}) {
		if err := c.Ports.check(); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	return nil
}

func (c *Config) defaults() {
	if c.Interval <= 0 {
		c.Interval = 2 * time.Second
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 5 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.LogChunkBytes <= 0 {
		c.LogChunkBytes = 64 << 10
	}
	if c.MaxLogBytes <= 0 {
		c.MaxLogBytes = 1 << 20
	}
	if c.MaxLogBytes < c.LogChunkBytes {
		c.MaxLogBytes = c.LogChunkBytes
	}
	if c.LogRetention == 0 {
		c.LogRetention = 72 * time.Hour
	}
	if c.Ports == (PortRange{}) {
		c.Ports = DefaultPortRange
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = time.Second
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.BaseEnv == nil {
		c.BaseEnv = map[string]string{
			"PATH": envOr("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
			"LANG": envOr("LANG", "C.UTF-8"),
		}
		if h := os.Getenv("HOME"); h != "" {
			c.BaseEnv["HOME"] = h
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Run registers the node and keeps it in step with the server until ctx
// ends: it heartbeats, starts and stops replicas and ships their output. It
// returns nil when ctx ends, or an error when the agent cannot work at all
// (bad config, state dir locked, the server refusing the node or token).
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	cfg.defaults()
	sd, err := openStateDir(cfg.StateDir)
	if err != nil {
		return err
	}
	defer func() { _ = sd.close() }()
	a := &agent{
		cfg:        cfg,
		log:        cfg.Logger,
		dir:        sd,
		cl:         &client{base: cfg.Server, token: cfg.Token, http: cfg.HTTPClient},
		replicas:   map[string]*replica{},
		tombstones: map[api.ReplicaKey]time.Time{},
		waiting:    map[string]string{},
		notify:     make(chan struct{}, 1),
		interval:   cfg.Interval,
		ctx:        ctx,
		probes:     map[string]context.CancelFunc{},
		ready:      map[string]bool{},
	}
	a.adopt()
	for _, name := range a.sortedNames() {
		if r := a.replicas[name]; !r.exited() {
			a.startProbe(name, r)
		}
	}
	return a.loop(ctx)
}

// replica is the agent's view of one replica process group.
type replica struct {
	rec      record
	own      bool // started by this agent: its exit status comes from Wait
	deadline time.Time
	termSent bool
	killSent bool
	inflight int64 // end of the log bytes in the heartbeat in flight
}

func (r *replica) exited() bool { return r.rec.State == StateExited }

type exitEvent struct {
	name   string
	code   int
	signal string
}

type agent struct {
	cfg Config
	log *slog.Logger
	dir *stateDir
	cl  *client

	replicas   map[string]*replica // by keyName
	tombstones map[api.ReplicaKey]time.Time
	// waiting names, per replica waiting to start, the replica whose
	// devices it waits for (logged once per holder).
	waiting    map[string]string
	interval   time.Duration
	registered bool
	fails      int
	rotate     int       // where the log budget starts, for fairness
	nextGC     time.Time // next sweep of old logs

	// ctx ends with Run; probes are the readiness probes of service
	// replicas, by name.
	ctx    context.Context
	probes map[string]context.CancelFunc

	mu     sync.Mutex
	exits  []exitEvent // filled by the Wait goroutines
	ready  map[string]bool
	notify chan struct{}
}

// tombstoneTTL is how long the agent remembers replicas it reported and
// forgot, so that a stale Run list cannot start the same attempt twice.
const tombstoneTTL = 10 * time.Minute

// minInterval bounds the heartbeat interval a server may ask for.
const minInterval = 10 * time.Millisecond

// pollEvery is how often replicas the agent adopted (and cannot Wait for)
// are checked for exit.
const pollEvery = 250 * time.Millisecond

// adopt loads the records a previous agent left and decides, per replica,
// whether its process still runs. It also looks for every process a
// previous agent of this state dir started, by the marker in their
// environment: one started just before that agent was killed has a record
// without a pid, or (had the record been lost) none; it is adopted all the
// same, so that nobody is left running on devices the server hands on.
// What is left of a replica that is over is killed, as the agent would
// have done had it seen the replica end.
func (a *agent) adopt() {
	recs, errs := a.dir.load()
	for _, err := range errs {
		a.log.Warn("skipping replica record", "err", err)
	}
	marked, err := markedProcesses(a.dir.id + "/")
	if err != nil {
		a.log.Warn("cannot look for the replicas' processes", "err", err)
	}
	byName := map[string][]markedProc{}
	for _, p := range marked {
		byName[p.Name] = append(byName[p.Name], p)
	}
	for _, rec := range recs {
		name := keyName(rec.Key)
		r := &replica{rec: *rec}
		a.replicas[name] = r
		procs := byName[name]
		delete(byName, name)
		switch rec.State {
		case StateRunning:
			if procIdentity && alive(rec.PID, rec.StartTicks) {
				a.log.Info("adopted running replica", "replica", name, "pid", rec.PID)
				continue
			}
			a.lost(r, "replica ended while no agent watched it; exit status unknown")
		case stateStarting:
			if lead, ok := leaderOf(procs); ok {
				r.rec.PID, r.rec.PGID, r.rec.StartTicks, r.rec.State = lead.PID, lead.PID, lead.StartTicks, StateRunning
				if len(r.rec.Devices) == 0 {
					r.rec.Devices, r.rec.Milli = procDevices(procs)
				}
				a.save(r)
				a.log.Warn("adopted a replica started just before the last agent stopped, which had not recorded its pid", "replica", name, "pid", lead.PID)
				continue
			}
			a.lost(r, "replica was being started when the last agent stopped and is not running; exit status unknown")
		}
		a.killLeftovers(name, procs)
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		procs := byName[name]
		k, known := parseKeyName(name)
		lead, running := leaderOf(procs)
		if !known || !running {
			a.killLeftovers(name, procs)
			continue
		}
		devs, milli := procDevices(procs)
		r := &replica{rec: record{Key: k, PID: lead.PID, PGID: lead.PID, StartTicks: lead.StartTicks,
			StartedAt: time.Now().UTC(), LogPath: a.dir.logPath(name), State: StateRunning, Devices: devs, Milli: milli}}
		a.replicas[name] = r
		a.save(r)
		a.log.Warn("adopted a running replica that had no record", "replica", name, "pid", lead.PID)
	}
}

// lost records that a replica ended unseen.
func (a *agent) lost(r *replica, why string) {
	r.rec.State, r.rec.ExitCode, r.rec.Signal = StateExited, -1, SignalLost
	a.log.Warn(why, "replica", keyName(r.rec.Key), "pid", r.rec.PID)
	a.save(r)
}

// leaderOf finds the process group leader of a replica among its marked
// processes: the earliest started that leads its own group, or else the
// live leader of the group they are in (its environment may have been
// replaced).
func leaderOf(procs []markedProc) (markedProc, bool) {
	var best markedProc
	found := false
	for _, p := range procs {
		if p.PID == p.PGrp && (!found || p.StartTicks < best.StartTicks) {
			best, found = p, true
		}
	}
	if found {
		return best, true
	}
	for _, p := range procs {
		if lp, err := procStat(p.PGrp); err == nil && !lp.exited() && lp.PGrp == p.PGrp {
			return markedProc{PID: p.PGrp, PGrp: p.PGrp, StartTicks: lp.StartTicks, Name: p.Name}, true
		}
	}
	return markedProc{}, false
}

// killLeftovers ends the processes of a replica that is over: a replica
// ends with its leader.
func (a *agent) killLeftovers(name string, procs []markedProc) {
	for _, p := range procs {
		if q, err := procStat(p.PID); err != nil || q.StartTicks != p.StartTicks || q.exited() {
			continue
		}
		if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			a.log.Warn("cannot kill what is left of a replica", "replica", name, "pid", p.PID, "err", err)
			continue
		}
		a.log.Warn("killed a process left of a replica that is over", "replica", name, "pid", p.PID)
	}
}

func (a *agent) save(r *replica) {
	if err := a.dir.save(&r.rec); err != nil {
		a.log.Error("cannot save replica record", "replica", keyName(r.rec.Key), "err", err)
	}
}

type exchangeResult struct {
	resp       *api.HeartbeatResponse
	registered bool
	err        error
}

func (a *agent) loop(ctx context.Context) error {
	var (
		results  = make(chan exchangeResult, 1)
		inflight bool
		next     = time.Now()
		timer    = time.NewTimer(0)
	)
	defer timer.Stop()
	for {
		now := time.Now()
		a.collectExits()
		a.pollAdopted()
		a.enforceDeadlines(now)
		if !now.Before(a.nextGC) {
			a.sweepLogs(now)
			a.nextGC = now.Add(time.Hour)
		}
		if !inflight && !now.Before(next) {
			req := a.buildRequest()
			inflight = true
			registered := a.registered
			go func() {
				results <- a.exchange(ctx, registered, req)
			}()
		}
		wake := a.nextWake(now, next, inflight)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wake)
		select {
		case <-ctx.Done():
			if inflight {
				<-results
			}
			a.shutdown()
			return nil
		case <-a.notify:
			// Report an exit at once rather than at the next tick.
			if !inflight {
				next = time.Now()
			}
		case <-timer.C:
		case res := <-results:
			inflight = false
			if err := a.handle(res); err != nil {
				if ctx.Err() != nil {
					a.shutdown()
					return nil
				}
				if se := (*statusError)(nil); errors.As(err, &se) && se.permanent() && !a.registered {
					a.shutdown()
					return fmt.Errorf("agent %s: server refused the node: %w", a.cfg.Name, err)
				}
				a.fails++
				d := a.backoff()
				a.log.Warn("server unreachable; replicas keep running", "err", err, "retry_in", d)
				next = time.Now().Add(d)
				continue
			}
			a.fails = 0
			next = time.Now().Add(a.interval)
		}
	}
}

// backoff doubles the wait per failed try up to MaxBackoff, with a fifth of
// jitter so that a fleet of agents does not return in step.
func (a *agent) backoff() time.Duration {
	d := a.interval
	for i := 1; i < a.fails && d < a.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, a.cfg.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

func (a *agent) nextWake(now, next time.Time, inflight bool) time.Duration {
	wake := time.Hour
	if !inflight {
		wake = next.Sub(now)
	}
	for _, r := range a.replicas {
		if r.exited() {
			continue
		}
		if !r.own {
			wake = min(wake, pollEvery)
		}
		if r.termSent && !r.killSent {
			wake = min(wake, r.deadline.Sub(now))
		}
	}
	return max(wake, time.Millisecond)
}

// exchange registers when needed and sends one heartbeat, with the
// devices' utilization when Config.Utilization reads it. It runs on its
// own goroutine and touches no agent state.
func (a *agent) exchange(ctx context.Context, registered bool, req *api.HeartbeatRequest) exchangeResult {
	if !registered {
		if err := a.cl.register(ctx, a.cfg.NodeInfo()); err != nil {
			return exchangeResult{err: err}
		}
	}
	if a.cfg.Utilization != nil {
		us, err := a.cfg.Utilization(ctx, time.Now())
		if err != nil {
			a.log.Warn("cannot read the devices' utilization", "err", err)
		}
		req.Utilization = us
	}
	resp, err := a.cl.heartbeat(ctx, req)
	return exchangeResult{resp: resp, registered: true, err: err}
}

// buildRequest reports every replica and reads the log bytes not yet
// taken, bounded per replica and per heartbeat.
func (a *agent) buildRequest() *api.HeartbeatRequest {
	req := &api.HeartbeatRequest{Node: a.cfg.Name, Replicas: []api.ReplicaStatus{}}
	budget := a.cfg.MaxLogBytes
	names := a.sortedNames()
	// Start the log budget at a different replica each time so that a few
	// chatty replicas cannot starve the others' output.
	if len(names) > 0 {
		a.rotate = (a.rotate + 1) % len(names)
		names = append(names[a.rotate:], names[:a.rotate]...)
	}
	for _, name := range names {
		r := a.replicas[name]
		r.inflight = r.rec.Shipped
		st := api.ReplicaStatus{ReplicaKey: r.rec.Key, State: r.rec.State, PID: r.rec.PID, Devices: r.rec.Devices, Milli: r.rec.Milli}
		if r.exited() {
			st.ExitCode, st.Signal = r.rec.ExitCode, r.rec.Signal
		} else {
			st.Port, st.Ready = r.rec.Port, a.isReady(name)
		}
		if !r.rec.Acked {
			req.Replicas = append(req.Replicas, st)
		}
		if budget <= 0 {
			continue
		}
		data, err := readChunk(r.rec.LogPath, r.rec.Shipped, min(a.cfg.LogChunkBytes, budget))
		if err != nil {
			a.log.Warn("cannot read replica log", "replica", name, "err", err)
			continue
		}
		if len(data) > 0 {
			req.Logs = append(req.Logs, api.LogChunk{ReplicaKey: r.rec.Key, Offset: r.rec.Shipped, Data: data})
			r.inflight = r.rec.Shipped + int64(len(data))
			budget -= len(data)
		}
	}
	return req
}

func readChunk(path string, off int64, n int) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:m], nil
}

func (a *agent) sortedNames() []string {
	names := make([]string, 0, len(a.replicas))
	for n := range a.replicas {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// handle applies one exchange's outcome: log offsets the server took, then
// the desired state.
func (a *agent) handle(res exchangeResult) error {
	if res.registered && !a.registered {
		a.registered = true
		a.log.Info("registered", "node", a.cfg.Name, "server", a.cfg.Server)
	}
	if res.err != nil {
		if se := (*statusError)(nil); errors.As(res.err, &se) && se.code == http.StatusNotFound && res.registered {
			// The server does not know the node (it lost its state, or
			// dropped the node): register again on the next try.
			a.registered = false
		}
		return res.err
	}
	for _, r := range a.replicas {
		if r.inflight > r.rec.Shipped {
			r.rec.Shipped = r.inflight
			a.save(r)
		}
	}
	a.apply(res.resp, time.Now())
	return nil
}

// apply carries out the server's desired state: acks, stop orders, starts,
// and the stop of anything the server no longer lists.
func (a *agent) apply(resp *api.HeartbeatResponse, now time.Time) {
	if resp.IntervalMillis > 0 {
		a.interval = max(time.Duration(resp.IntervalMillis)*time.Millisecond, minInterval)
	}
	for _, k := range resp.Ack {
		if r := a.replicas[keyName(k)]; r != nil && r.exited() && !r.rec.Acked {
			r.rec.Acked = true
			a.save(r)
		}
	}
	wanted := map[string]bool{}
	for _, s := range resp.Stop {
		name := keyName(s.ReplicaKey)
		wanted[name] = true
		if r := a.replicas[name]; r != nil && !r.exited() {
			a.stop(r, time.UnixMilli(s.DeadlineUnixMilli), "stop order")
		}
	}
	for _, as := range resp.Run {
		name := keyName(as.ReplicaKey)
		wanted[name] = true
		if r := a.replicas[name]; r != nil {
			// Running: adopt; exited: reported until acked, never rerun.
			a.member(r, as.Membership)
			continue
		}
		if _, gone := a.tombstones[as.ReplicaKey]; gone {
			a.log.Warn("server lists a replica that already ended; not starting it again", "replica", name)
			continue
		}
		devs, milli := assignedDevices(as)
		if who := a.holder(devs, milli); who != "" {
			// A device is never handed to a new replica while an old
			// process still holds it: the server keeps listing it, and it
			// starts once the other is gone.
			if a.waiting[name] != who {
				a.log.Info("replica waits for its devices", "replica", name, "held by", who)
				a.waiting[name] = who
			}
			continue
		}
		delete(a.waiting, name)
		a.start(as)
	}
	for name, r := range a.replicas {
		if !wanted[name] && !r.exited() {
			a.stop(r, now.Add(a.cfg.StopGrace), "not wanted by the server")
		}
	}
	// Forget replicas whose end the server recorded and whose output it has.
	for name, r := range a.replicas {
		if !r.rec.Acked {
			continue
		}
		if fi, err := os.Stat(r.rec.LogPath); err == nil && fi.Size() > r.rec.Shipped {
			continue
		}
		if err := a.dir.remove(r.rec.Key); err != nil {
			a.log.Error("cannot remove replica record", "replica", name, "err", err)
			continue
		}
		delete(a.replicas, name)
		a.tombstones[r.rec.Key] = now
	}
	for k, t := range a.tombstones {
		if now.Sub(t) > tombstoneTTL {
			delete(a.tombstones, k)
		}
	}
}

// sweepLogs removes the logs of replicas the agent no longer keeps a record
// of once they are older than LogRetention.
func (a *agent) sweepLogs(now time.Time) {
	if a.cfg.LogRetention < 0 {
		return
	}
	keep := map[string]bool{}
	for _, r := range a.replicas {
		keep[r.rec.LogPath] = true
	}
	dir := filepath.Join(a.dir.root, logsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		a.log.Warn("cannot sweep logs", "err", err)
		return
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		fi, err := e.Info()
		if err != nil || keep[p] || !strings.HasSuffix(e.Name(), ".log") || now.Sub(fi.ModTime()) < a.cfg.LogRetention {
			continue
		}
		if err := os.Remove(p); err != nil {
			a.log.Warn("cannot remove old log", "log", p, "err", err)
		}
	}
}

// replicaEnv is the base environment overlaid with the assignment's.
func (a *agent) replicaEnv(as api.Assignment) []string {
	env := make(map[string]string, len(a.cfg.BaseEnv)+len(as.Env))
	for k, v := range a.cfg.BaseEnv {
		env[k] = v
	}
	for k, v := range as.Env {
		env[k] = v
	}
	if as.Membership != nil {
		env["GPUFLEET_MEMBERSHIP_FILE"] = a.dir.membershipPath(as.ReplicaKey)
	}
	// The marker comes last: an assignment cannot set it.
	env[MarkerEnv] = a.dir.marker(keyName(as.ReplicaKey))
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// afterStart, when set (by tests), runs between a replica's start and the
// record of its pid: the moment an agent killed then leaves a process its
// record does not name.
var afterStart func()

// start launches one replica as its own process group, its output going to
// its log file. Its record is written first, then the process started:
// an agent killed in between leaves a record that says a start was under
// way, and a process whose environment says whose it is (see adopt). A
// replica that cannot start is reported exited with code 127, the reason
// written to its log.
func (a *agent) start(as api.Assignment) {
	name := keyName(as.ReplicaKey)
	devs, milli := assignedDevices(as)
	r := &replica{own: true, rec: record{
		Key:       as.ReplicaKey,
		Command:   as.Command,
		StartedAt: time.Now().UTC(),
		LogPath:   a.dir.logPath(name),
		State:     stateStarting,
		Devices:   devs,
		Milli:     milli,
	}}
	a.member(r, as.Membership)
	a.replicas[name] = r
	if as.Service != nil {
		port := as.Service.Port
		if port == 0 {
			p, err := a.freePort()
			if err != nil {
				a.failStart(r, err, nil)
				return
			}
			port = p
		}
		r.rec.Port, r.rec.ReadinessPath = port, as.Service.ReadinessPath
		env := make(map[string]string, len(as.Env)+2)
		for k, v := range as.Env {
			env[k] = v
		}
		env["PORT"], env["GPUFLEET_PORT"] = strconv.Itoa(port), strconv.Itoa(port)
		as.Env = env
	}
	if err := a.dir.save(&r.rec); err != nil {
		// Unrecorded, a process could outlive this agent unknown to the
		// next: it is not started.
		a.failStart(r, fmt.Errorf("cannot record the replica before starting it: %w", err), nil)
		return
	}
	logf, err := os.OpenFile(r.rec.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		r.rec.LogPath = ""
		a.failStart(r, fmt.Errorf("open log: %w", err), nil)
		return
	}
	defer logf.Close()
	if len(as.Command) == 0 {
		a.failStart(r, errors.New("assignment has an empty command"), logf)
		return
	}
	env := a.replicaEnv(as)
	pathEnv := a.cfg.BaseEnv["PATH"]
	if p, ok := as.Env["PATH"]; ok {
		pathEnv = p
	}
	bin, err := lookPath(as.Command[0], pathEnv)
	if err != nil {
		a.failStart(r, err, logf)
		return
	}
	cmd := &exec.Cmd{
		Path:        bin,
		Args:        as.Command,
		Env:         env,
		Dir:         a.cfg.WorkDir,
		Stdout:      logf,
		Stderr:      logf,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		a.failStart(r, err, logf)
		return
	}
	if afterStart != nil {
		afterStart()
	}
	pid := cmd.Process.Pid
	r.rec.PID, r.rec.PGID, r.rec.State = pid, pid, StateRunning
	if procIdentity {
		// The child cannot be reaped before Wait below, so its /proc entry
		// is there even if it has already exited.
		if p, err := procStat(pid); err == nil {
			r.rec.StartTicks = p.StartTicks
		} else {
			a.log.Warn("cannot read the replica's start time", "replica", name, "err", err)
		}
	}
	a.save(r)
	a.log.Info("started replica", "replica", name, "pid", pid, "command", as.Command)
	go a.wait(name, cmd, pid, r.rec.StartTicks)
	a.startProbe(name, r)
}

// wait reaps one replica, then kills what is left of its process group: a
// replica ends with its leader.
func (a *agent) wait(name string, cmd *exec.Cmd, pgid int, startTicks uint64) {
	err := cmd.Wait()
	ev := exitEvent{name: name}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			ev.code, ev.signal = waitStatus(ws)
		} else {
			ev.code = ee.ExitCode()
		}
	default:
		ev.code, ev.signal = -1, SignalLost
	}
	if procIdentity {
		_ = signalGroup(pgid, startTicks, syscall.SIGKILL)
	}
	a.mu.Lock()
	a.exits = append(a.exits, ev)
	a.mu.Unlock()
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

func (a *agent) failStart(r *replica, err error, logf *os.File) {
	name := keyName(r.rec.Key)
	a.log.Error("cannot start replica", "replica", name, "err", err)
	if logf != nil {
		fmt.Fprintf(logf, "gpufleet agent: cannot start replica: %v\n", err)
	}
	r.own = false
	r.rec.State, r.rec.ExitCode = StateExited, 127
	a.save(r)
}

func (a *agent) collectExits() {
	a.mu.Lock()
	evs := a.exits
	a.exits = nil
	a.mu.Unlock()
	for _, ev := range evs {
		r := a.replicas[ev.name]
		if r == nil || r.exited() {
			continue
		}
		r.rec.State, r.rec.ExitCode, r.rec.Signal = StateExited, ev.code, ev.signal
		a.save(r)
		a.stopProbe(ev.name)
		a.log.Info("replica exited", "replica", ev.name, "code", ev.code, "signal", ev.signal)
	}
}

// pollAdopted checks the replicas a previous agent started: they are not
// this agent's children, so their exit status is lost and only their end
// can be seen.
func (a *agent) pollAdopted() {
	for name, r := range a.replicas {
		if r.own || r.exited() || alive(r.rec.PID, r.rec.StartTicks) {
			continue
		}
		r.rec.State, r.rec.ExitCode, r.rec.Signal = StateExited, -1, SignalLost
		a.save(r)
		a.stopProbe(name)
		a.log.Info("adopted replica ended; exit status unknown", "replica", name, "pid", r.rec.PID)
	}
}

// stop sends SIGTERM to the replica's group now (once) and arranges SIGKILL
// at the deadline; a later, earlier deadline wins.
func (a *agent) stop(r *replica, deadline time.Time, why string) {
	if !r.termSent {
		r.termSent = true
		r.deadline = deadline
		a.log.Info("stopping replica", "replica", keyName(r.rec.Key), "why", why, "deadline", deadline)
		a.signal(r, syscall.SIGTERM)
		return
	}
	if deadline.Before(r.deadline) {
		r.deadline = deadline
	}
}

func (a *agent) enforceDeadlines(now time.Time) {
	for _, r := range a.replicas {
		if r.termSent && !r.killSent && !r.exited() && !now.Before(r.deadline) {
			r.killSent = true
			a.log.Info("deadline passed; killing replica", "replica", keyName(r.rec.Key))
			a.signal(r, syscall.SIGKILL)
		}
	}
}

func (a *agent) signal(r *replica, sig syscall.Signal) {
	var err error
	switch {
	case procIdentity:
		err = signalGroup(r.rec.PGID, r.rec.StartTicks, sig)
	case r.own:
		// Without /proc the pid of a child not yet seen to exit is still
		// this agent's (an unreaped child keeps it).
		err = syscall.Kill(-r.rec.PGID, sig)
	default:
		err = errors.New("cannot verify the process identity on this platform")
	}
	if err != nil {
		a.log.Warn("cannot signal replica", "replica", keyName(r.rec.Key), "signal", signalName(sig), "err", err)
	}
}

// shutdown leaves the replicas running for the next agent, or stops them
// when the config asks.
func (a *agent) shutdown() {
	if !a.cfg.StopReplicasOnExit {
		return
	}
	now := time.Now()
	for _, r := range a.replicas {
		if !r.exited() {
			a.stop(r, now.Add(a.cfg.StopGrace), "agent exiting")
		}
	}
	end := now.Add(a.cfg.StopGrace + 2*time.Second)
	for time.Now().Before(end) {
		a.collectExits()
		a.pollAdopted()
		a.enforceDeadlines(time.Now())
		running := false
		for _, r := range a.replicas {
			running = running || !r.exited()
		}
		if !running {
			return
		}
		select {
		case <-a.notify:
		case <-time.After(20 * time.Millisecond):
		}
	}
	a.log.Warn("replicas still running after the agent's stop grace")
}

// assignedDevices reads the devices an assignment gives its replica and
// the milli of each (0 for whole devices) from its environment.
func assignedDevices(as api.Assignment) ([]int, int32) {
	return parseDevices(as.Env["CUDA_VISIBLE_DEVICES"], as.Env["GPUFLEET_GPU_MILLI"])
}

func parseDevices(list, milli string) ([]int, int32) {
	var devs []int
	for _, f := range strings.Split(list, ",") {
		if d, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && d >= 0 {
			devs = append(devs, d)
		}
	}
	m, err := strconv.Atoi(milli)
	if err != nil || m <= 0 || m >= 1000 {
		m = 0
	}
	return devs, int32(m)
}

// holder names a live replica beside which the given devices would be
// overbooked, or "" when they are free: a whole device is free of every
// other replica; fractions fit beside each other up to 1000 milli.
func (a *agent) holder(devs []int, milli int32) string {
	want := milli
	if want == 0 {
		want = 1000
	}
	for _, d := range devs {
		var used int32
		who := ""
		for _, name := range a.sortedNames() {
			r := a.replicas[name]
			if r.exited() || !slices.Contains(r.rec.Devices, d) {
				continue
			}
			if r.rec.Milli == 0 {
				used += 1000
			} else {
				used += r.rec.Milli
			}
			who = name
		}
		if used+want > 1000 {
			return who
		}
	}
	return ""
}

// member keeps a resizable gang's membership file up to date: written
// whole, atomically (a replica reading it sees the old or the new), each
// time the generation moves.
func (a *agent) member(r *replica, ms *api.Membership) {
	if ms == nil || r.rec.MemberGen == ms.Generation+1 {
		return
	}
	if err := a.dir.writeMembership(r.rec.Key, ms); err != nil {
		a.log.Warn("cannot write the membership file", "replica", keyName(r.rec.Key), "err", err)
		return
	}
	r.rec.MemberGen = ms.Generation + 1
	if r.rec.PID != 0 || r.exited() {
		a.save(r)
	}
}

// procDevices reads the devices a replica's processes were started with
// from their environment (CUDA_VISIBLE_DEVICES, GPUFLEET_GPU_MILLI).
func procDevices(procs []markedProc) ([]int, int32) {
	for _, p := range procs {
		vars := map[string]string{}
		for _, kv := range strings.Split(string(p.Env), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				vars[k] = v
			}
		}
		if list, ok := vars["CUDA_VISIBLE_DEVICES"]; ok {
			return parseDevices(list, vars["GPUFLEET_GPU_MILLI"])
		}
	}
	return nil, 0
}
