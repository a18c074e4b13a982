package server

import (
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// Sites: the power caps and carbon intensity of the fleet's sites. The
// fleet file gives the core its caps, PUE and forecast (Config.Sched:
// Sites, Forecast, and the carbon rule and stage when carbon-aware); an
// administrator may change a cap at run time (a utility asks for a cut),
// which the core applies at once (SitePowerCapped: work over the new cap
// is stopped in priority order with notice) and the store keeps, so a
// restarted core is built with it over the fleet file's.

func (s *Server) siteRoutes() []route {
	return []route{
		{"GET", "/v1/sites", users, s.listSites},
		{"PUT", "/v1/sites/{site}/cap", admin, s.setSiteCap},
		{"DELETE", "/v1/sites/{site}/cap", admin, s.resetSiteCap},
	}
}

// loadSiteCaps reads the caps administrators set.
func (l *loop) loadSiteCaps() error {
	caps, err := store.SiteCaps(l.s.db)
	if err != nil {
		return err
	}
	l.siteCaps = map[string]store.SiteCap{}
	for _, c := range caps {
		l.siteCaps[c.Site] = c
	}
	return nil
}

// schedConfig is the core's configuration with the caps administrators
// set over the fleet file's.
func (l *loop) schedConfig() sched.Config {
	cfg := l.s.cfg.Sched
	if len(l.siteCaps) == 0 {
		return cfg
	}
	cfg.Sites = slices.Clone(cfg.Sites)
	for _, path := range slices.Sorted(maps.Keys(l.siteCaps)) {
		kw := l.siteCaps[path].KW
		if i := slices.IndexFunc(cfg.Sites, func(s sched.Site) bool { return s.Domain == path }); i >= 0 {
			cfg.Sites[i].PowerCapKW = kw
			continue
		}
		cfg.Sites = append(cfg.Sites, sched.Site{Domain: path, PowerCapKW: kw, PUE: l.sitePUE(path)})
	}
	return cfg
}

// sitePUE is the PUE of a site the fleet file does not list: its nearest
// listed domain's above it, else what the meter uses for it (the prices
// file's or the default site's), so that the cap and the meter agree.
func (l *loop) sitePUE(path string) float64 {
	for p := path; p != ""; {
		for _, s := range l.s.cfg.Sched.Sites {
			if s.Domain == p && s.PUE > 0 {
				return s.PUE
			}
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	if s, ok := l.acct.sites[path]; ok && s.PUE > 0 {
		return s.PUE
	}
	return l.acct.defSite.PUE
}

// fleetCap is the cap the fleet file gives a site (0: none).
func (l *loop) fleetCap(path string) float64 {
	for _, s := range l.s.cfg.Sched.Sites {
		if s.Domain == path {
			return s.PowerCapKW
		}
	}
	return 0
}

// nodesBelow counts the registered nodes below a domain path.
func (l *loop) nodesBelow(path string) int {
	n := 0
	for _, nd := range l.nodes {
		fn, err := fleetNode(nd.rec.Info)
		if err != nil {
			continue
		}
		for i := range fn.Path {
			if strings.Join(fn.Path[:i+1], "/") == path {
				n++
				break
			}
		}
	}
	return n
}

// nodeCounts counts the registered nodes below every domain path that has
// any, down to the site level or the deepest site listed, in one pass over
// the nodes (BenchmarkSiteGauges10kNodes).
func (l *loop) nodeCounts() map[string]int {
	depth := siteLevelOf(l.s.cfg.Sched.SiteLevel) + 1
	for _, s := range l.s.cfg.Sched.Sites {
		depth = max(depth, strings.Count(s.Domain, "/")+1)
	}
	for p := range l.siteCaps {
		depth = max(depth, strings.Count(p, "/")+1)
	}
	levels := fleet.DefaultLevels[:min(depth, len(fleet.DefaultLevels))]
	out := map[string]int{}
	var b []byte
	for _, nd := range l.nodes {
		b = b[:0]
		// The node's path as fleetNode reads it (every level, "default"
		// for one its agent leaves out), a level at a time.
		for i, lvl := range levels {
			part := nd.rec.Info.Path[lvl]
			if part == "" {
				part = "default"
			}
			if i > 0 {
				b = append(b, '/')
			}
			b = append(b, part...)
			if n, ok := out[string(b)]; ok { // no key allocated
				out[string(b)] = n + 1
			} else {
				out[string(b)] = 1
			}
		}
	}
	return out
}

// siteViews lists every site the core meters or the fleet file names,
// and every domain at the site level that has nodes.
func (l *loop) siteViews(now time.Time) []api.Site {
	counts := l.nodeCounts()
	power := map[string]sched.SitePower{}
	for _, p := range l.core.Power() {
		power[p.Site] = p
	}
	paths := map[string]bool{}
	for _, s := range l.s.cfg.Sched.Sites {
		paths[s.Domain] = true
	}
	for p := range power {
		paths[p] = true
	}
	for p := range l.siteCaps {
		paths[p] = true
	}
	lvl := siteLevelOf(l.s.cfg.Sched.SiteLevel)
	for p := range counts {
		if strings.Count(p, "/") == lvl {
			paths[p] = true
		}
	}
	out := make([]api.Site, 0, len(paths))
	for _, path := range slices.Sorted(maps.Keys(paths)) {
		out = append(out, l.siteView(path, counts[path], power, now))
	}
	return out
}

func (l *loop) siteView(path string, nodes int, power map[string]sched.SitePower, now time.Time) api.Site {
	v := api.Site{Site: path, Nodes: nodes}
	for _, s := range l.s.cfg.Sched.Sites {
		if s.Domain == path {
			v.PUE, v.ITCap = s.PUE, s.ITCap
		}
	}
	if p, ok := power[path]; ok {
		draw := round3(p.DrawKW)
		v.DrawKW = &draw
		v.ITCap = p.ITCap
		if p.PUE > 0 {
			v.PUE = p.PUE
		}
		if p.CapKW > 0 {
			c := p.CapKW
			v.CapKW = &c
			v.CapSource = "fleet"
			if _, ok := l.siteCaps[path]; ok {
				v.CapSource = "admin"
			}
		}
	}
	if g, ok := l.intensityNow(path, now); ok {
		v.IntensityGPerKWh = &g
	}
	return v
}

// intensityNow is the forecast intensity at a site now.
func (l *loop) intensityNow(site string, now time.Time) (float64, bool) {
	fc := l.s.cfg.Sched.Forecast
	if fc == nil {
		return 0, false
	}
	t := now.Unix()
	vs := fc.Intensity(site, t, t+1)
	if len(vs) == 0 {
		return 0, false
	}
	return math.Round(vs[0]*10) / 10, true
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// carbonAware says whether the core runs the carbon rule.
func (s *Server) carbonAware() bool { return slices.Contains(s.cfg.Sched.Admission, "carbon") }

func (s *Server) listSites(w http.ResponseWriter, r *http.Request, _ principal) {
	out, err := exec(r.Context(), s, func(l *loop, reply func(api.SiteList)) {
		reply(api.SiteList{Sites: l.siteViews(l.now()), CarbonAware: s.carbonAware()})
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) setSiteCap(w http.ResponseWriter, r *http.Request, _ principal) {
	site := r.PathValue("site")
	if e := api.CheckSitePath("site", site); e != nil {
		writeErr(w, e)
		return
	}
	body, e := readJSON(r, api.MaxBody)
	if e != nil {
		writeErr(w, e)
		return
	}
	kw, e := api.DecodeSetSiteCap(body)
	if e != nil {
		writeErr(w, e)
		return
	}
	s.siteCapOp(w, r, site, func(l *loop, now time.Time) error {
		return l.setSiteCap(store.SiteCap{Site: site, KW: kw, SetMs: now.UnixMilli()}, now)
	})
}

func (s *Server) resetSiteCap(w http.ResponseWriter, r *http.Request, _ principal) {
	site := r.PathValue("site")
	if e := api.CheckSitePath("site", site); e != nil {
		writeErr(w, e)
		return
	}
	s.siteCapOp(w, r, site, func(l *loop, now time.Time) error { return l.resetSiteCap(site, now) })
}

// siteCapOp runs op on the loop and answers with the site once what the
// core decided (the work it stops) is durable.
func (s *Server) siteCapOp(w http.ResponseWriter, r *http.Request, site string, op func(l *loop, now time.Time) error) {
	type answer struct {
		v   api.Site
		err error
	}
	a, err := exec(r.Context(), s, func(l *loop, reply func(answer)) {
		now := l.now()
		if l.nodesBelow(site) == 0 {
			reply(answer{err: api.NotFound("site %q has no registered node; the sites with nodes are %s (gpufleet get sites)", site, l.sitesWithNodes())})
			return
		}
		if err := op(l, now); err != nil {
			reply(answer{err: err})
			return
		}
		l.afterCommit(func(err error) {
			power := map[string]sched.SitePower{}
			for _, p := range l.core.Power() {
				power[p.Site] = p
			}
			reply(answer{l.siteView(site, l.nodesBelow(site), power, now), err})
		})
	})
	if err == nil {
		err = a.err
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.v)
}

// sitesWithNodes names the domains that have nodes, for an error message.
func (l *loop) sitesWithNodes() string {
	lvl := siteLevelOf(l.s.cfg.Sched.SiteLevel)
	seen := map[string]bool{}
	for _, nd := range l.nodes {
		if fn, err := fleetNode(nd.rec.Info); err == nil {
			for i := 0; i < len(fn.Path) && i <= lvl; i++ {
				seen[strings.Join(fn.Path[:i+1], "/")] = true
			}
		}
	}
	if len(seen) == 0 {
		return "none yet"
	}
	return strings.Join(slices.Sorted(maps.Keys(seen)), ", ")
}

// setSiteCap stores an administrator's cap, then gives it to the core,
// which stops work over it; the lifecycle carries that out.
func (l *loop) setSiteCap(c store.SiteCap, now time.Time) error {
	rec, err := store.SiteCapChange(c)
	if err != nil {
		return api.Internal("store the cap of site %s: %v", c.Site, err)
	}
	l.Record(rec) // with the loop's next commit, before the answer
	l.siteCaps[c.Site] = c
	l.log.Info("site power cap set", "site", c.Site, "kw", c.KW)
	return l.capCore(c.Site, c.KW, now)
}

// resetSiteCap forgets an administrator's cap: the fleet file's holds.
func (l *loop) resetSiteCap(site string, now time.Time) error {
	l.Record(store.SiteCapReset(site))
	delete(l.siteCaps, site)
	return l.capCore(site, l.fleetCap(site), now)
}

func (l *loop) capCore(site string, kw float64, now time.Time) error {
	if _, err := l.core.Apply(sched.TimeAdvanced{Now: now.Unix()}); err != nil {
		return api.Internal("cap site %s: %v", site, err)
	}
	if err := l.apply(sched.SitePowerCapped{Site: site, KW: kw, PUE: l.sitePUE(site)}, now); err != nil {
		return api.Invalid("site", "%v", err)
	}
	return nil
}

// reapplySiteCaps gives a rebuilt core its caps once more, now that its
// running work is restored with its exact bindings (which no cap refuses):
// a cap below what the restored work draws stops work as a cut does.
func (l *loop) reapplySiteCaps(now time.Time) {
	var capped []sched.Site
	for _, s := range l.schedConfig().Sites {
		if s.PowerCapKW > 0 && l.nodesBelow(s.Domain) > 0 {
			capped = append(capped, s)
		}
	}
	if len(capped) == 0 {
		return
	}
	if _, err := l.core.Apply(sched.TimeAdvanced{Now: now.Unix()}); err != nil {
		l.log.Warn("restore: clock", "err", err)
		return
	}
	for _, s := range capped {
		if err := l.apply(sched.SitePowerCapped{Site: s.Domain, KW: s.PowerCapKW}, now); err != nil {
			l.log.Warn("restore: a site cap was refused", "site", s.Domain, "err", err)
		}
	}
}

// siteMetrics are the sites' power and carbon gauges.
type siteMetrics struct {
	drawKW, capKW, intensity *prometheus.GaugeVec
}

func newSiteMetrics(reg *prometheus.Registry) *siteMetrics {
	m := &siteMetrics{
		drawKW: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_site_power_committed_watts",
			Help: "Power a site draws or has committed by the scheduler's power model (idle power, board power of allocated and held accelerators), facility power (IT power where the cap is of IT power), for the sites the core meters; gpufleet_site_power_watts is the measured draw."}, []string{"site"}),
		capKW: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_site_power_cap_watts",
			Help: "A site's power cap, for the capped sites (of the same power as gpufleet_site_power_committed_watts)."}, []string{"site"}),
		intensity: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpufleet_carbon_intensity_g_per_kwh",
			Help: "The grid's carbon intensity forecast for now at a site, in gCO2 per kWh."}, []string{"site"}),
	}
	reg.MustRegister(m.drawKW, m.capKW, m.intensity)
	return m
}

