package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/spec"
)

func init() { addCommand(newSubmitCmd) }

func newSubmitCmd() *cobra.Command {
	var key string
	var f *clientFlags
	c := &cobra.Command{
		Use:   "submit FILE...",
		Short: "Submit jobs to a gpufleet server",
		Long: `Submit sends each job file (YAML or JSON; "-" reads standard input) to the
server. A file of several YAML documents submits one job per document.

Submissions are idempotent: each carries a key, by default derived from the
file's name and content, so running the same submit twice returns the job
the first run created instead of making another. Give --idempotency-key to
choose the key yourself.`,
		Example: `  gpufleet submit train.yaml
  gpufleet submit --idempotency-key nightly-2031-05-01 train.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			if key != "" && len(args) > 1 {
				return fmt.Errorf("--idempotency-key names one submission; give one file")
			}
			var jobs []api.Job
			for _, path := range args {
				docs, err := readJobDocs(path, cmd.InOrStdin())
				if err != nil {
					return err
				}
				if key != "" && len(docs) > 1 {
					return fmt.Errorf("--idempotency-key names one submission; %s holds %d jobs", path, len(docs))
				}
				for _, d := range docs {
					k := key
					if k == "" {
						sum := sha256.Sum256(append([]byte(d.name+"\x00"), d.data...))
						k = "sha256:" + hex.EncodeToString(sum[:])
					}
					job, created, err := cl.Submit(cmd.Context(), d.name, d.data, k)
					if err != nil {
						return err
					}
					jobs = append(jobs, job)
					if f.output == "table" {
						verb := "submitted"
						if !created {
							verb = "was already submitted"
						}
						fmt.Fprintf(cmd.OutOrStdout(), "job %s %s (%s)\n", job.ID, verb, job.State)
						if job.Kind == "service" {
							fmt.Fprintf(cmd.OutOrStdout(), "  service %s: %s%s%s/%s/ (gpufleet describe service %s)\n",
								job.Name, cl.Base, api.ServePrefix, job.Tenant, job.Name, job.Name)
						}
					}
				}
			}
			if f.output == "table" {
				return nil
			}
			var out any = jobs
			if len(jobs) == 1 {
				out = jobs[0]
			}
			return f.emit(cmd.OutOrStdout(), out, func(*tabwriter.Writer) {})
		},
	}
	c.Flags().StringVar(&key, "idempotency-key", "", "`KEY` that makes a retry return the first submission's job (default: from the file name and content)")
	f = addClientFlags(c)
	return c
}

type jobDoc struct {
	name string
	data []byte
}

// readJobDocs reads a job file; a multi-document file is split into one
// rendered document per job (checked here against the default catalog; the
// server checks again).
func readJobDocs(path string, stdin io.Reader) ([]jobDoc, error) {
	var data []byte
	var err error
	name := filepath.Base(path)
	if path == "-" {
		name = "stdin"
		data, err = readLimited(name, stdin, spec.MaxJobBytes)
	} else {
		data, err = readFile(path, spec.MaxJobBytes)
	}
	if err != nil {
		return nil, err
	}
	jobs, err := spec.ParseJobs(name, data)
	if err != nil || len(jobs) <= 1 {
		// One job (or an error the server will name precisely): send the
		// document as written.
		return []jobDoc{{name: name, data: data}}, nil
	}
	out := make([]jobDoc, len(jobs))
	for i, js := range jobs {
		doc, err := spec.RenderJob(js)
		if err != nil {
			return nil, fmt.Errorf("%s: job %d: %w", name, i+1, err)
		}
		out[i] = jobDoc{name: fmt.Sprintf("%s#%d", name, i+1), data: doc}
	}
	return out, nil
}
