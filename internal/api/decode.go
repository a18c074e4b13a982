package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/spec/guard"
)

// Request body limits.
const (
	// MaxBody bounds an ordinary request body, a job document among them.
	MaxBody = guard.MaxJobBytes
	// MaxHeartbeatBody bounds a heartbeat, which carries log bytes.
	MaxHeartbeatBody = 16 << 20
	// MaxLogChunk bounds the bytes of one log chunk.
	MaxLogChunk = 1 << 20
	// MaxLogSize bounds one replica's log on the server.
	MaxLogSize = 1 << 30
	// MaxAttempt bounds attempt numbers agents may name.
	MaxAttempt = 1 << 20
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// CheckName checks a name used in paths and keys: tenant, queue, node and
// job names are 1 to 63 lower-case letters, digits, '.', '_' or '-',
// starting and ending with a letter or digit.
func CheckName(field, s string) *Error {
	if !nameRE.MatchString(s) {
		return Invalid(field, "%q is not a valid name: want 1 to 63 of a-z, 0-9, '.', '_', '-', starting and ending with a letter or digit", s)
	}
	return nil
}

// ReadBody reads a request body up to limit bytes. A body that does not
// arrive by the request's read deadline is a 408.
func ReadBody(r io.Reader, limit int64) ([]byte, *Error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, &Error{Status: http.StatusRequestTimeout, Code: CodeTimeout, Message: "the request body did not arrive in time; send it whole, at once"}
		}
		return nil, Invalid("", "read body: %v", err)
	}
	if int64(len(data)) > limit {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge,
			Message: fmt.Sprintf("request body is larger than %s", guard.FormatBytes(limit))}
	}
	return data, nil
}

var unknownFieldRE = regexp.MustCompile(`^json: unknown field "(.*)"$`)

// decodeStrict decodes one JSON value; unknown fields and trailing data are
// errors that name the field.
func decodeStrict(data []byte, v any) *Error {
	if err := guard.CheckJSON("request body", data, math.MaxInt64); err != nil {
		return Invalid("", "%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return Invalid(te.Field, "want %s, got JSON %s", te.Type, te.Value)
		case errors.As(err, &se):
			return Invalid("", "malformed JSON at byte %d: %v", se.Offset, err)
		case unknownFieldRE.MatchString(err.Error()):
			f := unknownFieldRE.FindStringSubmatch(err.Error())[1]
			return Invalid(f, "unknown field %q", f)
		case err == io.EOF:
			return Invalid("", "empty body: want a JSON object")
		default:
			return Invalid("", "malformed JSON: %v", err)
		}
	}
	if dec.More() {
		return Invalid("", "trailing data after the JSON object")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return Invalid("", "trailing data after the JSON object")
	}
	return nil
}

