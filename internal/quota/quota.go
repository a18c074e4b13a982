// Package quota is the queue tree: fleet root > tenant > team queues, each
// with, per flavor (accelerator type x capacity tier), a nominal quota, a
// borrowing limit and a lending limit, and a fair-share weight. It answers
// whether a queue may take more of a flavor and orders queues by weighted
// dominant-resource share. It knows nothing of nodes or placement.
//
// The model. Every queue n has, per flavor, nominal N, borrowing limit B and
// lending limit L (B and L unlimited when unset). Its occupation O is its
// usage for a leaf; for an inner queue it is the sum over its children c of
// max(O(c), N(c) - L(c)): a child's nominal that it does not lend stays held
// for it even while unused. A state is admissible when, for every queue but
// the root, O(n) <= N(n) + B(n), and at the root O(root) <= N(root). An inner
// queue's nominal defaults to the sum of its children's; the root's is the
// sum of the tenants'. Borrowing is therefore the use of siblings' unused,
// lendable nominal, up to the borrower's limit.
package quota

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Unlimited stands for "no limit" in milli-accelerators.
const Unlimited int64 = math.MaxInt64 / 4

// Limits are one queue's quota for one flavor, in milli-accelerators.
type Limits struct {
	Nominal int64 `json:"nominal"`
	// Borrow and Lend are nil when unlimited.
	Borrow *int64 `json:"borrowingLimit,omitempty"`
	Lend   *int64 `json:"lendingLimit,omitempty"`
}

// Spec declares one queue.
type Spec struct {
	Name string `json:"name"`
	// Parent is "" for a tenant (a child of the root).
	Parent string  `json:"parent,omitempty"`
	Weight float64 `json:"weight,omitempty"`
	// Strict makes the queue strict FIFO: a blocked head blocks the rest.
	Strict bool `json:"strict,omitempty"`
	// Quotas maps a flavor name (see Flavor) to its limits.
	Quotas map[string]Limits `json:"quotas,omitempty"`
}

// Flavor names an accelerator type in a capacity tier; the default tier is
// written as the bare type.
func Flavor(accel, tier string) string {
	if tier == "" {
		return accel
	}
	return accel + ":" + tier
}

type queue struct {
	name     string
	parent   int
	children []int
	depth    int
	weight   float64
	strict   bool
	tenant   int // index of the tenant ancestor (itself for tenants); -1 for root
	nomSet   []bool
	nominal  []int64
	borrow   []int64
	lend     []int64
	usage    []int64
	occ      []int64
}

// Tree is the queue tree with its current usage.
type Tree struct {
	qs        []queue // qs[0] is the root
	byName    map[string]int
	flavors   []string
	flavorIdx map[string]int
}

// RootName is the name of the tree's root.
const RootName = "root"

// New builds a tree. Queues may be listed in any order; every parent must
// be declared; names are unique. Flavors are the union of all quota keys.
func New(specs []Spec) (*Tree, error) {
	t := &Tree{byName: map[string]int{RootName: 0}, flavorIdx: map[string]int{}}
	t.qs = append(t.qs, queue{name: RootName, parent: -1, weight: 1, tenant: -1})
	for _, s := range specs {
		for f := range s.Quotas {
			if _, ok := t.flavorIdx[f]; !ok {
				t.flavorIdx[f] = -1
			}
		}
	}
	for f := range t.flavorIdx {
		t.flavors = append(t.flavors, f)
	}
	sort.Strings(t.flavors)
	for i, f := range t.flavors {
		t.flavorIdx[f] = i
	}
	for i, s := range specs {
		if s.Name == "" {
			return nil, fmt.Errorf("queues[%d].name: must not be empty", i)
		}
		if _, dup := t.byName[s.Name]; dup {
			return nil, fmt.Errorf("queues[%d].name: %q is defined twice", i, s.Name)
		}
		if s.Weight < 0 {
			return nil, fmt.Errorf("queues[%d].weight: %v must not be negative", i, s.Weight)
		}
		t.byName[s.Name] = len(t.qs)
		t.qs = append(t.qs, queue{name: s.Name, parent: -2})
	}
	nf := len(t.flavors)
	for i := range t.qs {
		q := &t.qs[i]
		q.nomSet, q.nominal, q.borrow, q.lend = make([]bool, nf), make([]int64, nf), make([]int64, nf), make([]int64, nf)
		q.usage, q.occ = make([]int64, nf), make([]int64, nf)
		for f := range nf {
			q.borrow[f], q.lend[f] = Unlimited, Unlimited
		}
	}
	for i, s := range specs {
		qi := t.byName[s.Name]
		q := &t.qs[qi]
		q.parent = 0
		if s.Parent != "" && s.Parent != RootName {
			p, ok := t.byName[s.Parent]
			if !ok {
				return nil, fmt.Errorf("queues[%d].parent: queue %q is not declared", i, s.Parent)
			}
			q.parent = p
		}
		q.weight = s.Weight
		if q.weight == 0 {
			q.weight = 1
		}
		q.strict = s.Strict
		for f, l := range s.Quotas {
			if err := checkLimits(l); err != nil {
				return nil, fmt.Errorf("queues[%d].quotas.%s: %w", i, f, err)
			}
			fi := t.flavorIdx[f]
			q.nomSet[fi] = true
			q.nominal[fi] = l.Nominal
			if l.Borrow != nil {
				q.borrow[fi] = *l.Borrow
			}
			if l.Lend != nil {
				q.lend[fi] = *l.Lend
			}
		}
	}
	for i := 1; i < len(t.qs); i++ {
		p := t.qs[i].parent
		t.qs[p].children = append(t.qs[p].children, i)
	}
	// Depths, tenants and cycle check.
	for i := 1; i < len(t.qs); i++ {
		d, p, tenant := 0, i, i
		for p != 0 {
			d++
			if d > len(t.qs) {
				return nil, fmt.Errorf("queue %q: parents form a cycle", t.qs[i].name)
			}
			tenant = p
			p = t.qs[p].parent
		}
		t.qs[i].depth = d
		t.qs[i].tenant = tenant
	}
	t.fillNominals(0)
	t.recomputeBelow(0)
	return t, nil
}

