// Package flagenv binds a flag.FlagSet to PIXEL_* environment variables:
// a flag given on the command line wins over its environment variable, which
// wins over the flag's default. The variable of flag "kafka.brokers" is
// PIXEL_KAFKA_BROKERS (dots become underscores, letters upper case).
package flagenv

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// EnvName returns the environment variable that backs the flag name.
func EnvName(flagName string) string {
	return "PIXEL_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(flagName))
}

// Parse parses args into fs, then fills every flag not given in args from its
// environment variable, looked up with getenv (os.Getenv when nil).
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		v := getenv(EnvName(f.Name))
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: %v", EnvName(f.Name), v, err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("invalid environment: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Secret is a flag value that never prints what it holds.
type Secret struct{ v string }

// String returns a redacted form of the value, as flag help and config dumps show it.
func (s *Secret) String() string {
	if s == nil || s.v == "" {
		return ""
	}
	return "<redacted>"
}

// Set stores the value.
func (s *Secret) Set(v string) error { s.v = v; return nil }

// Value returns the secret itself.
func (s *Secret) Value() string { return s.v }

// NewSecret returns a Secret holding v.
func NewSecret(v string) *Secret { return &Secret{v: v} }
