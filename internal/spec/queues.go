package spec

import (
	"fmt"
	"sort"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/gpufleet/gpufleet/internal/quota"
)

// A queues file declares the tenants of the fleet and their team queues:
//
//	kind: queues
//	tenants:
//	  - name: frontier
//	    weight: 4
//	    quotas:
//	      h100: {nominal: 512, lendingLimit: 128}
//	      h100:spot: 64            # shorthand for {nominal: 64}
//	    queues:
//	      - name: frontier-pretrain
//	        strict: true
//	        quotas: {h100: {nominal: 384, borrowingLimit: 128}}
//
// Quotas are in accelerators (0.5 is half of one) and become
// milli-accelerators in quota.Spec. Team queues may nest.

var tenantFields = []string{"name", "weight", "strict", "quotas", "queues"}

var limitFields = []string{"nominal", "borrowingLimit", "lendingLimit"}

// maxQueueDepth bounds nesting below a tenant.
const maxQueueDepth = 16

// ParseQueues reads a queues file into the specs quota.New takes, tenants
// before their queues, in file order.
func ParseQueues(name string, data []byte, opts ...Option) ([]quota.Spec, error) {
	d := newDecoder(name)
	docs := d.documents(data, MaxFileBytes)
	if d.failed() {
		return nil, d.err()
	}
	if len(docs) != 1 {
		if len(docs) == 0 {
			d.add(0, 0, "", "holds no queues")
		} else {
			d.add(docs[1].line, 0, "", fmt.Sprintf("holds %d documents; want one", len(docs)))
		}
		return nil, d.err()
	}
	o := makeOptions(opts)
	specs := o.queueFile(docs[0].root())
	if d.failed() {
		return nil, d.err()
	}
	if _, err := quota.New(specs); err != nil {
		// The checks above cover quota.New's; this keeps them in step.
		d.add(0, 0, "", err.Error())
		return nil, d.err()
	}
	return specs, nil
}

// queueNode is a parsed queue with what is needed to check it against its
// children.
type queueNode struct {
	spec     quota.Spec
	quotaPos map[string]value // the nominal's value per flavor
	children []int
}

type queueReader struct {
	o     *options
	nodes []queueNode
	names map[string]string // name -> path where it was declared
}

func (o *options) queueFile(v value) []quota.Spec {
	fs, isMap := v.fields("kind", "tenants")
	if !isMap {
		return nil
	}
	if f, ok := fs.get("kind"); ok {
		if s, ok := f.str(); ok && s != string(KindQueues) {
			f.errorf("%q: a queues file has kind %s", s, KindQueues)
		}
	}
	tv, ok := fs.need("tenants")
	if !ok {
		return nil
	}
	elems, ok := tv.seq()
	if ok && len(elems) == 0 {
		tv.errorf("want at least one tenant")
	}
	r := &queueReader{o: o, names: map[string]string{quota.RootName: "(the root)"}}
	for _, e := range elems {
		r.queue(e, "", 0)
	}
	for i := range r.nodes {
		r.checkChildren(i)
	}
	specs := make([]quota.Spec, len(r.nodes))
	for i := range r.nodes {
		specs[i] = r.nodes[i].spec
	}
	return specs
}

// queue reads a tenant (parent "") or team queue and its children, and
// returns its index.
func (r *queueReader) queue(v value, parent string, depth int) int {
	idx := len(r.nodes)
	r.nodes = append(r.nodes, queueNode{spec: quota.Spec{Parent: parent}, quotaPos: map[string]value{}})
	fs, isMap := v.fields(tenantFields...)
	if !isMap {
		return idx
	}
	s := quota.Spec{Parent: parent}
	if f, ok := fs.need("name"); ok {
		if n, ok := f.str(); ok {
			if msg := checkName(n); msg != "" {
				f.errorf("%s", msg)
			} else if where, dup := r.names[n]; dup {
				if n == quota.RootName {
					f.errorf("%q is reserved for the root of the queue tree", n)
				} else {
					f.errorf("%q is already the name of %s; queue names are unique across tenants", n, where)
				}
			} else {
				r.names[n] = v.path
			}
			s.Name = n
		}
	}
	if f, ok := fs.get("weight"); ok {
		if w, ok := f.number(); ok {
			if !(w > 0) || w > 1e6 {
				f.errorf("%v, want above 0 and at most 1000000", f.n.GetToken().Value)
			}
			s.Weight = w
		}
	}
	if f, ok := fs.get("strict"); ok {
		s.Strict, _ = f.boolean()
	}
	pos := map[string]value{}
	if f, ok := fs.get("quotas"); ok {
		s.Quotas = r.quotas(f, pos)
	}
	r.nodes[idx].spec = s
	r.nodes[idx].quotaPos = pos
	if f, ok := fs.get("queues"); ok {
		if depth >= maxQueueDepth {
			f.errorf("queues nest deeper than %d levels", maxQueueDepth)
			return idx
		}
		elems, _ := f.seq()
		for _, e := range elems {
			c := r.queue(e, s.Name, depth+1)
			r.nodes[idx].children = append(r.nodes[idx].children, c)
		}
	}
	return idx
}

