//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/loadgen"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/query"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// runBin runs the binary to completion and returns its exit code and output.
func runBin(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run pixelpipe %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// mustBin runs the binary and fails the test unless it exits 0.
func mustBin(t *testing.T, bin string, args ...string) string {
	t.Helper()
	code, out, errOut := runBin(t, bin, args...)
	if code != 0 {
		t.Fatalf("pixelpipe %v: exit %d\n%s", args, code, errOut)
	}
	return out
}

// browserGet requests u as a browser would, without following redirects.
func browserGet(t *testing.T, u string) *http.Response {
	t.Helper()
	return getAs(t, u, "")
}

// getAs requests u with a browser's headers, and userAgent when set.
func getAs(t *testing.T, u, userAgent string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range loadgen.BrowserHeaders {
		req.Header.Set(k, v)
	}
	if userAgent != "" {
		req.Header.Set("User-Agent", userAgent)
	}
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestCLI runs the binary's tools against a running pipeline: the URLs sign
// makes go through the real edge (a signed click redirects, a tampered one
// does not, a signed pixel is marked verified in the raw topic, as tail
// shows), and stats prints the numbers the query API answers, visits
// included (the processor closes them within seconds: shortVisits).
func TestCLI(t *testing.T) {
	bin := buildBinary(t)
	s := newStack(t)
	key := []byte("cli-test-key-0123456789")
	keyFlag := "-key=k1:" + base64.StdEncoding.EncodeToString(key)
	s.startEdgeWith(func(c *edge.Config) { c.ClickKeys = map[string][]byte{"k1": key} })
	s.startProcessorWith("cli-proc", shortVisits)
	s.startAggregator("cli-agg")
	s.startQuery()

	const cid, dest = "cli:ad-1", "https://shop.example.com/sale?x=1&y=%C3%A9"
	click := strings.TrimSpace(mustBin(t, bin, "sign", "-base="+s.edgeURL, keyFlag, "-ttl=1h", cid, dest))
	pixel := strings.TrimSpace(mustBin(t, bin, "sign", "-base="+s.edgeURL+"/", keyFlag, "-kind=impression", cid))

	// Known traffic: 6 views by 3 visitors, 4 impressions by 4 visitors
	// plus the signed one (cookieless), 2 clicks by 2 visitors.
	for i := range 6 {
		if r := browserGet(t, s.edgeURL+"/p.gif?cid="+cid+"&uid=v"+strconv.Itoa(i%3)); r.StatusCode != 200 {
			t.Fatalf("view: %d", r.StatusCode)
		}
	}
	for i := range 4 {
		browserGet(t, s.edgeURL+"/p.gif?cid="+cid+"&k=impression&uid=v"+strconv.Itoa(i))
	}
	// And 3 views by a crawler, counted as bot.
	for range 3 {
		getAs(t, s.edgeURL+"/p.gif?cid="+cid+"&uid=crawler", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
	}
	if r := browserGet(t, pixel+"&cb=123"); r.StatusCode != 200 || r.Header.Get("Content-Type") != "image/gif" {
		t.Fatalf("signed pixel: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	// Custom events with properties: plan=pro twice (two visitors), once
	// with step=2, plan=free once.
	const signup = "cli:signup"
	for i, props := range []string{"p.plan=pro", "p.plan=pro&p.step=2", "p.plan=free"} {
		if r := browserGet(t, s.edgeURL+"/p.gif?cid="+signup+"&k=custom&uid=s"+strconv.Itoa(i)+"&"+props); r.StatusCode != 200 {
			t.Fatalf("custom event: %d", r.StatusCode)
		}
	}
	for i := range 2 {
		r := browserGet(t, click+"&uid=v"+strconv.Itoa(i))
		if r.StatusCode != http.StatusFound || r.Header.Get("Location") != dest {
			t.Fatalf("signed click: %d, Location %q; want 302 to %q", r.StatusCode, r.Header.Get("Location"), dest)
		}
	}
	// Tampered: every change to a signed part is refused (clicks) or left
	// unverified (pixels), and counts nothing for cid.
	cu, _ := url.Parse(click)
	for name, edit := range map[string]func(url.Values){
		"destination": func(q url.Values) { q.Set("u", "https://evil.example/") },
		"content id":  func(q url.Values) { q.Set("cid", "cli:ad-2") },
		"signature":   func(q url.Values) { q.Set("sig", strings.Repeat("A", len(q.Get("sig")))) },
		"key id":      func(q url.Values) { q.Set("kid", "k2") },
		"expiry":      func(q url.Values) { q.Set("exp", strconv.FormatInt(time.Now().Add(48*time.Hour).Unix(), 10)) },
	} {
		q := cu.Query()
		edit(q)
		t2 := *cu
		t2.RawQuery = q.Encode()
		r := browserGet(t, t2.String())
		if r.StatusCode < 400 || r.StatusCode > 499 || r.Header.Get("Location") != "" {
			t.Errorf("click with tampered %s: %d, Location %q; want 4xx and none", name, r.StatusCode, r.Header.Get("Location"))
		}
	}
	tampered := strings.Replace(pixel, "cid="+url.QueryEscape(cid), "cid=cli%3Aad-2", 1)
	if tampered == pixel {
		t.Fatalf("pixel URL %q has no cid=%s", pixel, url.QueryEscape(cid))
	}
	browserGet(t, tampered)

	// The counts, and the visits of v0, v1 and v2 (their views landed on
	// cid), which end 2 s after their last hit: at least one each, two
	// pages per visit at most (each viewed cid twice).
	var api query.StatsResponse
	pipetest.Eventually(t, 60*time.Second, func() string {
		var err error
		if api, err = s.stats(cid); err != nil {
			return err.Error()
		}
		h := api.Human
		got := [6]uint64{h.Views.Total, h.Views.Uniques, h.Impressions.Total, h.Impressions.Uniques, h.Clicks.Total, h.Clicks.Uniques}
		if want := [6]uint64{6, 3, 5, 5, 2, 2}; got != want || api.Bot.Views.Total != 3 {
			return fmt.Sprintf("human views, uniques, impressions, uniques, clicks, uniques: %v, want %v; bot views %d, want 3", got, want, api.Bot.Views.Total)
		}
		if v := h.Visits; v.Visitors != 3 || v.Visits < 3 || v.PagesPerVisit < 1 || v.PagesPerVisit > 2 {
			return fmt.Sprintf("human visits %+v: want 3 visitors, at least 3 visits of 1 to 2 pages", v)
		}
		return ""
	})

	t.Run("audit", func(t *testing.T) {
		// Every hit the edge took is accounted for: nothing missing, nothing
		// left uncounted (-strict fails otherwise), and the edge is listed
		// (the audit is written with the processor's snapshots, every 10 s).
		pipetest.Eventually(t, 60*time.Second, func() string {
			code, out, errOut := runBin(t, bin, "audit", "-url="+s.queryURL, "-token=it-token", "-group=cli-proc", "-strict")
			if code != 0 || !strings.Contains(out, "  it-edge\n") || !strings.Contains(out, "audit of processor group cli-proc") {
				return fmt.Sprintf("exit %d: %s%s", code, errOut, out)
			}
			return ""
		})
	})

	t.Run("stats", func(t *testing.T) {
		day := time.Now().UTC().Format("2006-01-02")
		next := time.Now().UTC().Add(24 * time.Hour).Format("2006-01-02")
		args := []string{"stats", "-url=" + s.queryURL, "-token=it-token", "-from=" + day, "-to=" + next}
		out := mustBin(t, bin, append(args, cid)...)
		checkStatsTable(t, out, &api)

		raw := mustBin(t, bin, append(args, "-json", cid)...)
		if strings.Count(raw, "\n") != 1 {
			t.Errorf("-json: want one line, got %q", raw)
		}
		var got query.StatsResponse
		if err := json.Unmarshal([]byte(raw), &got); err != nil {
			t.Fatalf("-json: %v: %s", err, raw)
		}
		got.Freshness, api.Freshness = query.FreshnessBody{}, query.FreshnessBody{}
		if !reflect.DeepEqual(got, api) {
			t.Errorf("-json:\n%+v\nAPI:\n%+v", got, api)
		}

		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"stats", "-url=" + s.queryURL, "-token=it-token", "-from=2020-01-01", "-to=2026-01-01", cid}, "query API answered 400: "},
			{[]string{"stats", "-url=" + s.queryURL, "-token=wrong", cid}, "query API answered 401: "},
			{[]string{"stats", "-url=" + s.queryURL, "-token=it-token", "-from=01/11/2026", cid}, `-from="01/11/2026": use a UTC date (YYYY-MM-DD)`},
			{[]string{"stats", "-url=" + s.queryURL, "-token=it-token"}, "give one content id"},
		} {
			code, out, errOut := runBin(t, bin, tc.args...)
			if code != 1 || !strings.Contains(errOut, tc.want) || out != "" {
				t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.args, code, out, errOut, tc.want)
			}
		}
	})

	t.Run("series, top and breakdown", func(t *testing.T) {
		day := time.Now().UTC().Format("2006-01-02")
		next := time.Now().UTC().Add(24 * time.Hour).Format("2006-01-02")
		flags := []string{"-url=" + s.queryURL, "-token=it-token", "-from=" + day, "-to=" + next}
		run := func(cmd string, args ...string) string {
			return mustBin(t, bin, append(append([]string{cmd}, flags...), args...)...)
		}
		// A table row whose last (or first) field is key, as numbers.
		row := func(out, key string, keyFirst bool) []uint64 {
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				if len(f) < 2 || (keyFirst && f[0] != key) || (!keyFirst && f[len(f)-1] != key) {
					continue
				}
				if keyFirst {
					f = f[1:]
				} else {
					f = f[:len(f)-1]
				}
				var nums []uint64
				for _, v := range f {
					n, err := strconv.ParseUint(v, 10, 64)
					if err != nil {
						return nil
					}
					nums = append(nums, n)
				}
				return nums
			}
			return nil
		}

		// Today's day bucket: 5 impressions, 6 views, 2 clicks by humans,
		// the visits of stats, 3 unique viewers.
		visits := api.Human.Visits.Visits
		out := run("series", "-granularity=day", cid)
		if got := row(out, day+"T00:00:00Z", true); !slices.Equal(got, []uint64{5, 6, 2, 0, 0, 0, visits, 3, 0}) {
			t.Errorf("series: today's row %v, want impressions 5, views 6, clicks 2, visits %d, uniques 3:\n%s", got, visits, out)
		}
		// -kind=session: the uniques are the visitors of the visits.
		out = run("series", "-granularity=day", "-kind=session", cid)
		if got := row(out, day+"T00:00:00Z", true); !slices.Equal(got, []uint64{5, 6, 2, 0, 0, 0, visits, 3, 0}) || !strings.Contains(out, "human per day, uniques of session") {
			t.Errorf("series -kind=session: today's row %v, want visits %d by 3 visitors:\n%s", got, visits, out)
		}
		// -json is the API's own answer.
		raw := run("series", "-granularity=day", "-json", cid)
		req, _ := http.NewRequest("GET", s.queryURL+"/v1/series/"+url.PathEscape(cid)+"?granularity=day&kind=view&class=human&from="+day+"&to="+next, nil)
		req.Header.Set("Authorization", "Bearer it-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var fromCLI, fromAPI query.SeriesResponse
		err = json.NewDecoder(resp.Body).Decode(&fromAPI)
		_ = resp.Body.Close()
		if err != nil || json.Unmarshal([]byte(raw), &fromCLI) != nil {
			t.Fatalf("series -json %q / API: %v", raw, err)
		}
		fromCLI.Freshness, fromAPI.Freshness = query.FreshnessBody{}, query.FreshnessBody{}
		if !reflect.DeepEqual(fromCLI, fromAPI) {
			t.Errorf("series -json:\n%+v\nAPI:\n%+v", fromCLI, fromAPI)
		}

		// Top and breakdowns come from the day's detail records, written
		// every DetailInterval.
		pipetest.Eventually(t, 30*time.Second, func() string {
			out := run("top", "-by=views")
			if got := row(out, cid, false); !slices.Equal(got, []uint64{1, 6, 3, 0}) {
				return fmt.Sprintf("top -by=views: row of %s %v, want rank 1, views 6, uniques 3 ± 0:\n%s", cid, got, out)
			}
			out = run("breakdown", "-dimension=device", cid)
			var views uint64
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) == 4 { // views, uniques, ±bound, value
					if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
						views += n
					}
				}
			}
			if views != 6 {
				return fmt.Sprintf("breakdown -dimension=device: views add up to %d, want 6:\n%s", views, out)
			}
			// The custom events' properties: each event under each of
			// its properties, views and uniques.
			out = run("breakdown", "-dimension=prop", "-kind=custom", signup)
			for prop, want := range map[string][]uint64{"plan=pro": {2, 2, 0}, "step=2": {1, 1, 0}, "plan=free": {1, 1, 0}} {
				if got := row(out, prop, false); !slices.Equal(got, want) {
					return fmt.Sprintf("breakdown -dimension=prop -kind=custom: row %s %v, want %v:\n%s", prop, got, want, out)
				}
			}
			if !strings.HasPrefix(out, signup+" by prop, human custom events") {
				return "breakdown -dimension=prop -kind=custom: heading:\n" + out
			}
			// The ad's clicks by link: both signed clicks went to dest.
			out = run("breakdown", "-dimension=destination", "-kind=click", cid)
			var clicks uint64
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) == 4 && strings.HasPrefix(f[3], "https://shop.example.com/sale") {
					clicks, _ = strconv.ParseUint(f[0], 10, 64)
				}
			}
			if clicks != 2 {
				return fmt.Sprintf("breakdown -dimension=destination -kind=click: %d clicks to the sale page, want 2:\n%s", clicks, out)
			}
			// The top custom events: each named by its content id.
			out = run("top", "-kind=custom")
			if got := row(out, signup, false); !slices.Equal(got, []uint64{1, 3, 3, 0}) {
				return fmt.Sprintf("top -kind=custom: row of %s %v, want rank 1, events 3, uniques 3 ± 0:\n%s", signup, got, out)
			}
			return ""
		})

		// export: the same numbers as CSV (to a file) and NDJSON.
		file := filepath.Join(t.TempDir(), "series.csv")
		run("export", "-granularity=day", "-o="+file, "series", cid)
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if want := day + "T00:00:00Z,5,6,2,0,0,0,3,0," + strconv.FormatUint(visits, 10); !strings.HasPrefix(string(b), "start,impressions,views,clicks,conversions,opens,custom,uniques,uniques_bound,visits\n") || !strings.Contains(string(b), want+"\n") {
			t.Errorf("export series CSV:\n%s\nwant a header and the row %s", b, want)
		}
		out = run("export", "-format=ndjson", "-dimension=device", "breakdown", cid)
		var views uint64
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var it query.ShareItem
			if err := json.Unmarshal([]byte(line), &it); err != nil {
				t.Fatalf("export breakdown NDJSON line %q: %v", line, err)
			}
			views += it.Total
		}
		if views != 6 {
			t.Errorf("export breakdown NDJSON: views add up to %d, want 6:\n%s", views, out)
		}
		if code, _, errOut := runBin(t, bin, "export", "-format=xml", "top"); code == 0 || !strings.Contains(errOut, `-format="xml": use csv, ndjson`) {
			t.Errorf("export -format=xml: exit %d\n%s", code, errOut)
		}
	})

	t.Run("signed pixel verified in the raw topic", func(t *testing.T) {
		out := mustBin(t, bin, "tail", "-kafka.brokers="+s.kc.Brokers[0], s.topics.Hits)
		var signed, forged, clicks, plain int
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var h pixelpb.RawHit
			if err := protojson.Unmarshal([]byte(line), &h); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			switch {
			case h.Route == "pixel" && h.Kind == pixelpb.Kind_KIND_IMPRESSION && h.UserId == "" && h.ContentId == cid:
				signed++
				if !h.Verified {
					t.Errorf("signed pixel not verified: %s", line)
				}
			case h.ContentId == "cli:ad-2" && h.Route == "pixel":
				forged++
				if h.Verified {
					t.Errorf("tampered pixel verified: %s", line)
				}
			case h.Route == "click" && h.InvalidReason == "":
				clicks++ // signed: it redirected
				if !h.Verified {
					t.Errorf("signed click not verified: %s", line)
				}
			case h.Verified:
				t.Errorf("unsigned hit verified: %s", line)
			default:
				plain++
			}
		}
		// 6 views, 4 impressions, 3 bot views, 3 custom events, 2 signed
		// clicks, 5 refused clicks.
		if signed != 1 || forged != 1 || clicks != 2 || plain != 21 {
			t.Errorf("signed %d, tampered %d, signed clicks %d, other %d hits; want 1, 1, 2 and 21", signed, forged, clicks, plain)
		}
	})
}

