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
	"github.com/pixelpipe/pixelpipe/query"
)

// TestDevMode runs what `make run` runs (pixelpipe dev: every part in one
// process on the embedded broker and Redis) and checks what its banner
// promises: the stats URL answers, the demo traffic moves the counts, a hit
// sent to the printed pixel URL is counted, the freshness watermark is
// complete, and SIGTERM ends the process cleanly.
func TestDevMode(t *testing.T) {
	bin := buildDevBinary(t)
	// The part binary has no dev mode, and says how to get it.
	if code, _, stderr := runBin(t, buildBinary(t), "dev"); code == 0 || !strings.Contains(stderr, "make run") {
		t.Errorf("dev in the part binary: exit %d, %q", code, stderr)
	}
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
	// The demo shows every kind of traffic: signed impressions and clicks of
	// the ad (a few unsigned ones counted under the prefer policy), orders
	// and revenue, newsletter opens by people and by mail proxies, a
	// crawler.
	base, _, _ := strings.Cut(statsURL, "/v1/stats/")
	type counts struct {
		Total uint64 `json:"total"`
	}
	type class struct {
		Impressions, Views, Clicks, Conversions, Opens counts
		Orders                                         uint64
		Revenue                                        map[string]json.Number
		Reasons                                        map[string]uint64
		Visits                                         struct{ Visits uint64 }
	}
	var got map[string]map[string]class
	// Visits end a minute after their visitor's last hit in dev mode (and
	// at once when a visitor moves to another campaign), so they show
	// within the first two minutes.
	pipetest.Eventually(t, 150*time.Second, func() string {
		got = map[string]map[string]class{}
		var visits uint64
		for _, cid := range []string{"content-0", "ad-1", "shop", "newsletter-1"} {
			resp, err := http.Get(base + "/v1/stats/" + cid)
			if err != nil {
				return err.Error()
			}
			var st struct{ Human, Bot, Machine class }
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err != nil {
				return err.Error()
			}
			got[cid] = map[string]class{"human": st.Human, "bot": st.Bot, "machine": st.Machine}
			visits += st.Human.Visits.Visits
		}
		ad, shop, nl := got["ad-1"]["human"], got["shop"]["human"], got["newsletter-1"]
		switch {
		case ad.Impressions.Total == 0 || ad.Clicks.Total == 0 || ad.Reasons["unsigned"] == 0:
			return fmt.Sprintf("ad-1: %+v, want impressions, clicks and unsigned impressions", ad)
		case shop.Conversions.Total == 0 || shop.Orders == 0 || shop.Revenue["EUR"] == "":
			return fmt.Sprintf("shop: %+v, want conversions, orders and revenue", shop)
		case nl["human"].Opens.Total == 0 || nl["machine"].Opens.Total == 0:
			return fmt.Sprintf("newsletter-1: %+v, want opens by people and by mail proxies", nl)
		case got["content-0"]["bot"].Views.Total == 0 || got["content-0"]["human"].Views.Total == 0:
			return fmt.Sprintf("content-0: %+v, want views by people and by a crawler", got["content-0"])
		case visits == 0:
			return "no human visit counted yet"
		}
		return ""
	})

	// The newsletter's recipients, by uid (dev mode keeps them): who opened
	// and who clicked its links.
	pipetest.Eventually(t, 30*time.Second, func() string {
		var opened, clicked query.RecipientsResponse
		for f, out := range map[string]*query.RecipientsResponse{"opened": &opened, "clicked": &clicked} {
			resp, err := http.Get(base + "/v1/campaigns/december/recipients?filter=" + f)
			if err != nil {
				return err.Error()
			}
			err = json.NewDecoder(resp.Body).Decode(out)
			resp.Body.Close()
			if err != nil {
				return err.Error()
			}
		}
		switch {
		case len(opened.Recipients) == 0 || !strings.HasPrefix(opened.Recipients[0].UID, "recipient-") || opened.Recipients[0].Opens == 0:
			return fmt.Sprintf("recipients who opened: %+v", opened.Recipients)
		case len(clicked.Recipients) == 0 || len(clicked.Recipients[0].Links) == 0:
			return fmt.Sprintf("recipients who clicked: %+v", clicked.Recipients)
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
