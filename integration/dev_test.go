//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

// TestDevMode runs what `make run` runs (pixelpipe dev: every part in one
// process on the embedded broker and Redis) and checks what its banner
// promises: the stats URL answers, the demo traffic moves the counts, a hit
// sent to the printed pixel URL is counted, the freshness watermark is
// complete, and SIGTERM ends the process cleanly.
func TestDevMode(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "dev",
		"-edge.listenAddr=127.0.0.1:0", "-query.listenAddr=127.0.0.1:0", "-admin.listenAddr=127.0.0.1:0",
		"-edge.spool.dir="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	urls := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var pixel string
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 2 && f[0] == "pixel:" {
				pixel = f[1]
			}
			if len(f) == 2 && f[0] == "stats:" {
				urls <- [2]string{pixel, f[1]}
			}
		}
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	var pixelURL, statsURL string
	select {
	case u := <-urls:
		pixelURL, statsURL = u[0], u[1]
	case err := <-done:
		t.Fatalf("pixelpipe dev exited before printing its URLs: %v\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("pixelpipe dev printed no stats URL in 60 s\n%s", stderr.String())
	}
	if pixelURL == "" || !strings.Contains(statsURL, "/v1/stats/content-0") {
		t.Fatalf("banner: pixel %q, stats %q", pixelURL, statsURL)
	}

	type answer struct {
		Human struct {
			Views struct {
				Total uint64 `json:"total"`
			} `json:"views"`
		} `json:"human"`
		Freshness struct {
			Status string `json:"status"`
		} `json:"freshness"`
	}
	read := func() answer {
		t.Helper()
		resp, err := http.Get(statsURL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a answer
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", statsURL, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	var first answer
	pipetest.Eventually(t, 60*time.Second, func() string {
		first = read()
		if first.Human.Views.Total == 0 || first.Freshness.Status != "complete" {
			return fmt.Sprintf("demo traffic: %d human views, freshness %q", first.Human.Views.Total, first.Freshness.Status)
		}
		return ""
	})
	// Our own hits on the printed pixel URL, on top of the demo traffic.
	for i := range 5 {
		resp := browserGet(t, pixelURL+"&cb="+time.Now().Format("150405.000000")+string(rune('a'+i)))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/gif" {
			t.Fatalf("pixel: %s %q", resp.Status, resp.Header.Get("Content-Type"))
		}
	}
	pipetest.Eventually(t, 30*time.Second, func() string {
		if n := read().Human.Views.Total; n < first.Human.Views.Total+5 {
			return fmt.Sprintf("%d human views, want at least %d", n, first.Human.Views.Total+5)
		}
		return ""
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("pixelpipe dev after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("pixelpipe dev still running 30 s after SIGTERM")
	}
}
