package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// DefaultServer is where the client commands look for a server when no
// flag, environment variable or config file names one.
const DefaultServer = "http://127.0.0.1:7070"

// clientConfig is the client's config file (~/.config/gpufleet/config.yaml).
type clientConfig struct {
	Server string `yaml:"server"`
	Token  string `yaml:"token"`
}

// configPath is the client's config file under the user's config dir
// ($XDG_CONFIG_HOME, else ~/.config on Unix).
func configPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "gpufleet", "config.yaml"), nil
}

// maxConfigBytes bounds the client config: a server and a token.
const maxConfigBytes = 64 << 10

func readConfig() (clientConfig, string, error) {
	var c clientConfig
	path, err := configPath()
	if err != nil {
		return c, "", nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, path, nil
	}
	if err != nil {
		return c, path, err
	}
	if err := spec.CheckYAML(path, data, maxConfigBytes); err != nil {
		return c, path, err
	}
	if err := yaml.UnmarshalWithOptions(data, &c, yaml.Strict()); err != nil {
		return c, path, fmt.Errorf("%s: %w", path, err)
	}
	return c, path, nil
}

func writeConfig(c clientConfig) (string, error) {
	path, err := configPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, data, 0o600)
}

// clientFlags are the connection and output flags of every client command.
type clientFlags struct {
	server, token, output string
	// formats lists the output formats a command takes beyond table,
	// json and yaml.
	formats []string
}

func addClientFlags(c *cobra.Command) *clientFlags {
	f := &clientFlags{}
	c.Flags().StringVar(&f.server, "server", "", "server `URL`, or several servers of a group separated by commas (default $GPUFLEET_SERVER, the config file, or "+DefaultServer+")")
	c.Flags().StringVar(&f.token, "token", "", "bearer `TOKEN` (default $GPUFLEET_TOKEN or the config file)")
	c.Flags().StringVarP(&f.output, "output", "o", "table", "output `FORMAT`: table, json or yaml")
	return f
}

// client resolves the server and token: flags, then the environment, then
// the config file.
func (f *clientFlags) client() (*api.Client, error) {
	switch f.output {
	case "table", "json", "yaml":
	default:
		if !slices.Contains(f.formats, f.output) {
			all := append([]string{"table", "json", "yaml"}, f.formats...)
			return nil, fmt.Errorf("--output %q: want %s or %s", f.output, strings.Join(all[:len(all)-1], ", "), all[len(all)-1])
		}
	}
	server, token := f.server, f.token
	if server == "" {
		server = os.Getenv("GPUFLEET_SERVER")
	}
	if token == "" {
		token = os.Getenv("GPUFLEET_TOKEN")
	}
	if server == "" || token == "" {
		cfg, path, err := readConfig()
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if server == "" {
			server = cfg.Server
		}
		if token == "" {
			token = cfg.Token
		}
		if token == "" {
			return nil, fmt.Errorf("no token: pass --token, set GPUFLEET_TOKEN, or run gpufleet up (which writes %s)", path)
		}
	}
	if server == "" {
		server = DefaultServer
	}
	bases := api.Bases(server)
	for i, b := range bases {
		if !strings.Contains(b, "://") {
			bases[i] = "http://" + b
		}
	}
	return api.NewClient(strings.Join(bases, ","), token), nil
}

// emit writes v as JSON or YAML, or calls table for the table format.
func (f *clientFlags) emit(w io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	switch f.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		// Through JSON, so the YAML keys are the API's field names.
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		out, err := yaml.JSONToYAML(data)
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// age renders how long ago t was, coarsely.
func age(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// amounts renders a flavor map as "h100=16,h200=8".
func amounts(m map[string]float64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%g", k, m[k])
	}
	return strings.Join(parts, ",")
}

func nominals(qs map[string]api.Quota) string {
	m := make(map[string]float64, len(qs))
	for k, q := range qs {
		m[k] = q.Nominal
	}
	return amounts(m)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