// updateSiteGauges refreshes the sites' gauges (under the metrics' lock).
func (l *loop) updateSiteGauges(m *siteMetrics, now time.Time) {
	m.drawKW.Reset()
	m.capKW.Reset()
	m.intensity.Reset()
	if len(l.s.cfg.Sched.Sites) == 0 && len(l.siteCaps) == 0 && l.s.cfg.Sched.Forecast == nil {
		return
	}
	for _, v := range l.siteViews(now) {
		if v.DrawKW != nil {
			m.drawKW.WithLabelValues(v.Site).Set(*v.DrawKW * 1000)
		}
		if v.CapKW != nil {
			m.capKW.WithLabelValues(v.Site).Set(*v.CapKW * 1000)
		}
		if v.IntensityGPerKWh != nil {
			m.intensity.WithLabelValues(v.Site).Set(*v.IntensityGPerKWh)
		}
	}
}

// reloadEvery is how often the forecast's files are looked at again.
const reloadEvery = time.Minute

// reloadForecast reads the forecast again when its files changed (the
// operator's feed refreshes them); a failed read keeps the forecast the
// core had.
func (l *loop) reloadForecast(now time.Time) {
	if l.s.cfg.ForecastReload == nil || now.Sub(l.lastReload) < reloadEvery {
		return
	}
	l.lastReload = now
	changed, err := l.s.cfg.ForecastReload()
	switch {
	case err != nil:
		l.log.Error("carbon forecast: reload failed; the core keeps the forecast it had", "err", err)
	case changed:
		l.log.Info("carbon forecast reloaded")
	}
}
