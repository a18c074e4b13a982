package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// fakeServer speaks the agent protocol over real HTTP and keeps what a
// server would: registrations, the latest status of each replica, the time
// it first saw each replica exited, and each replica's log assembled at the
// offsets the agent sends. Tests set the desired state (run, stop) and
// switch failures on and off.
type fakeServer struct {
	t     *testing.T
	srv   *httptest.Server
	token string

	mu          sync.Mutex
	registers   int
	heartbeats  int
	run         []api.Assignment
	stop        []api.StopOrder
	autoAck     bool
	intervalMs  int
	failWith    int // answer heartbeats with this status while non-zero
	failNext    int // answer this many heartbeats with 503
	status      map[api.ReplicaKey]api.ReplicaStatus
	exitSeen    map[api.ReplicaKey]time.Time
	logs        map[api.ReplicaKey][]byte
	chunkSizes  []int
	pids        map[int]bool
	protocolErr []string
	changed     chan struct{}
	utilization []api.DeviceUtilization // the last readings a heartbeat carried
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{
		t:        t,
		token:    "node-token",
		autoAck:  true,
		status:   map[api.ReplicaKey]api.ReplicaStatus{},
		exitSeen: map[api.ReplicaKey]time.Time{},
		logs:     map[api.ReplicaKey][]byte{},
		pids:     map[int]bool{},
		changed:  make(chan struct{}, 1),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+RegisterPath, f.register)
	mux.HandleFunc("POST "+HeartbeatPath, f.heartbeat)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.srv.Close()
		f.killAll()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, e := range f.protocolErr {
			t.Errorf("protocol: %s", e)
		}
	})
	return f
}

func (f *fakeServer) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return false
	}
	return true
}

func (f *fakeServer) register(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	var n api.NodeInfo
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil || n.Name == "" {
		http.Error(w, `{"error":"bad node"}`, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.registers++
	f.mu.Unlock()
	w.Write([]byte(`{}`))
}

func (f *fakeServer) heartbeat(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	var req api.HeartbeatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.ping()
	f.heartbeats++
	if req.Utilization != nil {
		f.utilization = req.Utilization
	}
	if f.failWith != 0 {
		http.Error(w, `{"error":"unavailable"}`, f.failWith)
		return
	}
	if f.failNext > 0 {
		f.failNext--
		http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	resp := api.HeartbeatResponse{Run: f.run, Stop: f.stop, IntervalMillis: f.intervalMs}
	for _, st := range req.Replicas {
		if st.State != StateRunning && st.State != StateExited {
			f.protocolErr = append(f.protocolErr, fmt.Sprintf("replica %+v: state %q", st.ReplicaKey, st.State))
		}
		if prev, ok := f.status[st.ReplicaKey]; ok && prev.State == StateExited && st.State == StateRunning {
			f.protocolErr = append(f.protocolErr, fmt.Sprintf("replica %+v: running again after exited", st.ReplicaKey))
		}
		f.status[st.ReplicaKey] = st
		if st.PID > 0 {
			f.pids[st.PID] = true
		}
		if st.State == StateExited {
			if _, ok := f.exitSeen[st.ReplicaKey]; !ok {
				f.exitSeen[st.ReplicaKey] = time.Now()
			}
			if f.autoAck {
				resp.Ack = append(resp.Ack, st.ReplicaKey)
			}
		}
	}
	for _, c := range req.Logs {
		f.chunkSizes = append(f.chunkSizes, len(c.Data))
		have := f.logs[c.ReplicaKey]
		switch {
		case c.Offset > int64(len(have)):
			f.protocolErr = append(f.protocolErr, fmt.Sprintf("log %+v: chunk at %d leaves a gap after %d", c.ReplicaKey, c.Offset, len(have)))
		case c.Offset+int64(len(c.Data)) <= int64(len(have)):
			if !bytes.Equal(have[c.Offset:c.Offset+int64(len(c.Data))], c.Data) {
				f.protocolErr = append(f.protocolErr, fmt.Sprintf("log %+v: resent bytes at %d differ", c.ReplicaKey, c.Offset))
			}
		default:
			f.logs[c.ReplicaKey] = append(have[:c.Offset], c.Data...)
		}
	}
	json.NewEncoder(w).Encode(resp)
}

func (f *fakeServer) ping() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// set changes the desired state under the lock.
func (f *fakeServer) set(fn func(f *fakeServer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeServer) replica(k api.ReplicaKey) (api.ReplicaStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.status[k]
	return st, ok
}

func (f *fakeServer) log(k api.ReplicaKey) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return string(f.logs[k])
}

// waitFor polls cond after every heartbeat and at least every 20ms, and
// fails the test when it does not hold within the bound.
func (f *fakeServer) waitFor(what string, bound time.Duration, cond func() bool) {
	f.t.Helper()
	end := time.After(bound)
	for !cond() {
		select {
		case <-f.changed:
		case <-time.After(20 * time.Millisecond):
		case <-end:
			f.t.Fatalf("waited %v for %s", bound, what)
		}
	}
}

func (f *fakeServer) waitState(k api.ReplicaKey, state string) api.ReplicaStatus {
	f.t.Helper()
	var st api.ReplicaStatus
	f.waitFor(fmt.Sprintf("replica %+v %s", k, state), 10*time.Second, func() bool {
		var ok bool
		st, ok = f.replica(k)
		return ok && st.State == state
	})
	return st
}

// killAll removes whatever replica processes a failed test left behind.
func (f *fakeServer) killAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for pid := range f.pids {
		if p, err := procStat(pid); err == nil && p.PGrp == pid {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}
