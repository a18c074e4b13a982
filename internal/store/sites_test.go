package store

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSiteCaps(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []SiteCap{{Site: "us/z1", KW: 12, SetMs: 1}, {Site: "eu/z1", KW: 3, SetMs: 2}, {Site: "us/z1", KW: 0, SetMs: 3}, {Site: "ap", KW: 9}} {
		rec, err := SiteCapChange(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Commit(Change{Records: []Record{rec}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Commit(Change{Records: []Record{SiteCapReset("ap")}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// What was set survives a reopening; a zero cap is kept (it lifts the
	// fleet file's), a deleted one is gone.
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := SiteCaps(db)
	if err != nil {
		t.Fatal(err)
	}
	want := []SiteCap{{V: 1, Site: "eu/z1", KW: 3, SetMs: 2}, {V: 1, Site: "us/z1", KW: 0, SetMs: 3}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("caps (-want +got):\n%s", diff)
	}
}
