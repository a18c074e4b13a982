package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Every decoder must refuse bad input with an *Error naming a status, and
// whatever it accepts must survive a JSON round trip and pass its checks
// again.

func checkRefusal(t *testing.T, e *Error) {
	t.Helper()
	if e.Status < 400 || e.Status > 499 || e.Code == "" || e.Message == "" {
		t.Fatalf("refusal without status, code or message: %#v", e)
	}
}

func roundTrip[T any](t *testing.T, v T, decode func([]byte) (T, *Error)) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	again, e := decode(data)
	if e != nil {
		t.Fatalf("re-encoded value refused: %v\n%s", e, data)
	}
	if diff := cmp.Diff(v, again, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("round trip changed the value (-first +again):\n%s", diff)
	}
}

func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add([]byte(`{"node":"n1","replicas":[{"job":"train-1","gang":0,"replica":1,"attempt":1,"state":"exited","exitCode":3}],"logs":[{"job":"train-1","gang":0,"replica":1,"attempt":1,"offset":10,"data":"aGVsbG8="}]}`))
	f.Add([]byte(`{"node":"n1","replicas":[{"job":"../etc","gang":0,"replica":0,"attempt":1,"state":"running"}]}`))
	f.Add([]byte(`{"node":"n1","logs":[{"job":"a","offset":-1,"data":""}]}`))
	f.Add([]byte(`{"node":"N1"}`))
	f.Add([]byte(`{"node":"n1"} {}`))
	f.Add([]byte(`{"node":"n1","utilization":[{"device":0,"percent":37},{"device":7,"percent":100}]}`))
	f.Add([]byte(`{"node":"n1","utilization":[{"device":64,"percent":101}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, e := DecodeHeartbeat(data)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		for _, u := range h.Utilization {
			if u.Device < 0 || u.Device > MaxUtilDevice || u.Percent < 0 || u.Percent > 100 {
				t.Fatalf("accepted a utilization reading out of range: %+v", u)
			}
		}
		for _, c := range h.Logs {
			if strings.Contains(c.Job, "/") || strings.HasPrefix(c.Job, ".") || c.Offset < 0 || c.Offset+int64(len(c.Data)) > MaxLogSize {
				t.Fatalf("accepted an unsafe log chunk: %+v", c.ReplicaKey)
			}
		}
		roundTrip(t, h, DecodeHeartbeat)
	})
}

func FuzzDecodeRegister(f *testing.F) {
	f.Add([]byte(`{"name":"n1","address":"10.0.0.1","path":{"rack":"r1"},"accel":"h100","count":8,"cpuMilli":64000,"memoryMiB":524288}`))
	f.Add([]byte(`{"name":"n1","address":"a b","count":99}`))
	f.Add([]byte(`{"name":"n1","address":"x","count":1}`))
	f.Add([]byte(`{"name":"n1","address":"x","count":0,"extra":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, e := DecodeRegister(data)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		if n.Count < 0 || n.Count > 16 || (n.Count > 0 && n.Accel == "") || CheckName("", n.Name) != nil {
			t.Fatalf("accepted a bad node: %+v", n)
		}
		roundTrip(t, n, DecodeRegister)
	})
}