// checkStatsTable checks that the terminal table shows every number of api.
func checkStatsTable(t *testing.T, out string, api *query.StatsResponse) {
	t.Helper()
	rows := map[string][]uint64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 7 {
			continue
		}
		var nums []uint64
		for _, v := range f[1:] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				break
			}
			nums = append(nums, n)
		}
		if len(nums) == 6 {
			rows[f[0]] = nums
		}
	}
	H, B, M, U := api.Human, api.Bot, api.Machine, api.Unverified
	for name, k := range map[string][4]query.KindStats{
		"impressions": {H.Impressions, B.Impressions, M.Impressions, U.Impressions},
		"views":       {H.Views, B.Views, M.Views, U.Views},
		"clicks":      {H.Clicks, B.Clicks, M.Clicks, U.Clicks},
		"conversions": {H.Conversions, B.Conversions, M.Conversions, U.Conversions},
		"opens":       {H.Opens, B.Opens, M.Opens, U.Opens},
		"custom":      {H.Custom, B.Custom, M.Custom, U.Custom},
	} {
		want := []uint64{k[0].Total, k[0].Uniques, k[0].UniquesBound, k[1].Total, k[2].Total, k[3].Total}
		if !reflect.DeepEqual(rows[name], want) {
			t.Errorf("row %s: %v, want human total, uniques, bound, bot, machine, unverified %v\n%s", name, rows[name], want, out)
		}
	}
	if want := fmt.Sprintf("CTR %.2f%%   conversion rate %.2f%%   orders %d", 100*H.CTR, 100*H.ConversionRate, H.Orders); !strings.Contains(out, want) {
		t.Errorf("no %q in\n%s", want, out)
	}
	for class, reasons := range map[string]map[string]uint64{"bot": B.Reasons, "machine": M.Reasons, "unverified": U.Reasons} {
		if len(reasons) == 0 {
			continue
		}
		_, line, ok := strings.Cut(out, "\n"+class+" reasons:")
		line, _, _ = strings.Cut(line, "\n")
		got := map[string]uint64{}
		f := strings.Fields(line)
		for i := 0; ok && i+1 < len(f); i += 2 {
			got[f[i]], _ = strconv.ParseUint(f[i+1], 10, 64)
		}
		if !reflect.DeepEqual(got, reasons) {
			t.Errorf("%s reasons: terminal %v, API %v\n%s", class, got, reasons, out)
		}
	}
	if len(B.Reasons) == 0 {
		t.Errorf("the crawler's views have no bot reason in the API answer")
	}
	if !strings.Contains(out, "CTR 40.00%") {
		t.Errorf("CTR of 2 clicks over 5 impressions is not 40.00%%:\n%s", out)
	}
	if !strings.HasPrefix(out, api.ContentID+"  ["+api.From+", "+api.To+")\n") {
		t.Errorf("no content id and range on the first line:\n%s", out)
	}
	checkVisitsLine(t, out, H.Visits)
}

