package server

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/store"
)

// A backup taken while the server runs is a store that opens with every
// acknowledged job in it; only admins may take one.
func TestBackupWhileRunning(t *testing.T) {
	h := start(t, "")
	acme := h.client("acme")
	h.node("n1")
	var ids []string
	for range 3 {
		ids = append(ids, h.submit(acme, benchJob).ID)
	}
	var buf bytes.Buffer
	n, err := h.admin.Backup(h.ctx(), &buf)
	if err != nil || n == 0 || int64(buf.Len()) != n {
		t.Fatalf("backup: %d bytes (%d read), %v", n, buf.Len(), err)
	}
	if _, err := acme.Backup(h.ctx(), &bytes.Buffer{}); apiStatus(err) != 403 {
		t.Errorf("a tenant's backup: %v, want 403", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, store.FileName), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got []string
	if err := db.List(store.Filter{}, 0, func(j *store.Job) bool { got = append(got, j.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("jobs in the backup (-want +got):\n%s", diff)
	}
}
