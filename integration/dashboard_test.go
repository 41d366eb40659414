//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/query"
)

// startTenantQuery runs a query server whose tokens are scoped to tenants.
func (s *stack) startTenantQuery(tokens map[string]string) {
	cfg := query.DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Tokens = tokens
	if s.procGroup != "" {
		cfg.AuditGroup = s.procGroup
	}
	q, err := query.New(cfg, s.logger, nil, counts.NewReader(hllstore.New(s.rdb, hllstore.Config{Prefix: s.prefix})), audit.NewReader(s.rdb, s.prefix))
	if err != nil {
		s.t.Fatal(err)
	}
	s.queryURL = "http://" + s.serve("query", q)
}

// hit sends one view of cid by visitor uid to the edge.
func (s *stack) hit(cid, uid string) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.edgeURL+"/p.gif?cid="+cid+"&uid="+uid, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	// A browser's headers: without them the processor labels the hit a bot.
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	req.Header.Set("Accept", "image/avif,image/webp,*/*;q=0.8")
	req.Header.Set("Accept-Language", "en-US,en;q=0.9")
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Sec-Fetch-Mode", "no-cors")
	req.Header.Set("Sec-Ch-Ua", `"Chromium";v="131"`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("pixel: status %d", resp.StatusCode)
	}
}

// chromium finds Debian's chromium; the dashboard test fails without it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run deploy/local/browser.sh (apt-get install -y chromium)")
	return ""
}

// TestDashboardInBrowser loads the dashboard in headless chromium against a
// running pipeline, enters a tenant token, sends hits to the edge and waits
// for the live counters on the page to show them; it keeps a screenshot in
// build/dashboard.png.
func TestDashboardInBrowser(t *testing.T) {
	exe := chromium(t)
	s := newStack(t)
	s.startEdge()
	s.startProcessor("it-dash-proc")
	s.startAggregator("it-dash-agg")
	s.startTenantQuery(map[string]string{"acme-dash-token": "acme", "ops-dash-token": "*"})
	cid := fmt.Sprintf("acme:dash-%d", time.Now().UnixNano())
	other := "acme:other-" + strconv.FormatInt(time.Now().UnixNano(), 36)

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1440, 1000))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	defer cancel()

	text := func(id string) string {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById(`+strconv.Quote(id)+`)||{}).textContent||""`))
		if err != nil {
			t.Fatalf("read #%s: %v", id, err)
		}
		return strings.TrimSpace(v)
	}
	waitText := func(id, want string) {
		t.Helper()
		pipetest.Eventually(t, 90*time.Second, func() string {
			if got := text(id); got != want {
				return fmt.Sprintf("#%s shows %q, want %q (status: %q)", id, got, want, text("status"))
			}
			return ""
		})
	}

	// The page asks for a token: the API answers 401 without one.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.queryURL+"/?cid="+cid+","+other+"&range=24h"),
		chromedp.WaitVisible("#token-input"),
		chromedp.SendKeys("#token-input", "acme-dash-token"),
		chromedp.Click("#token-save"),
	); err != nil {
		t.Fatal(err)
	}
	waitText("live-views", "0")
	waitText("live-uniques", "0")

	// 5 views by 3 visitors; then 4 more, one of them by a new visitor.
	for _, uid := range []string{"v1", "v2", "v3", "v1", "v2"} {
		s.hit(cid, uid)
	}
	s.hit(other, "v9")
	waitText("live-views", "5")
	waitText("live-uniques", "3")
	for _, uid := range []string{"v3", "v4", "v4", "v1"} {
		s.hit(cid, uid)
	}
	waitText("live-views", "9")
	waitText("live-uniques", "4")

	// The table lists both content ids; the chart and funnel show the range.
	pipetest.Eventually(t, 60*time.Second, func() string {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`location.reload(), true`)); err != nil {
			return err.Error()
		}
		return ""
	})
	waitText("live-views", "9")
	pipetest.Eventually(t, 30*time.Second, func() string {
		table := text("live-table")
		bars, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#chart rect.bar").length`))
		funnel := text("funnel")
		if !strings.Contains(table, other) || bars != 24 || !strings.Contains(funnel, "Views9") {
			return fmt.Sprintf("table %q, %d chart bars (want 24 hours), funnel %q", table, bars, funnel)
		}
		return ""
	})
	// The top list and the breakdown are written every detail interval and
	// drawn at the next refresh.
	pipetest.Eventually(t, 60*time.Second, func() string {
		top, bd := text("top"), text("breakdowns")
		if !strings.Contains(top, cid) || !strings.Contains(bd, "unknown") {
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`refresh(), true`)); err != nil {
				return err.Error()
			}
			return fmt.Sprintf("top panel %q, breakdown panel %q: want %s in the top list and the country breakdown", top, bd, cid)
		}
		return ""
	})
	if f := text("freshness"); !strings.HasPrefix(f, "freshness:") && !strings.HasPrefix(f, "complete to") {
		t.Errorf("freshness badge shows %q", f)
	}

	// The audit panel: a tenant's token may not read it; an operator's
	// sees the edge with every hit accounted for.
	if a := text("audit"); !strings.Contains(a, "operator token") {
		t.Errorf("audit panel with a tenant token shows %q", a)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`state.token = "ops-dash-token", true`)); err != nil {
		t.Fatal(err)
	}
	pipetest.Eventually(t, 60*time.Second, func() string {
		sum, table := text("audit-summary"), text("audit")
		if sum != "all 10 accepted hits accounted for" || !strings.Contains(table, "it-edge10100000") {
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`refreshAudit(), true`)); err != nil {
				return err.Error()
			}
			return fmt.Sprintf("audit panel %q / %q", sum, table)
		}
		return ""
	})

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "build")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