func FuzzDecodeCreateTenant(f *testing.F) {
	f.Add([]byte(`{"name":"acme","weight":2,"quotas":{"h100":{"nominal":16,"borrowingLimit":8,"lendingLimit":4}}}`))
	f.Add([]byte(`{"name":"acme","quotas":{"h100":{"nominal":1,"lendingLimit":4}}}`))
	f.Add([]byte(`{"name":"acme","quotas":{"H100":{"nominal":-1}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, e := DecodeCreateTenant(data)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		for flavor, q := range v.Quotas {
			if q.LendingLimit != nil && *q.LendingLimit > q.Nominal {
				t.Fatalf("accepted lending above nominal for %s", flavor)
			}
		}
		roundTrip(t, v, DecodeCreateTenant)
	})
}

func FuzzDecodeCreateQueue(f *testing.F) {
	f.Add([]byte(`{"name":"acme-train","tenant":"acme","strict":true,"quotas":{"h100:spot":{"nominal":0.5}}}`))
	f.Add([]byte(`{"name":"x","tenant":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, e := DecodeCreateQueue(data)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		roundTrip(t, v, DecodeCreateQueue)
	})
}

func FuzzDecodeCreateToken(f *testing.F) {
	f.Add([]byte(`{"role":"tenant","tenant":"acme"}`))
	f.Add([]byte(`{"role":"node"}`))
	f.Add([]byte(`{"role":"node","tenant":"acme"}`))
	f.Add([]byte(`{"role":"root"}`))
	f.Add([]byte(`{"role":"node","node":"gpu-017"}`))
	f.Add([]byte(`{"role":"tenant","tenant":"acme","node":"n1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, e := DecodeCreateToken(data)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		if (v.Role == RoleTenant) != (v.Tenant != "") {
			t.Fatalf("accepted a token request with role %q and tenant %q", v.Role, v.Tenant)
		}
		if v.Node != "" && (v.Role != RoleNode || CheckName("", v.Node) != nil) {
			t.Fatalf("accepted a token request with role %q and node %q", v.Role, v.Node)
		}
		roundTrip(t, v, DecodeCreateToken)
	})
}

func FuzzDecodeUpdateQueue(f *testing.F) {
	f.Add([]byte(`{"weight":2,"strict":true,"quotas":{"h100":{"nominal":16,"borrowingLimit":0},"h200":null}}`))
	f.Add([]byte(`{"quotas":{"h999":{"nominal":1}}}`))
	f.Add([]byte(`{"quotas":{"h100":{"nominal":1,"lendingLimit":2}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, e := DecodeUpdateQueue(data)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		if v.Weight == nil && v.Strict == nil && v.Quotas == nil {
			t.Fatalf("accepted a change of nothing")
		}
		for f, q := range v.Quotas {
			if q != nil && q.LendingLimit != nil && *q.LendingLimit > q.Nominal {
				t.Fatalf("accepted lending above nominal for %s", f)
			}
		}
		if _, e := DecodeUpdateTenant(data); e == nil && v.Strict != nil {
			t.Fatalf("a tenant change took strict")
		}
	})
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	for name, tc := range map[string]struct {
		decode func([]byte) *Error
		body   string
		field  string
	}{
		"unknown field":                   {func(b []byte) *Error { _, e := DecodeRegister(b); return e }, `{"name":"n1","address":"a","count":0,"gpus":8}`, "gpus"},
		"wrong type":                      {func(b []byte) *Error { _, e := DecodeRegister(b); return e }, `{"name":"n1","address":"a","count":"8"}`, "count"},
		"bad replica state":               {func(b []byte) *Error { _, e := DecodeHeartbeat(b); return e }, `{"node":"n1","replicas":[{"job":"j","state":"zombie"}]}`, "replicas[0].state"},
		"utilization over 100":            {func(b []byte) *Error { _, e := DecodeHeartbeat(b); return e }, `{"node":"n1","utilization":[{"device":0,"percent":5},{"device":1,"percent":140}]}`, "utilization[1].percent"},
		"utilization device twice":        {func(b []byte) *Error { _, e := DecodeHeartbeat(b); return e }, `{"node":"n1","utilization":[{"device":3,"percent":5},{"device":3,"percent":6}]}`, "utilization[1].device"},
		"utilization device out of range": {func(b []byte) *Error { _, e := DecodeHeartbeat(b); return e }, `{"node":"n1","utilization":[{"device":64,"percent":5}]}`, "utilization[0].device"},
		"lending over nominal": {func(b []byte) *Error { _, e := DecodeCreateTenant(b); return e },
			`{"name":"acme","quotas":{"h100":{"nominal":1,"lendingLimit":2}}}`, "quotas.h100.lendingLimit"},
		"flavor not in the catalog": {func(b []byte) *Error { _, e := DecodeCreateTenant(b); return e },
			`{"name":"acme","quotas":{"h999":{"nominal":1}}}`, "quotas.h999"},
		"flavor with a tier": {func(b []byte) *Error { _, e := DecodeCreateTenant(b); return e },
			`{"name":"acme","quotas":{"h999:spot":{"nominal":1}}}`, "quotas.h999:spot"},
	} {
		t.Run(name, func(t *testing.T) {
			e := tc.decode([]byte(tc.body))
			if e == nil || e.Field != tc.field || e.Status != 422 {
				t.Fatalf("got %#v, want a 422 naming %q", e, tc.field)
			}
		})
	}
}

func TestDecodeRefusesDeepBodies(t *testing.T) {
	body := `{"node":"n1","replicas":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`
	if _, e := DecodeHeartbeat([]byte(body)); e == nil || e.Status != 422 || !strings.Contains(e.Message, "nest deeper than 64") {
		t.Errorf("got %v, want a 422 about nesting", e)
	}
}

func FuzzDecodeScaleService(f *testing.F) {
	f.Add([]byte(`{"minReplicas":2}`))
	f.Add([]byte(`{"minReplicas":0,"maxReplicas":8}`))
	f.Add([]byte(`{"minReplicas":3,"maxReplicas":2}`))
	f.Add([]byte(`{"maxReplicas":0}`))
	f.Add([]byte(`{"replicas":1}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"minReplicas":1e3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, e := DecodeScaleService(data)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		if s.MinReplicas == nil && s.MaxReplicas == nil ||
			s.MinReplicas != nil && (*s.MinReplicas < 0 || *s.MinReplicas > MaxServiceReplicas) ||
			s.MaxReplicas != nil && (*s.MaxReplicas < 1 || *s.MaxReplicas > MaxServiceReplicas) ||
			s.MinReplicas != nil && s.MaxReplicas != nil && *s.MinReplicas > *s.MaxReplicas {
			t.Fatalf("accepted bad bounds: %s", data)
		}
		roundTrip(t, s, DecodeScaleService)
	})
}