func (r *queueReader) quotas(v value, pos map[string]value) map[string]quota.Limits {
	ps, _ := v.pairs()
	out := make(map[string]quota.Limits, len(ps))
	for _, p := range ps {
		if msg := r.o.checkFlavor(p.key); msg != "" {
			v.d.add(p.line, p.col, p.val.path, msg)
			continue
		}
		l, nomVal, ok := limits(p.val)
		if ok {
			out[p.key] = l
			pos[p.key] = nomVal
		}
	}
	return out
}

// checkFlavor says why a quota key is not a flavor ("TYPE" or "TYPE:TIER").
func (o *options) checkFlavor(key string) string {
	typ, tier, hasTier := strings.Cut(key, ":")
	if o.catalog.Index(typ) < 0 {
		return fmt.Sprintf("flavor %q: type %q is not in the catalog (want one of %s; write TYPE or TYPE:TIER)", key, typ, typeList(o.catalog))
	}
	if hasTier {
		if msg := checkWord(tier); msg != "" {
			return fmt.Sprintf("flavor %q: tier %s", key, msg)
		}
	}
	return ""
}

// limits reads {nominal, borrowingLimit, lendingLimit} or a bare number as
// the nominal.
func limits(v value) (quota.Limits, value, bool) {
	var l quota.Limits
	switch v.n.(type) {
	case *ast.IntegerNode, *ast.FloatNode:
		m, ok := accelerators(v)
		l.Nominal = m
		return l, v, ok
	}
	before := v.d.count
	fs, isMap := v.fields(limitFields...)
	if !isMap {
		return l, v, false
	}
	nv, hasNominal := fs.need("nominal")
	if hasNominal {
		l.Nominal, hasNominal = accelerators(nv)
	}
	if f, ok := fs.get("borrowingLimit"); ok {
		m, _ := accelerators(f)
		l.Borrow = &m
	}
	if f, ok := fs.get("lendingLimit"); ok {
		m, good := accelerators(f)
		l.Lend = &m
		if good && hasNominal && m > l.Nominal {
			f.errorf("%s is above nominal %s", formatMilli(m), formatMilli(l.Nominal))
		}
	}
	return l, nv, v.d.count == before
}

// accelerators reads a non-negative number of accelerators as milli.
func accelerators(v value) (int64, bool) {
	text, quoted, ok := v.numberText()
	if !ok {
		return 0, false
	}
	if quoted {
		v.errorf("want a number of accelerators, got a string")
		return 0, false
	}
	m, err := parseMilli(text)
	if err != nil {
		v.errorf("%v", err)
		return 0, false
	}
	return m, true
}

// checkChildren checks that an explicit nominal covers the children's: the
// nominal of a team queue is a guarantee carved out of its parent's.
func (r *queueReader) checkChildren(i int) {
	n := &r.nodes[i]
	if len(n.children) == 0 {
		return
	}
	flavors := make([]string, 0, len(n.spec.Quotas))
	for f := range n.spec.Quotas {
		flavors = append(flavors, f)
	}
	sort.Strings(flavors)
	for _, f := range flavors {
		var sum int64
		for _, c := range n.children {
			sum += r.nodes[c].spec.Quotas[f].Nominal
		}
		if nom := n.spec.Quotas[f].Nominal; sum > nom {
			n.quotaPos[f].errorf("%s is below the sum of its queues' nominal quotas (%s)", formatMilli(nom), formatMilli(sum))
		}
	}
}
