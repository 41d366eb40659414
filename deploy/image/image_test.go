package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImage inspects the image in the tarball IMAGE_TAR names (make image
// sets it to the image it built), else one built from a small static
// binary: entrypoint, a non-root user, the files, and no shell.
func TestImage(t *testing.T) {
	path := os.Getenv("IMAGE_TAR")
	if path == "" {
		path = buildTestImage(t)
	}
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/pixelpipe"}) {
		t.Errorf("entrypoint %q, want [/pixelpipe]", cf.Config.Entrypoint)
	}
	if u := cf.Config.User; u == "" || u == "0" || u == "root" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root:") {
		t.Errorf("user %q: want a non-root numeric user (runAsNonRoot needs a number)", u)
	}
	if cf.OS != "linux" {
		t.Errorf("os %q", cf.OS)
	}
	files := filesOf(t, img)
	for name, mode := range map[string]int64{"pixelpipe": 0o755, "etc/passwd": 0o644, "etc/group": 0o644} {
		h, ok := files[name]
		if !ok {
			t.Errorf("no /%s", name)
		} else if h.Mode&0o777 != mode {
			t.Errorf("/%s mode %o, want %o", name, h.Mode&0o777, mode)
		}
	}
	for name := range files {
		if strings.HasPrefix(name, "bin/") || strings.HasPrefix(name, "usr/") || strings.HasPrefix(name, "sbin/") || strings.HasSuffix(name, "/sh") || name == "sh" {
			t.Errorf("/%s: the image holds the binary only, no shell or tools", name)
		}
	}
}

// TestRefusesDynamicBinary: a binary that needs a dynamic loader would not
// start on an image without one.
func TestRefusesDynamicBinary(t *testing.T) {
	if _, err := Build([]byte("not an ELF file"), nil, runtime.GOARCH); err == nil {
		t.Error("a non-ELF binary was accepted")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to use as a dynamic binary")
	}
	b, err := os.ReadFile(sh)
	if err != nil {
		t.Skip(err)
	}
	if _, err := Build(b, nil, runtime.GOARCH); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("dynamic %s: err %v, want dynamically linked", sh, err)
	}
}

// buildTestImage builds a tiny static Go program and the image of it.
func buildTestImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "pixelpipe")
	cmd := exec.Command("go", "build", "-o", bin, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "image.tar")
	if err := run(bin, out, "pixelpipe:test", "", runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
	return out
}

// filesOf returns the headers of the image's flattened file system by path.
func filesOf(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, "/")] = h
	}
}
