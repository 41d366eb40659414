package validate

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/pixelpipe/pixelpipe/internal/flagenv"
)

// parts are the pixelpipe commands the manifests run as workloads.
var parts = []string{"edge", "processor", "aggregator", "query"}

// partFlags holds, per part, its flags by environment variable name, as
// the part's own -h lists them (TestMain).
var partFlags map[string]map[string]flagDef

// flagDef is one flag of a part: its name and its default as -h prints it
// ("" for the zero value, which -h leaves out).
type flagDef struct {
	name, def string
}

// buildBinary builds cmd/pixelpipe into dir, as make build does.
func buildBinary(moduleRoot, dir string) (string, error) {
	bin := filepath.Join(dir, "pixelpipe")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/pixelpipe")
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/pixelpipe: %v\n%s", err, out)
	}
	return bin, nil
}

var (
	flagLine    = regexp.MustCompile(`^  -([^ \t]+)`)
	defaultTail = regexp.MustCompile(`\(default (.+)\)$`)
)

// readFlags runs `pixelpipe PART -h` and returns the part's flags by their
// environment variable (flagenv.EnvName).
func readFlags(bin, part string) (map[string]flagDef, error) {
	var out bytes.Buffer
	cmd := exec.Command(bin, part, "-h")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{} // no PIXEL_* of the caller's
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s -h: %v\n%s", bin, part, err, out.String())
	}
	return parseHelp(out.String())
}

// parseHelp reads flag.PrintDefaults output: "  -name type" lines, each
// followed by usage lines that end with "(default X)" when the default is
// not the zero value.
func parseHelp(help string) (map[string]flagDef, error) {
	flags := map[string]flagDef{}
	var cur string
	var usage []string
	flush := func() error {
		if cur == "" {
			return nil
		}
		d := flagDef{name: cur}
		if m := defaultTail.FindStringSubmatch(strings.TrimSpace(strings.Join(usage, " "))); m != nil {
			d.def = m[1]
			if strings.HasPrefix(d.def, `"`) {
				v, err := strconv.Unquote(d.def)
				if err != nil {
					return fmt.Errorf("flag %s: default %s: %v", cur, d.def, err)
				}
				d.def = v
			}
		}
		flags[flagenv.EnvName(cur)] = d
		return nil
	}
	for _, line := range strings.Split(help, "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			if err := flush(); err != nil {
				return nil, err
			}
			cur, usage = m[1], nil
			continue
		}
		if cur != "" && strings.HasPrefix(line, "    ") {
			usage = append(usage, strings.TrimSpace(line))
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(flags) == 0 {
		return nil, fmt.Errorf("no flags in:\n%s", help)
	}
	return flags, nil
}
