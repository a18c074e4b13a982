package store

import (
	"encoding/json"

	"github.com/gpufleet/gpufleet/internal/store/schema"
)

// Site power caps set at run time (an administrator's, for a utility's
// request to cut) outlive a restart and a new leader's term: the server
// applies them over the fleet file's caps when it rebuilds the scheduling
// core. They are extra records of KindSiteCap keyed by site path, written
// with the loop's commit, so both stores carry them.
const KindSiteCap = "sitecap"

// SiteCap is a site's power cap as an administrator set it: KW 0 lifts
// the site's cap (the fleet file's too) until it is set again.
type SiteCap = schema.SiteCap

// SiteCapChange is the record that sets a site's cap, replacing the one
// before.
func SiteCapChange(c SiteCap) (Record, error) {
	c.V = schema.Version
	data, err := json.Marshal(c)
	if err != nil {
		return Record{}, err
	}
	return Record{Kind: KindSiteCap, Key: c.Site, Value: data}, nil
}

// SiteCapReset is the record that forgets a site's cap: the fleet file's
// holds again.
func SiteCapReset(site string) Record { return Record{Kind: KindSiteCap, Key: site} }

// SiteCaps returns every recorded cap, by site path.
func SiteCaps(r RecordReader) ([]SiteCap, error) {
	return all(r, KindSiteCap, func(c *SiteCap) int { return c.V })
}