func checkLimits(l Limits) error {
	if l.Nominal < 0 {
		return fmt.Errorf("nominal %d: must not be negative", l.Nominal)
	}
	if l.Borrow != nil && *l.Borrow < 0 {
		return fmt.Errorf("borrowingLimit %d: must not be negative", *l.Borrow)
	}
	if l.Lend != nil && (*l.Lend < 0 || *l.Lend > l.Nominal) {
		return fmt.Errorf("lendingLimit %d: want 0..nominal (%d)", *l.Lend, l.Nominal)
	}
	return nil
}

// fillNominals gives inner queues without an explicit nominal the sum of
// their children's.
func (t *Tree) fillNominals(i int) {
	q := &t.qs[i]
	for _, c := range q.children {
		t.fillNominals(c)
	}
	if len(q.children) == 0 {
		return
	}
	for f := range t.flavors {
		if q.nomSet[f] && i != 0 {
			continue
		}
		var s int64
		for _, c := range q.children {
			s = sat(s + t.qs[c].nominal[f])
		}
		q.nominal[f] = s
	}
}

func sat(v int64) int64 {
	if v > Unlimited {
		return Unlimited
	}
	return v
}

// held is what child c takes of its parent's pool for flavor f.
func (t *Tree) held(c, f int) int64 {
	q := &t.qs[c]
	reserved := q.nominal[f] - q.lend[f]
	if reserved < 0 {
		reserved = 0
	}
	return max(q.occ[f], reserved)
}

func (t *Tree) recomputeBelow(i int) {
	for _, c := range t.qs[i].children {
		t.recomputeBelow(c)
	}
	t.recomputeOcc(i)
}

func (t *Tree) recomputeOcc(i int) {
	for f := range t.flavors {
		t.recomputeOccFlavor(i, f)
	}
}

// Queue returns a queue's index, or -1.
func (t *Tree) Queue(name string) int {
	if i, ok := t.byName[name]; ok {
		return i
	}
	return -1
}

// IsLeaf reports whether queue i has no children (jobs go to leaves).
func (t *Tree) IsLeaf(i int) bool { return i > 0 && len(t.qs[i].children) == 0 }

// Name returns queue i's name.
func (t *Tree) Name(i int) string { return t.qs[i].name }

// Len is the number of queues including the root.
func (t *Tree) Len() int { return len(t.qs) }

// Parent returns queue i's parent index (-1 for the root).
func (t *Tree) Parent(i int) int { return t.qs[i].parent }

// SiblingsOwed reports whether some sibling of queue i has a nominal quota
// of flavor f: capacity i borrows at its level is then owed to someone who
// may reclaim it.
func (t *Tree) SiblingsOwed(i, f int) bool {
	p := t.qs[i].parent
	if p < 0 {
		return false
	}
	for _, c := range t.qs[p].children {
		if c != i && t.qs[c].nominal[f] > 0 {
			return true
		}
	}
	return false
}

// Tenant returns the name of queue i's tenant.
func (t *Tree) Tenant(i int) string {
	if t.qs[i].tenant < 0 {
		return ""
	}
	return t.qs[t.qs[i].tenant].name
}