// checkVisitsLine checks the human visits line of the terminal table:
// visits, visitors ± bound, bounce rate, mean visit duration and pages per
// visit, as the API answers them; there must be visits.
func checkVisitsLine(t *testing.T, out string, v query.VisitStats) {
	t.Helper()
	_, line, _ := strings.Cut(out, "\nhuman visits ")
	line, _, _ = strings.Cut(line, "\n")
	var visits, visitors, bound uint64
	var bounce, pages float64
	var dur string
	n, err := fmt.Sscanf(line, "%d   visitors %d ±%d   bounce rate %f%%   mean visit duration %s   pages per visit %f", &visits, &visitors, &bound, &bounce, &dur, &pages)
	if err != nil || n != 6 {
		t.Fatalf("no human visits line (%v):\n%s", err, out)
	}
	d, err := time.ParseDuration(dur)
	if visits == 0 || visits != v.Visits || visitors != v.Visitors || bound != v.VisitorsBound || err != nil ||
		math.Abs(bounce-100*v.BounceRate) > 0.005 || math.Abs(pages-v.PagesPerVisit) > 0.005 || math.Abs(d.Seconds()-v.MeanDurationS) > 0.5 {
		t.Errorf("visits line %q, API %+v", line, v)
	}
}

// TestCLITail produces known records on every pipeline topic and checks that
// tail prints each as a JSON line that decodes back to the same record.
func TestCLITail(t *testing.T) {
	bin := buildBinary(t)
	kc, topics := pipetest.Kafka(t)
	broker := kc.Brokers[0]
	prefix := strings.TrimSuffix(topics.Hits, schemas.TopicHits)
	now := time.Now().UnixMilli()
	origin := func(i byte) *pixelpb.Origin {
		return &pixelpb.Origin{EventId: bytes.Repeat([]byte{i}, 16), ReceivedAtMs: now, NodeId: "edge-é", BootMs: now - 1000}
	}
	records := map[string][]proto.Message{
		topics.Hits: {
			&pixelpb.RawHit{SchemaVersion: 1, Origin: origin(1), Kind: pixelpb.Kind_KIND_CONVERSION, ContentId: "acme:a", ClientIp: []byte{203, 0, 113, 9},
				UserAgent: "Mozilla/5.0 \"quoted\" \u2028", OrderId: "o-1", ValueMicros: 1<<62 + 1, Currency: "EUR", Verified: true,
				Props: []*pixelpb.Prop{{Key: "plan", Value: "pro"}}, PresentHeaders: 0xff},
			&pixelpb.RawHit{SchemaVersion: 1, Origin: origin(2), ContentId: "acme:b", InvalidReason: "bad_cid"},
		},
		topics.Events: {
			&pixelpb.Event{SchemaVersion: 1, Origin: origin(3), Source: &pixelpb.SourcePosition{Partition: 5, Offset: 1 << 40}, Kind: pixelpb.Kind_KIND_VIEW,
				ContentId: "acme:a", VisitorKey: 1<<64 - 1, Country: "NL", Bot: true, BotReasons: []string{"datacenter", "rate"}, SessionId: []byte{0, 1, 2}},
			&pixelpb.Event{SchemaVersion: 1, Origin: origin(4), ContentId: "acme:c", IpTruncated: []byte{10, 0, 0, 0}},
		},
		topics.Sessions: {
			&pixelpb.Session{SchemaVersion: 1, SessionId: []byte{9, 9}, VisitorKey: 42, StartMs: now - 60000, EndMs: now, Events: 3, Pages: 2, LandingPage: "https://x.example/?a=<b>", Bounce: false},
			&pixelpb.Session{SchemaVersion: 1, SessionId: []byte{8}, VisitorKey: 1<<63 + 7, Bounce: true},
		},
		topics.Counts: {
			&pixelpb.CountSnapshot{SchemaVersion: 1, ContentId: "acme:a", Kind: pixelpb.Kind_KIND_CLICK, Granularity: pixelpb.Granularity_GRANULARITY_DAY, BucketStartMs: now, Total: 1<<63 + 3, Uniques: 17, TrafficClass: "human"},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for topic, msgs := range records {
		w := kafkaconn.NewWriter(kc, topic, nil)
		for i, m := range msgs {
			b, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("key-" + strconv.Itoa(i)), Value: b}); err != nil {
				t.Fatalf("write %s: %v", topic, err)
			}
		}
		_ = w.Close()
	}
	type deadLetter struct {
		Value   []byte            `json:"value_base64"`
		Headers map[string]string `json:"headers"`
	}
	dead := []deadLetter{
		{Value: []byte{0xff, 0x00, '"', '<'}, Headers: map[string]string{"reason": "decode: unexpected EOF", "source": topics.Hits + "/3/17"}},
		{Value: []byte("late"), Headers: map[string]string{"reason": "late", "source": topics.Events + "/0/1"}},
	}
	w := kafkaconn.NewWriter(kc, topics.DLQ, nil)
	for _, d := range dead {
		m := kafka.Message{Key: []byte("k"), Value: d.Value}
		for _, k := range []string{"reason", "source"} {
			m.Headers = append(m.Headers, kafka.Header{Key: k, Value: []byte(d.Headers[k])})
		}
		if err := w.WriteMessages(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Close()

	lines := func(out string) []string {
		var l []string
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			l = append(l, sc.Text())
		}
		return l
	}
	for _, tc := range []struct {
		short, topic string
		msg          func() proto.Message
	}{
		{"hits", topics.Hits, func() proto.Message { return new(pixelpb.RawHit) }},
		{"events", topics.Events, func() proto.Message { return new(pixelpb.Event) }},
		{"sessions", topics.Sessions, func() proto.Message { return new(pixelpb.Session) }},
		{"counts", topics.Counts, func() proto.Message { return new(pixelpb.CountSnapshot) }},
	} {
		// By short name with the prefix, and by full name.
		for _, args := range [][]string{{"-kafka.topicPrefix=" + prefix, tc.short}, {tc.topic}} {
			out := mustBin(t, bin, append([]string{"tail", "-kafka.brokers=" + broker}, args...)...)
			got := lines(out)
			want := records[tc.topic]
			if len(got) != len(want) {
				t.Fatalf("tail %v: %d lines, want %d:\n%s", args, len(got), len(want), out)
			}
			used := make([]bool, len(want))
			for _, line := range got {
				m := tc.msg()
				if err := protojson.Unmarshal([]byte(line), m); err != nil {
					t.Fatalf("tail %v: %q: %v", args, line, err)
				}
				found := false
				for i, w := range want {
					if !used[i] && proto.Equal(m, w) {
						used[i], found = true, true
						break
					}
				}
				if !found {
					t.Errorf("tail %v: %s decodes to no record written", args, line)
				}
			}
		}
	}

	out := mustBin(t, bin, "tail", "-kafka.brokers="+broker, "-kafka.topicPrefix="+prefix, "dlq")
	got := lines(out)
	if len(got) != len(dead) {
		t.Fatalf("tail dlq: %d lines, want %d:\n%s", len(got), len(dead), out)
	}
	for _, line := range got {
		var d deadLetter
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("dlq line %q: %v", line, err)
		}
		if !reflect.DeepEqual(d, dead[0]) && !reflect.DeepEqual(d, dead[1]) {
			t.Errorf("dlq line %s decodes to %+v, not a record written", line, d)
		}
	}

	// -meta wraps each record with its position and key; -n stops early.
	out = mustBin(t, bin, "tail", "-kafka.brokers="+broker, "-meta", "-n=1", topics.Sessions)
	got = lines(out)
	if len(got) != 1 {
		t.Fatalf("-n=1: %d lines:\n%s", len(got), out)
	}
	var meta struct {
		Partition int             `json:"partition"`
		Offset    int64           `json:"offset"`
		Key       []byte          `json:"key"`
		Time      time.Time       `json:"time"`
		Value     json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal([]byte(got[0]), &meta); err != nil {
		t.Fatalf("-meta line %q: %v", got[0], err)
	}
	var sess pixelpb.Session
	if err := protojson.Unmarshal(meta.Value, &sess); err != nil {
		t.Fatalf("-meta value: %v", err)
	}
	if k := string(meta.Key); (k != "key-0" || !proto.Equal(&sess, records[topics.Sessions][0])) && (k != "key-1" || !proto.Equal(&sess, records[topics.Sessions][1])) {
		t.Errorf("-meta: key %q does not go with value %v", k, &sess)
	}
	if meta.Offset != 0 || meta.Partition < 0 || time.Since(meta.Time) > 10*time.Minute {
		t.Errorf("-meta: partition %d offset %d time %s", meta.Partition, meta.Offset, meta.Time)
	}

	// From the end without -follow there is nothing to print.
	if out := mustBin(t, bin, "tail", "-kafka.brokers="+broker, "-from=end", topics.Events); out != "" {
		t.Errorf("-from=end: %q", out)
	}
	// -follow -from=end prints what is written after it started, as it
	// comes, and -n ends it. When it took its end offsets is not visible
	// from outside, so a new record is written every 300 ms until it exits.
	follow := exec.Command(bin, "tail", "-kafka.brokers="+broker, "-follow", "-from=end", "-n=2", topics.Events)
	var followOut, followErr bytes.Buffer
	follow.Stdout, follow.Stderr = &followOut, &followErr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- follow.Wait() }()
	ew := kafkaconn.NewWriter(kc, topics.Events, nil)
	defer ew.Close()
	var written []proto.Message
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
followLoop:
	for i := 0; ; i++ {
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("tail -follow -n=2: %v\n%s", err, followErr.String())
			}
			break followLoop
		case <-deadline:
			_ = follow.Process.Kill()
			<-exited
			t.Fatalf("tail -follow -n=2 still running after 30 s and %d new records; printed:\n%s", i, followOut.String())
		case <-tick.C:
			m := &pixelpb.Event{SchemaVersion: 1, Origin: origin(byte(100 + i%100)), ContentId: "follow:" + strconv.Itoa(i), Kind: pixelpb.Kind_KIND_CLICK}
			b, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := ew.WriteMessages(ctx, kafka.Message{Key: []byte("f"), Value: b}); err != nil {
				t.Fatal(err)
			}
			written = append(written, m)
		}
	}
	got = lines(followOut.String())
	if len(got) != 2 {
		t.Fatalf("tail -follow -n=2 printed %d lines:\n%s", len(got), followOut.String())
	}
	for _, line := range got {
		var e pixelpb.Event
		if err := protojson.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("tail -follow: %q: %v", line, err)
		}
		if !slices.ContainsFunc(written, func(w proto.Message) bool { return proto.Equal(w, &e) }) {
			t.Errorf("tail -follow printed %s: not a record written after it started", line)
		}
	}

	// Without -n, -follow runs until it is interrupted, then exits 0.
	follow = exec.Command(bin, "tail", "-kafka.brokers="+broker, "-follow", topics.Sessions)
	followOut.Reset()
	follow.Stdout, follow.Stderr = &followOut, &followErr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := follow.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- follow.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("tail -follow after SIGINT: %v\n%s", err, followErr.String())
		}
	case <-time.After(10 * time.Second):
		_ = follow.Process.Kill()
		t.Fatal("tail -follow did not exit within 10 s of SIGINT")
	}
	if n := len(lines(followOut.String())); n != len(records[topics.Sessions]) {
		t.Errorf("tail -follow of sessions printed %d lines before SIGINT, want the %d written:\n%s", n, len(records[topics.Sessions]), followOut.String())
	}

	// A pipeline topic that does not exist is named, and not created.
	missing := "nosuch" + prefix + schemas.TopicEvents
	code, out, errOut := runBin(t, bin, "tail", "-kafka.brokers="+broker, missing)
	if code != 1 || !strings.Contains(errOut, "topic "+missing+" on "+broker) || out != "" {
		t.Errorf("missing topic: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
