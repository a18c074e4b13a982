package place

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewWorkload(t *testing.T) {
	reqs := []Request{
		{Milli: 500, CPUMilli: 4000},
		{Devices: 1, CPUMilli: 8000, Accel: []string{"T4", "G2"}},
		{Milli: 500, CPUMilli: 4000},
		{Devices: 1, CPUMilli: 8000, Accel: []string{"G2", "T4"}}, // another order, another class
		{CPUMilli: 16000},
	}
	want := &Workload{Classes: []Class{
		{Req: Request{Milli: 500, CPUMilli: 4000}, Weight: 2},
		{Req: Request{Devices: 1, CPUMilli: 8000, Accel: []string{"T4", "G2"}}, Weight: 1},
		{Req: Request{Devices: 1, CPUMilli: 8000, Accel: []string{"G2", "T4"}}, Weight: 1},
		{Req: Request{CPUMilli: 16000}, Weight: 1},
	}}
	got := NewWorkload(reqs)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NewWorkload (-want +got):\n%s", diff)
	}
	reqs[1].Accel[0] = "A10"
	if got.Classes[1].Req.Accel[0] != "T4" {
		t.Error("NewWorkload shares the requests' accelerator lists")
	}
}

func TestApplyKeepsMix(t *testing.T) {
	n := node(0, "G2", 96000, 1000, 1000, 1000, 1000)
	steps := []struct {
		r    Request
		c    Choice
		sign int
	}{
		{share(300), Choice{Devices: []int{0}, Milli: 300}, +1},
		{share(300), Choice{Devices: []int{0}, Milli: 300}, +1},
		{whole(2), Choice{Devices: []int{1, 2}, Milli: Whole}, +1},
		{Request{CPUMilli: 1000}, Choice{}, +1},
		{share(300), Choice{Devices: []int{0}, Milli: 300}, -1},
	}
	for _, s := range steps {
		Apply(n, &s.r, s.c, s.sign)
	}
	want := [MixSlots]int32{0: 1, 2: 1}
	if diff := cmp.Diff(want, n.Mix); diff != "" {
		t.Errorf("Mix (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int32{700, 0, 0, 1000}, n.Free); diff != "" {
		t.Errorf("Free (-want +got):\n%s", diff)
	}
}
