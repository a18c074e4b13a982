package agent

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// TestHelperReplica is not a test: run by the tests below as a replica's
// command (the test binary itself), it serves HTTP on $PORT and answers
// /ready 200 while the file $READY_FILE exists, 503 otherwise.
func TestHelperReplica(t *testing.T) {
	if os.Getenv("GPUFLEET_HELPER_REPLICA") != "1" {
		t.Skip("helper process")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(os.Getenv("READY_FILE")); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ln, err := net.Listen("tcp", ":"+os.Getenv("PORT"))
	if err != nil {
		os.Exit(3)
	}
	_ = http.Serve(ln, mux)
	os.Exit(0)
}

func helperAssignment(job, readyFile, path string) api.Assignment {
	a := assign(job, map[string]string{"GPUFLEET_HELPER_REPLICA": "1", "READY_FILE": readyFile},
		os.Args[0], "-test.run=^TestHelperReplica$")
	a.Service = &api.ServiceRun{ReadinessPath: path}
	return a
}

// A service replica gets a port of its own from the agent's range (PORT
// and GPUFLEET_PORT), is reported ready while its readiness path answers
// 2xx, and not ready (but left running) once it has failed three probes
// in a row. A member that is not probed is never reported ready.
func TestServiceReplicaPortAndReadiness(t *testing.T) {
	f := newFakeServer(t)
	dir := t.TempDir()
	readyA := filepath.Join(dir, "a.ready")
	k2 := api.ReplicaKey{Job: "svc", Replica: 1, Attempt: 1}
	member := helperAssignment("svc", filepath.Join(dir, "b.ready"), "")
	member.ReplicaKey = k2
	f.set(func(f *fakeServer) {
		f.run = []api.Assignment{helperAssignment("svc", readyA, "/ready"), member}
	})
	cfg := testConfig(t, f, filepath.Join(dir, "state"))
	cfg.Ports = PortRange{First: 41700, Last: 41720}
	cfg.ProbeInterval = 20 * time.Millisecond
	startAgent(t, cfg)
	st := f.waitState(key("svc"), StateRunning)
	f.waitFor("both ports reported", 10*time.Second, func() bool {
		a, _ := f.replica(key("svc"))
		b, _ := f.replica(k2)
		return a.Port != 0 && b.Port != 0
	})
	a, _ := f.replica(key("svc"))
	b, _ := f.replica(k2)
	if a.Port == b.Port || a.Port < 41700 || a.Port > 41720 || b.Port < 41700 || b.Port > 41720 {
		t.Fatalf("ports %d and %d: want two different ports of 41700-41720", a.Port, b.Port)
	}
	if st.Ready {
		t.Fatalf("ready before its readiness path answers")
	}
	// The replica serves on the port it was told.
	f.waitFor("the replica to listen", 10*time.Second, func() bool {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(a.Port) + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if err := os.WriteFile(readyA, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.waitFor("ready", 10*time.Second, func() bool { s, _ := f.replica(key("svc")); return s.Ready })
	if err := os.Remove(readyA); err != nil {
		t.Fatal(err)
	}
	f.waitFor("not ready", 10*time.Second, func() bool { s, _ := f.replica(key("svc")); return !s.Ready })
	if s, _ := f.replica(key("svc")); s.State != StateRunning {
		t.Errorf("a replica failing its probe was stopped: %+v", s)
	}
	if s, _ := f.replica(k2); s.Ready {
		t.Errorf("an unprobed member reported ready")
	}
}
