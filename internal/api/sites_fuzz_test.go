package api

import (
	"math"
	"strconv"
	"testing"
)

// A site's cap is accepted only as a finite number of kW in range, and
// reads back as itself.
func FuzzDecodeSetSiteCap(f *testing.F) {
	f.Add([]byte(`{"kw":400}`))
	f.Add([]byte(`{"kw":0}`))
	f.Add([]byte(`{"kw":12.5}`))
	f.Add([]byte(`{"kw":-1}`))
	f.Add([]byte(`{"kw":"5"}`))
	f.Add([]byte(`{"kw":1e400}`))
	f.Add([]byte(`{"kw":null}`))
	f.Add([]byte(`{"kw":1,"mw":2}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		kw, e := DecodeSetSiteCap(data)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		if math.IsNaN(kw) || kw < 0 || kw > MaxSiteCapKW {
			t.Fatalf("accepted %v from %s", kw, data)
		}
		again, e := DecodeSetSiteCap([]byte(`{"kw":` + strconv.FormatFloat(kw, 'g', -1, 64) + `}`))
		if e != nil || again != kw {
			t.Fatalf("re-encoded %v: %v, %v", kw, again, e)
		}
	})
}
