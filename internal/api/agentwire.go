package api

// NodeInfo is what an agent declares about its node when it registers.
type NodeInfo struct {
	Name      string            `json:"name"`
	Address   string            `json:"address"`         // host the node's replicas are reachable at (MASTER_ADDR)
	Path      map[string]string `json:"path"`            // topology level -> domain name (region, zone, block, rack)
	Accel     string            `json:"accel,omitempty"` // accelerator type, "" for CPU-only
	Count     int               `json:"count"`
	CPUMilli  int64             `json:"cpuMilli"`
	MemoryMiB int64             `json:"memoryMiB"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// ReplicaKey names one attempt of one replica of a job.
type ReplicaKey struct {
	Job     string `json:"job"`
	Gang    int    `json:"gang"`
	Replica int    `json:"replica"`
	Attempt int    `json:"attempt"`
}

// ReplicaStatus is what the agent reports of one replica process group.
type ReplicaStatus struct {
	ReplicaKey
	State    string `json:"state"`            // "running" or "exited"
	ExitCode int    `json:"exitCode"`         // when exited; -1 if killed by a signal
	Signal   string `json:"signal,omitempty"` // e.g. "SIGTERM" when killed by one
	PID      int    `json:"pid,omitempty"`
	// Devices and Milli are what the replica was started with (from its
	// CUDA_VISIBLE_DEVICES and GPUFLEET_GPU_MILLI): the server holds them
	// apart for a process it no longer accounts for until it is gone.
	Devices []int `json:"devices,omitempty"`
	Milli   int32 `json:"milli,omitempty"`
	// Port is the port the agent gave a service replica (its PORT), and
	// Ready whether its readiness path answers (2xx or 3xx) now.
	Port  int  `json:"port,omitempty"`
	Ready bool `json:"ready,omitempty"`
}

// Membership is the live membership of a resizable gang (resize: notify):
// the agent keeps it, as JSON, in the file GPUFLEET_MEMBERSHIP_FILE names,
// replacing the file whole each time the generation changes.
type Membership struct {
	Generation int      `json:"generation"`
	WorldSize  int      `json:"worldSize"`
	Members    []Member `json:"members"`
}

// Member is one live replica of a gang's membership.
type Member struct {
	Rank    int    `json:"rank"`
	Node    string `json:"node"`
	Address string `json:"address"`
	Gang    int    `json:"gang"`
	Replica int    `json:"replica"`
}

// LogChunk carries replica output from the agent to the server.
type LogChunk struct {
	ReplicaKey
	Offset int64  `json:"offset"` // byte offset of Data in the replica's log
	Data   []byte `json:"data"`
}

// HeartbeatRequest is sent by the agent every interval.
type HeartbeatRequest struct {
	Node     string          `json:"node"`
	Replicas []ReplicaStatus `json:"replicas"`
	Logs     []LogChunk      `json:"logs,omitempty"`
	// Utilization is what the node's devices are doing now, as nvidia-smi
	// reads it (utilization.gpu), for the energy meter; absent when the
	// agent does not read it (declared accelerators) or read it lately.
	// A device with no reading counts as fully used while allocated.
	Utilization []DeviceUtilization `json:"utilization,omitempty"`
}

// DeviceUtilization is one device's utilization in percent (0..100).
type DeviceUtilization struct {
	Device  int `json:"device"`
	Percent int `json:"percent"`
}

// MaxUtilDevice is the highest device index a utilization reading may name.
const MaxUtilDevice = 63

// Assignment is one replica the server wants running on the node.
type Assignment struct {
	ReplicaKey
	Command []string          `json:"command"`
	Env     map[string]string `json:"env"` // set by the server: CUDA_VISIBLE_DEVICES, GPUFLEET_GPU_MILLI, RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, GPUFLEET_JOB, ...
	// Membership, for a resizable gang, is its live membership now.
	Membership *Membership `json:"membership,omitempty"`
	// Service, for a replica of an inference service, asks the agent for
	// a port and a readiness probe.
	Service *ServiceRun `json:"service,omitempty"`
}

// ServiceRun is what an agent does for a replica of an inference service:
// it gives the replica a port of its own (PORT and GPUFLEET_PORT; Port,
// when set, is a fixed one instead), and, when ReadinessPath is set (the
// replica's leader), probes http://ADDRESS:PORT/ReadinessPath and reports
// the replica ready while it answers 2xx or 3xx.
type ServiceRun struct {
	Port          int    `json:"port,omitempty"`
	ReadinessPath string `json:"readinessPath,omitempty"`
}

// StopOrder asks the agent to stop a replica: SIGTERM now, SIGKILL at the deadline.
type StopOrder struct {
	ReplicaKey
	DeadlineUnixMilli int64 `json:"deadlineUnixMilli"`
}

// HeartbeatResponse is the server's desired state for the node. Run is the
// complete set of replicas that should be running: the agent starts any that
// it does not run and has not reported exited, adopts those it already runs,
// and stops (SIGTERM, then SIGKILL after a short grace) any process it runs
// that is in neither Run nor Stop. Ack lists exited replicas the server has
// recorded durably, so the agent can stop reporting them.
type HeartbeatResponse struct {
	Run            []Assignment `json:"run"`
	Stop           []StopOrder  `json:"stop"`
	Ack            []ReplicaKey `json:"ack"`
	IntervalMillis int          `json:"intervalMillis"`
}
