package server

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// backupper is a store that can copy itself while it runs (the bbolt
// file, through a read transaction: bbolt's Tx.WriteTo).
type backupper interface {
	Backup(w io.Writer) (int64, error)
}

// backupTimeout bounds the writing of a backup (a large file on a slow
// link).
const backupTimeout = 30 * time.Minute

// backup streams a consistent copy of the store file; an etcd store is
// backed up with etcd's own snapshots.
func (s *Server) backup(w http.ResponseWriter, r *http.Request, _ principal) {
	b, ok := s.db.(backupper)
	if !ok {
		writeErr(w, api.Conflict("this server's store is an etcd cluster: back it up with etcdctl snapshot save (docs/OPERATIONS.md)"))
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(backupTimeout))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="state.db"`)
	n, err := b.Backup(w)
	if err != nil {
		// The status line may be out: the copy is cut short, and its
		// reader finds it shorter than the size it was told, or torn.
		s.log.Error("backup", "err", err, "bytes", n)
		return
	}
	s.log.Info("backup written", "bytes", strconv.FormatInt(n, 10))
}
