// Command image assembles the pixelpipe container image without a container
// engine: one layer holding the static binary as /pixelpipe, /etc/passwd and
// /etc/group with the unprivileged user nonroot (65532), CA certificates
// (for TLS to Kafka or Redis) and an empty /tmp, and nothing else: no shell,
// no package manager. The image runs as 65532 and suits a read-only root
// file system. It is written as a docker-loadable tarball (docker load,
// crane push).
//
//	CGO_ENABLED=0 go build -o build/image/pixelpipe ./cmd/pixelpipe
//	go run ./deploy/image -binary build/image/pixelpipe -o build/pixelpipe-image.tar
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// User and group id of the image's user.
const nonroot = 65532

func main() {
	binary := flag.String("binary", "", "the pixelpipe binary, built with CGO_ENABLED=0 for linux (required)")
	out := flag.String("o", "build/pixelpipe-image.tar", "tarball to write")
	tag := flag.String("tag", "pixelpipe:dev", "image reference recorded in the tarball")
	certs := flag.String("certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to install as /etc/ssl/certs/ca-certificates.crt; empty = none")
	arch := flag.String("arch", runtime.GOARCH, "architecture of the binary")
	flag.Parse()
	if err := run(*binary, *out, *tag, *certs, *arch); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(binary, out, tag, certs, arch string) error {
	if binary == "" {
		return errors.New("-binary is required")
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	var ca []byte
	if certs != "" {
		if ca, err = os.ReadFile(certs); err != nil {
			return err
		}
	}
	img, err := Build(bin, ca, arch)
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(tag)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return err
	}
	d, _ := img.Digest()
	fmt.Printf("wrote %s (%s, %s)\n", out, tag, d)
	return nil
}

// Build returns the image of the static binary bin, with the CA bundle ca
// when not empty, for linux/arch. It refuses a binary that is not a static
// Linux ELF executable: the image has no dynamic loader or libc.
func Build(bin, ca []byte, arch string) (v1.Image, error) {
	if err := checkStatic(bin); err != nil {
		return nil, err
	}
	layer, err := rootLayer(bin, ca)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config = v1.Config{
		Entrypoint: []string{"/pixelpipe"},
		User:       fmt.Sprintf("%d:%d", nonroot, nonroot),
		WorkingDir: "/",
		Env:        []string{"PATH=/", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		Labels:     map[string]string{"org.opencontainers.image.title": "pixelpipe"},
	}
	return mutate.ConfigFile(img, cf)
}

// checkStatic fails unless bin is a Linux ELF executable without a dynamic
// interpreter.
func checkStatic(bin []byte) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("binary: not an ELF executable (build it for linux): %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("binary: dynamically linked; build it with CGO_ENABLED=0")
		}
	}
	return nil
}

// rootLayer is the image's one layer, with fixed timestamps so the same
// inputs give the same digest.
func rootLayer(bin, ca []byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0).UTC()
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonroot, nonroot)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonroot)
	steps := []func() error{
		func() error { return dir("etc/", 0o755) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return dir("tmp/", 0o1777) },
		func() error { return file("pixelpipe", 0o755, bin) },
	}
	if len(ca) > 0 {
		steps = append(steps,
			func() error { return dir("etc/ssl/", 0o755) },
			func() error { return dir("etc/ssl/certs/", 0o755) },
			func() error { return file("etc/ssl/certs/ca-certificates.crt", 0o644, ca) })
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}