// DecodeRegister reads and checks a node registration.
func DecodeRegister(data []byte) (NodeInfo, *Error) {
	var n NodeInfo
	if err := decodeStrict(data, &n); err != nil {
		return n, err
	}
	if err := CheckName("name", n.Name); err != nil {
		return n, err
	}
	if n.Address == "" || len(n.Address) > 255 || strings.ContainsAny(n.Address, " \t\r\n/") {
		return n, Invalid("address", "%q: want a host name or IP address", n.Address)
	}
	if n.Count < 0 || n.Count > 16 {
		return n, Invalid("count", "%d: want 0..16 accelerators", n.Count)
	}
	if n.Count > 0 && n.Accel == "" {
		return n, Invalid("accel", "empty: a node with accelerators needs their type")
	}
	if n.CPUMilli < 0 || n.MemoryMiB < 0 {
		return n, Invalid("cpuMilli", "cpu and memory must not be negative")
	}
	for _, k := range sortedKeys(n.Path) {
		if err := CheckName("path."+k, n.Path[k]); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Replica report states.
const (
	ReplicaRunning = "running"
	ReplicaExited  = "exited"
)

// DecodeHeartbeat reads and checks a heartbeat.
func DecodeHeartbeat(data []byte) (HeartbeatRequest, *Error) {
	var h HeartbeatRequest
	if err := decodeStrict(data, &h); err != nil {
		return h, err
	}
	if err := CheckName("node", h.Node); err != nil {
		return h, err
	}
	for i, r := range h.Replicas {
		f := fmt.Sprintf("replicas[%d]", i)
		if err := checkKey(f, r.ReplicaKey); err != nil {
			return h, err
		}
		if r.State != ReplicaRunning && r.State != ReplicaExited {
			return h, Invalid(f+".state", "%q: want running or exited", r.State)
		}
		if r.Port < 0 || r.Port > 65535 {
			return h, Invalid(f+".port", "%d: want a port of 1..65535, or 0 for none", r.Port)
		}
	}
	for i, c := range h.Logs {
		f := fmt.Sprintf("logs[%d]", i)
		if err := checkKey(f, c.ReplicaKey); err != nil {
			return h, err
		}
		if c.Offset < 0 || c.Offset > MaxLogSize {
			return h, Invalid(f+".offset", "%d: want 0..%d", c.Offset, MaxLogSize)
		}
		if len(c.Data) > MaxLogChunk {
			return h, Invalid(f+".data", "%d bytes: want at most %d per chunk", len(c.Data), MaxLogChunk)
		}
		if c.Offset+int64(len(c.Data)) > MaxLogSize {
			return h, Invalid(f+".data", "log would grow past %d bytes", MaxLogSize)
		}
	}
	var seen uint64
	for i, u := range h.Utilization {
		f := fmt.Sprintf("utilization[%d]", i)
		if u.Device < 0 || u.Device > MaxUtilDevice {
			return h, Invalid(f+".device", "%d: want 0..%d", u.Device, MaxUtilDevice)
		}
		if seen&(1<<uint(u.Device)) != 0 {
			return h, Invalid(f+".device", "%d is listed twice", u.Device)
		}
		seen |= 1 << uint(u.Device)
		if u.Percent < 0 || u.Percent > 100 {
			return h, Invalid(f+".percent", "%d: want 0..100", u.Percent)
		}
	}
	return h, nil
}

var jobIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

func checkKey(field string, k ReplicaKey) *Error {
	if !jobIDRE.MatchString(k.Job) {
		return Invalid(field+".job", "%q is not a job id", k.Job)
	}
	switch {
	case k.Gang < 0 || k.Gang > 1<<16:
		return Invalid(field+".gang", "%d: out of range", k.Gang)
	case k.Replica < 0 || k.Replica > 1<<20:
		return Invalid(field+".replica", "%d: out of range", k.Replica)
	case k.Attempt < 0 || k.Attempt > MaxAttempt:
		return Invalid(field+".attempt", "%d: out of range", k.Attempt)
	}
	return nil
}

// DecodeCreateTenant reads and checks a new tenant.
func DecodeCreateTenant(data []byte) (CreateTenant, *Error) {
	var t CreateTenant
	if err := decodeStrict(data, &t); err != nil {
		return t, err
	}
	if err := CheckName("name", t.Name); err != nil {
		return t, err
	}
	if err := checkWeight(t.Weight); err != nil {
		return t, err
	}
	return t, checkQuotas(t.Quotas)
}

// DecodeCreateQueue reads and checks a new queue.
func DecodeCreateQueue(data []byte) (CreateQueue, *Error) {
	var q CreateQueue
	if err := decodeStrict(data, &q); err != nil {
		return q, err
	}
	if err := CheckName("name", q.Name); err != nil {
		return q, err
	}
	if err := CheckName("tenant", q.Tenant); err != nil {
		return q, err
	}
	if err := checkWeight(q.Weight); err != nil {
		return q, err
	}
	return q, checkQuotas(q.Quotas)
}

// DecodeUpdateTenant reads and checks a change to a tenant.
func DecodeUpdateTenant(data []byte) (UpdateTenant, *Error) {
	var u UpdateTenant
	if err := decodeStrict(data, &u); err != nil {
		return u, err
	}
	if u.Weight == nil && u.Quotas == nil {
		return u, Invalid("", "nothing to change: give weight or quotas")
	}
	return u, checkUpdate(u.Weight, u.Quotas)
}

// DecodeUpdateQueue reads and checks a change to a queue.
func DecodeUpdateQueue(data []byte) (UpdateQueue, *Error) {
	var u UpdateQueue
	if err := decodeStrict(data, &u); err != nil {
		return u, err
	}
	if u.Weight == nil && u.Strict == nil && u.Quotas == nil {
		return u, Invalid("", "nothing to change: give weight, strict or quotas")
	}
	return u, checkUpdate(u.Weight, u.Quotas)
}

func checkUpdate(weight *float64, quotas map[string]*Quota) *Error {
	if weight != nil {
		if err := checkWeight(*weight); err != nil {
			return err
		}
	}
	set := map[string]Quota{}
	for f, q := range quotas {
		if q != nil {
			set[f] = *q
		} else if err := checkQuotas(map[string]Quota{f: {}}); err != nil {
			return err
		}
	}
	return checkQuotas(set)
}

// DecodeDrainNode reads a drain request; an empty body drains without
// eviction.
func DecodeDrainNode(data []byte) (DrainNode, *Error) {
	var d DrainNode
	if len(bytes.TrimSpace(data)) == 0 {
		return d, nil
	}
	return d, decodeStrict(data, &d)
}

// DecodeCreateToken reads and checks a token request.
func DecodeCreateToken(data []byte) (CreateToken, *Error) {
	var t CreateToken
	if err := decodeStrict(data, &t); err != nil {
		return t, err
	}
	switch t.Role {
	case RoleTenant:
		if err := CheckName("tenant", t.Tenant); err != nil {
			return t, err
		}
	case RoleNode, RoleAdmin, RoleMetrics:
		if t.Tenant != "" {
			return t, Invalid("tenant", "only a tenant token names a tenant")
		}
	default:
		return t, Invalid("role", "%q: want one of tenant, node, admin, metrics", t.Role)
	}
	if t.Node != "" {
		if t.Role != RoleNode {
			return t, Invalid("node", "only a node token names a node")
		}
		if err := CheckName("node", t.Node); err != nil {
			return t, err
		}
	}
	return t, nil
}

func checkWeight(w float64) *Error {
	if math.IsNaN(w) || w < 0 || w > 1e6 {
		return Invalid("weight", "%v: want 0..1000000 (0 means 1)", w)
	}
	return nil
}

// maxQuota bounds a quota in accelerators so milli-units stay exact.
const maxQuota = 1e9

var flavorRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*(:[a-z0-9][a-z0-9._-]*)?$`)

func checkQuotas(qs map[string]Quota) *Error {
	cat := fleet.DefaultCatalog()
	for _, f := range sortedKeys(qs) {
		q := qs[f]
		field := "quotas." + f
		accel, _, _ := strings.Cut(f, ":")
		if !flavorRE.MatchString(f) || len(f) > 80 || cat.Index(accel) < 0 {
			return Invalid(field, "flavor %q: want an accelerator type of the catalog (%s), optionally with a tier (h100 or h100:spot)", f, strings.Join(cat.Names(), ", "))
		}
		if err := checkAmount(field+".nominal", q.Nominal); err != nil {
			return err
		}
		if q.BorrowingLimit != nil {
			if err := checkAmount(field+".borrowingLimit", *q.BorrowingLimit); err != nil {
				return err
			}
		}
		if q.LendingLimit != nil {
			if err := checkAmount(field+".lendingLimit", *q.LendingLimit); err != nil {
				return err
			}
			if *q.LendingLimit > q.Nominal {
				return Invalid(field+".lendingLimit", "%v is above nominal %v", *q.LendingLimit, q.Nominal)
			}
		}
	}
	return nil
}

func checkAmount(field string, v float64) *Error {
	if math.IsNaN(v) || v < 0 || v > maxQuota {
		return Invalid(field, "%v: want 0..%g accelerators", v, float64(maxQuota))
	}
	return nil
}

// Milli converts accelerators to milli-accelerators.
func Milli(v float64) int64 { return int64(math.Round(v * 1000)) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