// Strict reports whether queue i is strict FIFO.
func (t *Tree) Strict(i int) bool { return t.qs[i].strict }

// Weight is queue i's fair-share weight.
func (t *Tree) Weight(i int) float64 { return t.qs[i].weight }

// Flavors lists the flavor names in index order.
func (t *Tree) Flavors() []string { return t.flavors }

// FlavorIndex returns a flavor's index, or -1.
func (t *Tree) FlavorIndex(name string) int {
	if i, ok := t.flavorIdx[name]; ok {
		return i
	}
	return -1
}

// Usage is queue i's usage of flavor f (milli).
func (t *Tree) Usage(i, f int) int64 { return t.qs[i].usage[f] }

// Nominal is queue i's nominal quota of flavor f (milli).
func (t *Tree) Nominal(i, f int) int64 { return t.qs[i].nominal[f] }

// Limits returns queue i's limits for flavor f (Unlimited where unset).
func (t *Tree) Limits(i, f int) (nominal, borrow, lend int64) {
	q := &t.qs[i]
	return q.nominal[f], q.borrow[f], q.lend[f]
}

// Occupation is queue i's occupation of flavor f (see the package comment).
func (t *Tree) Occupation(i, f int) int64 { return t.qs[i].occ[f] }

// Demand is an amount of milli-accelerators per flavor index.
type Demand map[int]int64

// Refusal says which queue's limit a demand would break, with the figures
// its text is made of (taken when the check ran, so the text says what the
// check saw even if it is read later).
type Refusal struct {
	Queue  int
	Flavor int
	// AtRoot is true when the whole tree's pool is exhausted.
	AtRoot bool
	// WithinNominal is true when the requesting leaf would stay within its
	// own nominal quota: others are borrowing what it is owed, so taking it
	// back by preemption is allowed.
	WithinNominal bool

	leaf, at    string // the requesting leaf and the queue that refuses
	flavor      string
	amount      int64 // milli asked
	usage       int64 // the leaf's usage
	nominal     int64 // the leaf's nominal
	borrow      int64 // the leaf's borrowing limit
	atOcc       int64 // the refusing queue's occupation, nominal and limit
	atNom       int64
	atBorrow    int64
	atLimited   bool
	left        int64 // unused in the fleet's pool
	refusedLeaf bool
}

// Text is the refusal in plain words.
func (r *Refusal) Text() string {
	switch {
	case r.refusedLeaf:
		return fmt.Sprintf("queue %s would use %s %s, above nominal %s + borrowing limit %s",
			r.leaf, milliText(r.usage+r.amount), r.flavor, milliText(r.nominal), milliText(r.borrow))
	case r.atLimited:
		return fmt.Sprintf("queue %s (above %s) would hold %s %s, above its nominal %s + borrowing limit %s",
			r.at, r.leaf, milliText(r.atOcc+r.amount), r.flavor, milliText(r.atNom), milliText(r.atBorrow))
	case r.usage+r.amount <= r.nominal:
		return fmt.Sprintf("queue %s needs %s %s within its nominal quota (%s of %s in use), but other queues borrow it; %s left in the fleet's pool",
			r.leaf, milliText(r.amount), r.flavor, milliText(r.usage), milliText(r.nominal), milliText(r.left))
	}
	if r.usage > r.nominal {
		return fmt.Sprintf("queue %s holds %s %s, above its nominal %s, and needs %s more; the fleet's pool has %s left to lend",
			r.leaf, milliText(r.usage), r.flavor, milliText(r.nominal), milliText(r.amount), milliText(r.left))
	}
	return fmt.Sprintf("queue %s at nominal quota (%s of %s %s in use, needs %s more); the fleet's pool has %s left to lend",
		r.leaf, milliText(r.usage), milliText(r.nominal), r.flavor, milliText(r.amount), milliText(r.left))
}

// Check reports whether leaf q may add d. It changes nothing.
func (t *Tree) Check(q int, d Demand) *Refusal {
	for _, f := range sortedKeys(d) {
		if r := t.check(q, f, d[f]); r != nil {
			return r
		}
	}
	return nil
}

