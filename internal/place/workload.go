package place

import (
	"slices"
	"strconv"
	"strings"
)

// NewWorkload counts the distinct request shapes among reqs (every field of
// the request, accelerator list in its given order) and weights each class
// by its number of requests. Classes keep the order of first appearance.
func NewWorkload(reqs []Request) *Workload {
	w := &Workload{}
	index := map[string]int{}
	for i := range reqs {
		k := classKey(&reqs[i])
		if j, ok := index[k]; ok {
			w.Classes[j].Weight++
			continue
		}
		index[k] = len(w.Classes)
		r := reqs[i]
		r.Accel = slices.Clone(r.Accel)
		w.Classes = append(w.Classes, Class{Req: r, Weight: 1})
	}
	return w
}

func classKey(r *Request) string {
	var b strings.Builder
	b.Grow(48)
	b.WriteString(strings.Join(r.Accel, "|"))
	for _, v := range [...]int64{int64(r.Devices), int64(r.Milli), r.CPUMilli, r.MemoryMiB} {
		b.WriteByte(',')
		b.WriteString(strconv.FormatInt(v, 10))
	}
	return b.String()
}
