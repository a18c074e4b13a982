package store

import (
	"encoding/json"

	bolt "go.etcd.io/bbolt"
)

// Site power caps set at run time (an administrator's, for a utility's
// request to cut) outlive a restart: the server applies them over the
// fleet file's caps when it rebuilds the scheduling core.
var bucketSiteCaps = []byte("sitecaps") // site path -> SiteCap

func init() { allBuckets = append(allBuckets, bucketSiteCaps) }

// SiteCapVersion is the schema version of a stored site cap.
const SiteCapVersion = 1

// SiteCap is a site's power cap as an administrator set it: KW 0 lifts
// the site's cap (the fleet file's too) until it is set again.
type SiteCap struct {
	V     int     `json:"v"`
	Site  string  `json:"site"`
	KW    float64 `json:"kw"`
	SetMs int64   `json:"setMs"`
}

// PutSiteCap records a site's cap, replacing the one before.
func (d *DB) PutSiteCap(c SiteCap) error {
	c.V = SiteCapVersion
	return d.bolt.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketSiteCaps), []byte(c.Site), c)
	})
}

// DeleteSiteCap forgets a site's cap: the fleet file's holds again.
func (d *DB) DeleteSiteCap(site string) error {
	return d.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSiteCaps).Delete([]byte(site))
	})
}

// SiteCaps returns every recorded cap, by site path.
func (d *DB) SiteCaps() ([]SiteCap, error) {
	var out []SiteCap
	return out, d.each(bucketSiteCaps, func(v []byte) error {
		var c SiteCap
		err := json.Unmarshal(v, &c)
		out = append(out, c)
		return err
	})
}
