package spec

import (
	"fmt"
	"strings"

	"github.com/gpufleet/gpufleet/internal/plan"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// A catalog file says what a capacity plan may buy and where it may go,
// with what is already decided:
//
//	kind: catalog
//	models:
//	  - name: hgx-h100
//	    accelerators: 8xh100          # or {type: h100, count: 8}
//	    cpu: 192
//	    memory: 2Ti
//	    price: 280000                 # one node
//	    powerKW: 10.2                 # one node at full load
//	    leadTimeWeeks: 26
//	    space: 1                      # slots one node takes (default 1)
//	sites:
//	  - name: us-east/z1              # a domain path; new domains are new sites
//	    powerKW: 1700                 # default: the fleet file's powerCapKW there
//	    space: 320                    # node slots
//	    models: [hgx-h100]            # default: every model
//	commitments:                      # contracted demand of anchor tenants
//	  - {tenant: frontier, kind: training, accelerator: h100, accelerators: 256, fromWeek: 10, toWeek: 52}
//	onOrder:                          # nodes ordered already
//	  - {model: hgx-h100, site: us-east/z1, count: 16, week: 6}
//	retire:
//	  - {node: us-east-z1-b1-r1-n1, week: 20}
//	  - {domain: us-east/z1/b1, week: 30}
//
// Weeks count from 1, the week after the history ends.

var catalogFileFields = []string{"kind", "models", "sites", "commitments", "onOrder", "retire"}

var modelFields = []string{"name", "accelerators", "cpu", "memory", "price", "powerKW", "leadTimeWeeks", "space"}

var catalogSiteFields = []string{"name", "powerKW", "space", "models"}

var planCommitmentFields = []string{"tenant", "kind", "accelerator", "accelerators", "fromWeek", "toWeek"}

var onOrderFields = []string{"model", "site", "count", "week"}

var retireFields = []string{"node", "domain", "week"}

// maxWeeks bounds the weeks a catalog file names: twenty years.
const maxWeeks = 20 * 52

// ParseCatalog reads a catalog file. WithFleet checks accelerator types
// against the fleet's catalog and site paths against its levels.
func ParseCatalog(name string, data []byte, opts ...Option) (*plan.Catalog, error) {
	d := newDecoder(name)
	docs := d.documents(data, MaxFileBytes)
	if d.failed() {
		return nil, d.err()
	}
	if len(docs) != 1 {
		if len(docs) == 0 {
			d.add(0, 0, "", "holds no catalog")
		} else {
			d.add(docs[1].line, 0, "", fmt.Sprintf("holds %d documents; want one", len(docs)))
		}
		return nil, d.err()
	}
	o := makeOptions(opts)
	c := o.catalogFile(docs[0].root())
	if d.failed() {
		return nil, d.err()
	}
	return c, nil
}

func (o *options) catalogFile(v value) *plan.Catalog {
	c := &plan.Catalog{}
	fs, isMap := v.fields(catalogFileFields...)
	if !isMap {
		return c
	}
	if f, ok := fs.get("kind"); ok {
		if s, ok := f.str(); ok && s != string(KindCatalog) {
			f.errorf("%q: a catalog file has kind %s", s, KindCatalog)
		}
	}
	models := map[string]bool{}
	if mv, ok := fs.need("models"); ok {
		elems, ok := mv.seq()
		if ok && len(elems) == 0 {
			mv.errorf("want at least one model")
		}
		for _, e := range elems {
			if m, ok := o.model(e, models); ok {
				c.Models = append(c.Models, m)
			}
		}
	}
	sites := map[string]bool{}
	if sv, ok := fs.need("sites"); ok {
		elems, ok := sv.seq()
		if ok && len(elems) == 0 {
			sv.errorf("want at least one site")
		}
		for _, e := range elems {
			if s, ok := o.catalogSite(e, models, sites); ok {
				c.Sites = append(c.Sites, s)
			}
		}
	}
	if cv, ok := fs.get("commitments"); ok {
		elems, _ := cv.seq()
		for _, e := range elems {
			if cm, ok := o.commitment(e); ok {
				c.Commitments = append(c.Commitments, cm)
			}
		}
	}
	if ov, ok := fs.get("onOrder"); ok {
		elems, _ := ov.seq()
		for _, e := range elems {
			if dl, ok := onOrder(e, models, sites); ok {
				c.OnOrder = append(c.OnOrder, dl)
			}
		}
	}
	if rv, ok := fs.get("retire"); ok {
		elems, _ := rv.seq()
		for _, e := range elems {
			if r, ok := o.retirement(e); ok {
				c.Retire = append(c.Retire, r)
			}
		}
	}
	return c
}

// numberIn reads a number in lo..hi (above lo when open).
func numberIn(v value, lo, hi float64, open bool) (float64, bool) {
	x, ok := v.number()
	if !ok {
		return 0, false
	}
	text := v.n.GetToken().Value
	switch {
	case open && !(x > lo && x <= hi):
		v.errorf("%s, want above %v and at most %v", text, lo, hi)
		return 0, false
	case !open && !(x >= lo && x <= hi):
		v.errorf("%s, want %v..%v", text, lo, hi)
		return 0, false
	}
	return x, true
}

func (o *options) model(v value, seen map[string]bool) (plan.Model, bool) {
	var m plan.Model
	before := v.d.count
	fs, isMap := v.fields(modelFields...)
	if !isMap {
		return m, false
	}
	if nv, ok := fs.need("name"); ok {
		if s, ok := nv.str(); ok {
			if msg := checkName(s); msg != "" {
				nv.errorf("%s", msg)
			} else if seen[s] {
				nv.errorf("model %q is listed twice", s)
			}
			seen[s] = true
			m.Name = s
		}
	}
	if av, ok := fs.need("accelerators"); ok {
		m.Accel, m.Count, _ = nodeAccelerators(av, o.catalog)
	}
	if cv, ok := fs.need("cpu"); ok {
		m.CPUMilli = cpuValue(cv)
	}
	if mv, ok := fs.need("memory"); ok {
		m.MemoryMiB = memoryValue(mv)
	}
	if pv, ok := fs.need("price"); ok {
		m.Price, _ = numberIn(pv, 0, 1e12, false)
	}
	if pv, ok := fs.need("powerKW"); ok {
		m.PowerKW, _ = numberIn(pv, 0, 1e4, true)
	}
	if lv, ok := fs.need("leadTimeWeeks"); ok {
		x, _ := lv.intIn(0, maxWeeks)
		m.LeadWeeks = int(x)
	}
	m.Space = 1
	if sv, ok := fs.get("space"); ok {
		x, _ := sv.intIn(1, 1000)
		m.Space = int(x)
	}
	return m, v.d.count == before
}

func (o *options) catalogSite(v value, models, seen map[string]bool) (plan.Site, bool) {
	var s plan.Site
	before := v.d.count
	fs, isMap := v.fields(catalogSiteFields...)
	if !isMap {
		return s, false
	}
	if nv, ok := fs.need("name"); ok {
		if name, ok := nv.str(); ok {
			parts := strings.Split(name, "/")
			switch {
			case len(parts) > len(o.levels):
				nv.errorf("%q has %d parts, want at most %d (%s)", name, len(parts), len(o.levels), strings.Join(o.levels, "/"))
			case seen[name]:
				nv.errorf("site %q is listed twice", name)
			default:
				for i, p := range parts {
					if msg := checkName(p); msg != "" {
						nv.errorf("%s %s", o.levels[i], msg)
						break
					}
				}
			}
			seen[name] = true
			s.Name = name
		}
	}
	if pv, ok := fs.get("powerKW"); ok {
		s.PowerKW, _ = numberIn(pv, 0, 1e9, true)
	}
	if sv, ok := fs.get("space"); ok {
		x, _ := sv.intIn(1, 10_000_000)
		s.Space = int(x)
	}
	if mv, ok := fs.get("models"); ok {
		names, elems, _ := mv.stringList(false)
		for i, n := range names {
			if !models[n] {
				elems[i].errorf("model %q is not in the catalog's models", n)
			}
		}
		s.Models = names
	}
	return s, v.d.count == before
}

func weekField(fs fields, key string, need bool) (int, bool) {
	get := fs.get
	if need {
		get = fs.need
	}
	wv, ok := get(key)
	if !ok {
		return 0, false
	}
	x, ok := wv.intIn(1, maxWeeks)
	return int(x), ok
}

func (o *options) commitment(v value) (plan.Commitment, bool) {
	var c plan.Commitment
	before := v.d.count
	fs, isMap := v.fields(planCommitmentFields...)
	if !isMap {
		return c, false
	}
	c.Key.Kind = sched.Training.String()
	if tv, ok := fs.need("tenant"); ok {
		if s, ok := tv.str(); ok {
			if msg := checkName(s); msg != "" {
				tv.errorf("%s", msg)
			}
			c.Key.Tenant = s
		}
	}
	if kv, ok := fs.get("kind"); ok {
		if s, ok := kv.str(); ok {
			if _, err := sched.ParseKind(s); err != nil {
				kv.errorf("%v", err)
			}
			c.Key.Kind = s
		}
	}
	c.Key.Accel = plan.AnyAccel
	if av, ok := fs.get("accelerator"); ok {
		if s, ok := av.str(); ok {
			if s != plan.AnyAccel && o.catalog.Index(s) < 0 {
				av.errorf("type %q is not in the catalog (want one of %s, or * for any)", s, typeList(o.catalog))
			}
			c.Key.Accel = s
		}
	}
	if nv, ok := fs.need("accelerators"); ok {
		c.Accels, _ = numberIn(nv, 0, 1e9, true)
	}
	c.From = 1
	if w, ok := weekField(fs, "fromWeek", false); ok {
		c.From = w
	}
	if w, ok := weekField(fs, "toWeek", false); ok {
		c.To = w
		if w < c.From {
			tv, _ := fs.get("toWeek")
			tv.errorf("%d is before fromWeek %d", w, c.From)
		}
	}
	return c, v.d.count == before
}

func onOrder(v value, models, sites map[string]bool) (plan.Delivery, bool) {
	var dl plan.Delivery
	before := v.d.count
	fs, isMap := v.fields(onOrderFields...)
	if !isMap {
		return dl, false
	}
	if mv, ok := fs.need("model"); ok {
		if s, ok := mv.str(); ok {
			if !models[s] {
				mv.errorf("model %q is not in the catalog's models", s)
			}
			dl.Model = s
		}
	}
	if sv, ok := fs.need("site"); ok {
		if s, ok := sv.str(); ok {
			if !sites[s] {
				sv.errorf("site %q is not in the catalog's sites", s)
			}
			dl.Site = s
		}
	}
	if cv, ok := fs.need("count"); ok {
		x, _ := cv.intIn(1, 1_000_000)
		dl.Count = int(x)
	}
	dl.Week, _ = weekField(fs, "week", true)
	return dl, v.d.count == before
}

func (o *options) retirement(v value) (plan.Retirement, bool) {
	var r plan.Retirement
	before := v.d.count
	fs, isMap := v.fields(retireFields...)
	if !isMap {
		return r, false
	}
	nv, hasNode := fs.get("node")
	dv, hasDomain := fs.get("domain")
	switch {
	case hasNode && hasDomain:
		dv.errorf("give node (one node) or domain (all its nodes), not both")
	case hasNode:
		if s, ok := nv.str(); ok {
			if msg := checkName(s); msg != "" {
				nv.errorf("%s", msg)
			}
			r.Node = s
		}
	case hasDomain:
		if s, ok := dv.str(); ok {
			if n := len(strings.Split(s, "/")); n > len(o.levels) {
				dv.errorf("%q has %d parts, want at most %d (%s)", s, n, len(o.levels), strings.Join(o.levels, "/"))
			}
			r.Domain = s
		}
	default:
		v.errorf("give node (one node) or domain (all its nodes)")
	}
	r.Week, _ = weekField(fs, "week", true)
	return r, v.d.count == before
}
