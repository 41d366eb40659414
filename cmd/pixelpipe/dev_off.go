//go:build !devmode

package main

import (
	"context"
	"errors"
	"io"
)

// cmdDev is left out of the part binaries: the embedded Kafka broker and
// Redis it runs on are for trying pixelpipe out (make run builds with the
// devmode tag), and keeping them out makes the binaries that run in
// production smaller and free of test services.
func cmdDev(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev", "", "pixelpipe dev   (this binary has no dev mode; make run builds one that has)")
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	return errors.New("this binary is built without dev mode: run `make run`, or build with -tags devmode")
}
