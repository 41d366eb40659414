package flagenv

import (
	"flag"
	"io"
	"testing"
)

func TestParsePrecedence(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"PIXEL_KAFKA_BROKERS":   "env:1",
		"PIXEL_EDGE_LISTENADDR": "env:2",
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	brokers := fs.String("kafka.brokers", "def:1", "")
	listen := fs.String("edge.listenAddr", "def:2", "")
	other := fs.String("other", "def:3", "")
	if err := Parse(fs, []string{"-kafka.brokers=flag:1"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *brokers != "flag:1" || *listen != "env:2" || *other != "def:3" {
		t.Fatalf("got %q %q %q", *brokers, *listen, *other)
	}
}

func TestParseBadEnv(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Int("n", 1, "")
	err := Parse(fs, nil, func(k string) string {
		if k == "PIXEL_N" {
			return "nope"
		}
		return ""
	})
	if err == nil {
		t.Fatal("want an error for a non-numeric PIXEL_N")
	}
}

func TestSecretRedacted(t *testing.T) {
	t.Parallel()
	s := NewSecret("hunter2")
	if s.String() == "hunter2" || s.Value() != "hunter2" {
		t.Fatalf("String %q Value %q", s.String(), s.Value())
	}
}
