package sched

import "testing"

// A shape that found no room while kept out by some reservations also
// finds none while kept out by those and more, in the same cycle only.
func TestMemoSlotSubsets(t *testing.T) {
	var s memoSlot
	s.record(7, 0b0101, Status{Code: NoCapacity, Free: 1})
	tests := []struct {
		cycle uint64
		pat   uint8
		want  bool
	}{
		{7, 0b0101, true},  // the same reservations
		{7, 0b1101, true},  // more
		{7, 0b1111, true},  // all
		{7, 0b0100, false}, // fewer: it may fit
		{7, 0b0000, false},
		{7, 0b1010, false}, // others
		{8, 0b0101, false}, // another cycle
	}
	for _, tc := range tests {
		if got := s.fails(tc.cycle, tc.pat); got != tc.want {
			t.Errorf("after a failure with 0101 in cycle 7: fails(%d, %04b) = %v, want %v", tc.cycle, tc.pat, got, tc.want)
		}
	}
	s.record(7, 0b0010, Status{Code: NoCapacity, Free: 2})
	if !s.fails(7, 0b1010) || !s.fails(7, 0b0111) || s.fails(7, 0b1000) {
		t.Error("a second failure with 0010 is not remembered beside the first")
	}
	if s.status.Free != 2 {
		t.Errorf("status = %+v, want the last failure's", s.status)
	}
	s.record(8, 0b1000, Status{Code: NoCapacity, Free: 3})
	if s.fails(8, 0b0101) || !s.fails(8, 0b1000) {
		t.Error("a new cycle does not start the memo afresh")
	}
}
