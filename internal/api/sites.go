package api

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// MaxSiteCapKW bounds a site's power cap: a gigawatt is more than any
// data center campus draws.
const MaxSiteCapKW = 1e6

// Site is a site's power and carbon as the scheduling core sees them: a
// topology domain (a region or a zone) with a power cap, a PUE or a
// carbon intensity, or one at the core's site level that has nodes.
type Site struct {
	// Site is the domain's path ("us-east" or "us-east/z1").
	Site string `json:"site"`
	// CapKW is the power cap in kW (facility power, IT power x PUE,
	// unless ITCap); absent when the site has none. CapSource says who
	// set it: "fleet" (the fleet file) or "admin" (PUT
	// /v1/sites/{site}/cap, kept across restarts).
	CapKW     *float64 `json:"capKW,omitempty"`
	CapSource string   `json:"capSource,omitempty"`
	ITCap     bool     `json:"itCap,omitempty"`
	// DrawKW is the power the site draws or has committed (idle power of
	// its accelerators, the busy power of those allocated, held ones
	// included), of the same kind as the cap; absent for a site the
	// core does not meter (no cap and no PUE).
	DrawKW *float64 `json:"drawKW,omitempty"`
	// PUE is the site's power usage effectiveness, when given.
	PUE float64 `json:"pue,omitempty"`
	// IntensityGPerKWh is the grid's carbon intensity forecast for now,
	// in gCO2/kWh; absent when the server has no forecast for the site.
	IntensityGPerKWh *float64 `json:"intensityGPerKWh,omitempty"`
	// Nodes counts the registered nodes below the site.
	Nodes int `json:"nodes"`
}

// SiteList is the answer to GET /v1/sites.
type SiteList struct {
	Sites []Site `json:"sites"`
	// CarbonAware says whether the core's carbon rule and stage are on.
	CarbonAware bool `json:"carbonAware"`
}

// SetSiteCap is the body of PUT /v1/sites/{site}/cap.
type SetSiteCap struct {
	KW json.Number `json:"kw"`
}

// DecodeSetSiteCap reads and checks a site's new cap in kW (0 lifts it).
func DecodeSetSiteCap(data []byte) (float64, *Error) {
	// Read raw, so that a string or any other value is an error of kw.
	var b struct {
		KW json.RawMessage `json:"kw"`
	}
	if err := decodeStrict(data, &b); err != nil {
		return 0, err
	}
	raw := strings.TrimSpace(string(b.KW))
	if raw == "" || raw == "null" {
		return 0, Invalid("kw", "missing: want the cap in kW, 0 to lift it")
	}
	return ParseSiteCap("kw", raw)
}

// ParseSiteCap reads a cap in kW: a finite number in 0..MaxSiteCapKW.
func ParseSiteCap(field, s string) (float64, *Error) {
	kw, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(kw) || math.IsInf(kw, 0) || kw < 0 || kw > MaxSiteCapKW {
		return 0, Invalid(field, "%q: want a number of kW in 0..%g (0 lifts the cap)", s, float64(MaxSiteCapKW))
	}
	return kw, nil
}

// CheckSitePath checks a site's path: names of domains joined by "/".
func CheckSitePath(field, site string) *Error {
	if site == "" || len(site) > 253 {
		return Invalid(field, "%q: want a topology domain's path such as us-east or us-east/z1", site)
	}
	for _, part := range strings.Split(site, "/") {
		if part == "" || strings.TrimSpace(part) != part {
			return Invalid(field, "%q: want a topology domain's path such as us-east or us-east/z1 (no empty part, no spaces around one)", site)
		}
	}
	return nil
}

// Sites lists the sites.
func (c *Client) Sites(ctx context.Context) (SiteList, error) {
	var l SiteList
	err := c.get(ctx, "/v1/sites", &l)
	return l, err
}

// SetSiteCap sets a site's power cap in kW, 0 lifting it (admin only).
func (c *Client) SetSiteCap(ctx context.Context, site, kw string) (Site, error) {
	var out Site
	err := c.send(ctx, http.MethodPut, "/v1/sites/"+url.PathEscape(site)+"/cap", SetSiteCap{KW: json.Number(kw)}, &out)
	return out, err
}

// ResetSiteCap forgets the cap an administrator set: the fleet file's
// holds again (admin only).
func (c *Client) ResetSiteCap(ctx context.Context, site string) (Site, error) {
	var out Site
	err := c.send(ctx, http.MethodDelete, "/v1/sites/"+url.PathEscape(site)+"/cap", nil, &out)
	return out, err
}
