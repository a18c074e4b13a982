package cli

import (
	"io"
	"os"

	"github.com/gpufleet/gpufleet/internal/spec"
)

// readFile reads a spec file of at most limit bytes. A larger file is
// refused by its size before any of it is read, and the error names the
// file and the limit: parsing costs many times a document's size in
// memory, and the server would refuse it anyway.
func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > limit {
		return nil, &spec.SizeError{Name: path, Size: fi.Size(), Limit: limit}
	}
	return readLimited(path, f, limit)
}

// readLimited reads at most limit bytes of r (a pipe, standard input).
func readLimited(name string, r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &spec.SizeError{Name: name, Size: -1, Limit: limit}
	}
	return data, nil
}