func sortedKeys(d Demand) []int {
	ks := make([]int, 0, len(d))
	for k := range d {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}

func (t *Tree) check(leaf, f int, amount int64) *Refusal {
	if amount <= 0 {
		return nil
	}
	// newOcc walks up: the occupation each ancestor would have.
	i := leaf
	newOcc := t.qs[i].occ[f] + amount
	for {
		q := &t.qs[i]
		if i == 0 {
			if newOcc > q.nominal[f] {
				return t.refusal(leaf, f, amount, 0)
			}
			return nil
		}
		if limit := sat(q.nominal[f] + q.borrow[f]); newOcc > limit {
			return t.refusal(leaf, f, amount, i)
		}
		reserved := max(0, q.nominal[f]-q.lend[f])
		oldHeld := max(q.occ[f], reserved)
		newHeld := max(newOcc, reserved)
		p := q.parent
		newOcc = t.qs[p].occ[f] - oldHeld + newHeld
		i = p
	}
}

func milliText(v int64) string {
	if v >= Unlimited {
		return "unlimited"
	}
	if v%1000 == 0 {
		return fmt.Sprintf("%d", v/1000)
	}
	return fmt.Sprintf("%.3g", float64(v)/1000)
}

// refusal records why leaf's demand of amount of flavor f is refused at
// queue at (0: the fleet's pool).
func (t *Tree) refusal(leaf, f int, amount int64, at int) *Refusal {
	q := &t.qs[leaf]
	r := &Refusal{Queue: at, Flavor: f, leaf: q.name, flavor: t.flavors[f], amount: amount,
		usage: q.usage[f], nominal: q.nominal[f], borrow: q.borrow[f], refusedLeaf: at == leaf,
		left: max(0, t.qs[0].nominal[f]-t.qs[0].occ[f])}
	if at == 0 {
		r.Queue, r.AtRoot = leaf, true
	}
	r.WithinNominal = q.usage[f]+amount <= q.nominal[f] && at != leaf
	if at != 0 && at != leaf && t.qs[at].borrow[f] < Unlimited {
		a := &t.qs[at]
		r.at, r.atOcc, r.atNom, r.atBorrow, r.atLimited = a.name, a.occ[f], a.nominal[f], a.borrow[f], true
	}
	return r
}

// Add records usage (negative amounts release it) on leaf q.
func (t *Tree) Add(q int, d Demand) {
	for f, v := range d {
		for i := q; i >= 0; i = t.qs[i].parent {
			t.qs[i].usage[f] += v
		}
		for i := q; i >= 0; i = t.qs[i].parent {
			t.recomputeOccFlavor(i, f)
		}
	}
}

func (t *Tree) recomputeOccFlavor(i, f int) {
	q := &t.qs[i]
	if len(q.children) == 0 {
		q.occ[f] = q.usage[f]
		return
	}
	var s int64
	for _, c := range q.children {
		s += t.held(c, f)
	}
	q.occ[f] = s
}

// SetLimits replaces queue q's limits for a flavor; the flavor must exist.
func (t *Tree) SetLimits(q int, flavor string, l Limits) error {
	f := t.FlavorIndex(flavor)
	if f < 0 {
		return fmt.Errorf("flavor %q: want one of %s", flavor, strings.Join(t.flavors, ", "))
	}
	if err := checkLimits(l); err != nil {
		return err
	}
	qq := &t.qs[q]
	qq.nomSet[f] = true
	qq.nominal[f] = l.Nominal
	qq.borrow[f], qq.lend[f] = Unlimited, Unlimited
	if l.Borrow != nil {
		qq.borrow[f] = *l.Borrow
	}
	if l.Lend != nil {
		qq.lend[f] = *l.Lend
	}
	// Unset inner nominals follow their children again.
	for i := qq.parent; i >= 0; i = t.qs[i].parent {
		if !t.qs[i].nomSet[f] || i == 0 {
			var s int64
			for _, c := range t.qs[i].children {
				s = sat(s + t.qs[c].nominal[f])
			}
			t.qs[i].nominal[f] = s
		}
	}
	for i := q; i >= 0; i = t.qs[i].parent {
		t.recomputeOcc(i)
	}
	return nil
}

// Share is queue q's weighted dominant-resource share: the largest, over
// flavors, of its usage divided by the fleet's pool of that flavor, divided
// by its weight.
func (t *Tree) Share(q int) float64 {
	best := 0.0
	for f := range t.flavors {
		pool := t.qs[0].nominal[f]
		if pool <= 0 || pool >= Unlimited {
			continue
		}
		if s := float64(t.qs[q].usage[f]) / float64(pool); s > best {
			best = s
		}
	}
	return best / t.qs[q].weight
}

// Borrowing reports how much of flavor f queue q's subtree holds above its
// nominal (0 when within it).
func (t *Tree) Borrowing(q, f int) int64 {
	return max(0, t.qs[q].occ[f]-t.qs[q].nominal[f])
}

// Path lists queue q and its ancestors up to, not including, the root.
func (t *Tree) Path(q int) []int {
	var out []int
	for i := q; i > 0; i = t.qs[i].parent {
		out = append(out, i)
	}
	return out
}
