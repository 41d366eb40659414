package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/internal/money"
	"github.com/pixelpipe/pixelpipe/query"
)

// runCLI runs the binary's entry function in-process.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

var exampleFlag = regexp.MustCompile(`(?:^|\s)-([a-zA-Z][a-zA-Z.]*)(?:=|\s|$)`)

// TestHelp: every command's -h and --help exit 0 and print, on stdout, its
// usage line, an example of it, and every flag the example uses.
func TestHelp(t *testing.T) {
	for _, c := range commands() {
		for _, h := range []string{"-h", "--help"} {
			t.Run(c.name+h, func(t *testing.T) {
				code, out, errOut := runCLI(t, c.name, h)
				if code != 0 {
					t.Fatalf("exit %d, want 0; stderr:\n%s", code, errOut)
				}
				if !strings.HasPrefix(out, "usage: pixelpipe "+c.name+" [flags]") {
					t.Errorf("no usage line first:\n%s", out)
				}
				_, rest, ok := strings.Cut(out, "\nexample:\n")
				if !ok {
					t.Fatalf("no example:\n%s", out)
				}
				example, _, _ := strings.Cut(rest, "\n\n")
				if !strings.HasPrefix(example, "  pixelpipe "+c.name) {
					t.Errorf("example does not run pixelpipe %s: %q", c.name, example)
				}
				// Every flag in the example is one of the command's flags.
				for _, line := range strings.Split(example, "\n") {
					if !strings.HasPrefix(strings.TrimSpace(line), "pixelpipe "+c.name) {
						continue
					}
					line, _, _ = strings.Cut(line, ";") // what follows is another program
					for _, m := range exampleFlag.FindAllStringSubmatch(line, -1) {
						if !strings.Contains(out, "\n  -"+m[1]+" ") && !strings.Contains(out, "\n  -"+m[1]+"\n") {
							t.Errorf("example uses -%s, which is not among the flags:\n%s", m[1], out)
						}
					}
				}
				if errOut != "" {
					t.Errorf("help wrote to stderr: %q", errOut)
				}
			})
		}
	}
	t.Run("top level", func(t *testing.T) {
		for _, h := range []string{"-h", "--help", "help"} {
			code, out, _ := runCLI(t, h)
			if code != 0 || !strings.HasPrefix(out, "usage: pixelpipe COMMAND") || !strings.Contains(out, "example: pixelpipe") {
				t.Errorf("%s: exit %d:\n%s", h, code, out)
			}
			for _, c := range commands() {
				if !strings.Contains(out, "\n  "+c.name+" ") {
					t.Errorf("%s: command %s not listed", h, c.name)
				}
			}
		}
		if code, _, errOut := runCLI(t); code != 2 || !strings.Contains(errOut, "usage:") {
			t.Errorf("no command: exit %d, want 2 and usage on stderr", code)
		}
		if code, _, errOut := runCLI(t, "nope"); code != 2 || !strings.Contains(errOut, `unknown command "nope"`) {
			t.Errorf("unknown command: exit %d, stderr %q", code, errOut)
		}
	})
}

// TestBadArguments: each tool refuses what it cannot use with exit 1 and
// a message naming the problem, before touching the network.
func TestBadArguments(t *testing.T) {
	key := "k1:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"stats"}, "give one content id"},
		{[]string{"stats", "a", "b"}, "give one content id"},
		{[]string{"stats", "-from=yesterday", "acme:a"}, `-from="yesterday": use a UTC date`},
		{[]string{"stats", "-to=2026-13-01", "acme:a"}, `-to="2026-13-01": use a UTC date`},
		{[]string{"stats", "-url=127.0.0.1:8081", "acme:a"}, "-url=\"127.0.0.1:8081\": use the query API's base URL"},
		{[]string{"stats", "-url=http://127.0.0.1:1", "acme:a"}, "ask the query API at http://127.0.0.1:1"},
		{[]string{"stats", "-nope", "acme:a"}, "flag provided but not defined: -nope"},
		{[]string{"series"}, "give one content id"},
		{[]string{"series", "-granularity=week", "acme:a"}, `-granularity="week": use hour, day`},
		{[]string{"series", "-kind=views", "acme:a"}, `-kind="views": use view, impression, click`},
		{[]string{"series", "-class=robot", "acme:a"}, `-class="robot": use human, bot, machine`},
		{[]string{"series", "-from=2026-02-30", "acme:a"}, `-from="2026-02-30": use a UTC date`},
		{[]string{"top", "acme:a"}, `top takes no argument, got ["acme:a"]`},
		{[]string{"top", "-by=clicks"}, `-by="clicks": use uniques, views`},
		{[]string{"top", "-n=0"}, "-n=0: use 1 to 100"},
		{[]string{"top", "-n=101"}, "-n=101: use 1 to 100"},
		{[]string{"top", "-url=ftp://x"}, `-url="ftp://x": use the query API's base URL`},
		{[]string{"breakdown"}, "give one content id"},
		{[]string{"breakdown", "-dimension=city", "acme:a"}, `-dimension="city": use country, device, browser, os, source`},
		{[]string{"breakdown", "-n=-3", "acme:a"}, "-n=-3: use 1 to 100"},
		{[]string{"top", "-kind=session"}, "-kind=session: top lists do not rank visits; a content id's visits are in pixelpipe stats"},
		{[]string{"top", "-kind=visits"}, `-kind="visits": use view, impression, click, conversion, open, custom`},
		{[]string{"breakdown", "-kind=session", "acme:a"}, "-kind=session: visits have no breakdowns"},
		{[]string{"export", "-kind=session", "top"}, "-kind=session: top lists do not rank visits"},
		{[]string{"export", "-kind=session", "breakdown", "acme:a"}, "-kind=session: visits have no breakdowns"},
		{[]string{"export"}, `export what? give series, top or breakdown, got ""`},
		{[]string{"export", "series"}, "export series takes one content id"},
		{[]string{"export", "breakdown", "a", "b"}, "export breakdown takes one content id"},
		{[]string{"export", "top", "a"}, `export top takes no id, got ["a"]`},
		{[]string{"export", "-format=xml", "top"}, `-format="xml": use csv, ndjson`},
		{[]string{"export", "-dimension=city", "breakdown", "acme:a"}, `-dimension="city": use country`},
		{[]string{"aggregator", "-aggregator.hourRetention=24h"}, "aggregator.hourRetention 24h0m0s: must exceed a day plus aggregator.lateHorizon"},
		{[]string{"aggregator", "-aggregator.dayRetention=240h"}, "aggregator.dayRetention 240h0m0s: must exceed a week plus aggregator.lateHorizon plus aggregator.rollup.maxWait"},
		{[]string{"tail", "nope"}, `unknown topic "nope": use hits, events, sessions, counts, dlq`},
		{[]string{"tail", "pixel.nope.v1"}, `unknown topic "pixel.nope.v1"`},
		{[]string{"tail"}, "give exactly one TOPIC"},
		{[]string{"tail", "-from=middle", "events"}, `-from="middle": use start or end`},
		{[]string{"sign", "-key=" + key}, "give a content id"},
		{[]string{"sign", "acme:a"}, "-key: use KEY_ID:BASE64_KEY"},
		{[]string{"sign", "-key=k1:***", "acme:a"}, "-key: the key is not standard base64"},
		{[]string{"sign", "-key=k1:c2hvcnQ=", "acme:a"}, "-key: the key has 5 bytes; the edge wants at least 16"},
		{[]string{"sign", "-key=" + key, "acme:a", "javascript:alert(1)"}, "use an absolute http(s) URL"},
		{[]string{"sign", "-key=" + key, "acme:a", "//evil.example/"}, "use an absolute http(s) URL"},
		{[]string{"sign", "-key=" + key, "-kind=bogus", "acme:a"}, `-kind="bogus"`},
		{[]string{"sign", "-key=" + key, "-kind=view", "acme:a", "https://shop.example/"}, "-kind is for signed pixels"},
		{[]string{"sign", "-key=" + key, "-ttl=-1h", "acme:a"}, "-ttl=-1h0m0s: use a positive duration"},
		{[]string{"sign", "-key=" + key, "acme a"}, `content id "acme a"`},
		{[]string{"snippet"}, "give one content id"},
		{[]string{"snippet", `x"><script>alert(1)</script>`}, `content id "x\"><script>alert(1)</script>": use 1-128 characters`},
		{[]string{"snippet", strings.Repeat("a", 129)}, "use 1-128 characters"},
		{[]string{"snippet", "-base=javascript:alert(1)", "acme:a"}, `-base="javascript:alert(1)": use the edge's public base URL`},
		{[]string{"snippet", "-base=https://px.example.com/?a=b", "acme:a"}, "use the edge's public base URL"},
		{[]string{"snippet", "-kind=visit", "acme:a"}, `-kind="visit": use view, impression`},
		{[]string{"aggregator", "-redis.addr=redis://x:1"}, `redis.addr: redis address "redis://x:1": use host:port`},
		{[]string{"processor", "-redis.addr=a:1,b"}, `redis.addr: redis address "a:1,b": "b" is not host:port`},
		{[]string{"query", "-redis.keyPrefix=p{x}"}, `redis.keyPrefix "p{x}": must not contain { or }`},
	} {
		code, out, errOut := runCLI(t, tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 1 and %q", tc.args, code, errOut, tc.want)
		}
		if out != "" {
			t.Errorf("%q: wrote to stdout: %q", tc.args, out)
		}
	}
}

func TestSign(t *testing.T) {
	raw := []byte("0123456789abcdef0123")
	key := "k1:" + base64.StdEncoding.EncodeToString(raw)

	code, out, errOut := runCLI(t, "sign", "-base=https://px.example.com/", "-key="+key, "-ttl=1h", "acme:ad-7", "https://shop.example.com/sale?a=1&b=2")
	if code != 0 {
		t.Fatalf("click: exit %d: %s", code, errOut)
	}
	u, err := url.Parse(strings.TrimSpace(out))
	if err != nil || u.Scheme != "https" || u.Host != "px.example.com" || u.Path != "/c" {
		t.Fatalf("click URL %q: %v", out, err)
	}
	q := u.Query()
	if q.Get("cid") != "acme:ad-7" || q.Get("u") != "https://shop.example.com/sale?a=1&b=2" || q.Get("kid") != "k1" || q.Get("exp") == "" {
		t.Fatalf("click URL parameters: %v", q)
	}
	var exp int64
	_ = json.Unmarshal([]byte(q.Get("exp")), &exp)
	if want := edge.SignClick(raw, "acme:ad-7", q.Get("u"), exp); q.Get("sig") != want {
		t.Errorf("sig %q, want %q", q.Get("sig"), want)
	}

	code, out, errOut = runCLI(t, "sign", "-base=https://px.example.com", "-key="+key, "-kind=impression", "acme:ad-7")
	if code != 0 {
		t.Fatalf("pixel: exit %d: %s", code, errOut)
	}
	pixel := strings.TrimSpace(out)
	signed, sig, ok := strings.Cut(strings.TrimPrefix(pixel, "https://px.example.com/p.gif?"), "&sig=")
	if !ok || !strings.HasPrefix(pixel, "https://px.example.com/p.gif?") {
		t.Fatalf("pixel URL %q", pixel)
	}
	if want := edge.SignPixel(raw, signed); sig != want {
		t.Errorf("pixel sig %q, want %q over %q", sig, want, signed)
	}
	pq, _ := url.ParseQuery(signed)
	if pq.Get("cid") != "acme:ad-7" || pq.Get("k") != "impression" || pq.Get("kid") != "k1" || pq.Has("exp") {
		t.Errorf("pixel parameters: %v", pq)
	}
}

// snippetTag is one element of the snippet output.
type snippetTag struct {
	name  string
	attrs map[string]string
	text  string // a script's body
}

func parseSnippet(t *testing.T, out string) []snippetTag {
	t.Helper()
	var tags []snippetTag
	z := html.NewTokenizer(strings.NewReader(out))
	inScript, inNoscript := false, false
	for {
		switch z.Next() {
		case html.ErrorToken:
			return tags
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			tag := snippetTag{name: tok.Data, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				if _, dup := tag.attrs[a.Key]; dup {
					t.Errorf("<%s> has attribute %s twice", tok.Data, a.Key)
				}
				tag.attrs[a.Key] = a.Val
			}
			tags = append(tags, tag)
			inScript, inNoscript = tok.Data == "script", tok.Data == "noscript"
		case html.TextToken:
			switch {
			case inScript:
				tags[len(tags)-1].text += string(z.Text())
			case inNoscript:
				// With scripting off (mail clients, crawlers) a browser
				// parses noscript's content as markup.
				tags = append(tags, parseSnippet(t, string(z.Text()))...)
			}
		case html.EndTagToken:
			inScript, inNoscript = false, false
		}
	}
}

// TestSnippet reads the snippets as a browser would and checks that each
// pixel URL carries the content id, the visitor id and a cache-buster, even
// when the base URL and visitor id try to break out of their attribute.
func TestSnippet(t *testing.T) {
	for _, tc := range []struct {
		name, base, uid, cid, kind string
		wantPath                   string
	}{
		{name: "plain", base: "https://px.example.com", cid: "acme:article-7", wantPath: "/p.gif"},
		{name: "email merge tag", base: "https://px.example.com/", uid: "{{recipient_hash}}", cid: "acme:newsletter-42", kind: "open", wantPath: "/p.gif"},
		{name: "hostile uid", base: "https://px.example.com", uid: `"><script>alert(1)</script><img src=x onerror=alert(2) x="`, cid: "acme:a", wantPath: "/p.gif"},
		{name: "hostile base", base: `https://px.example.com/t/"onerror="alert(1)'<!--</script>`, cid: "acme:a", wantPath: `/t/"onerror="alert(1)'<!--</script>/p.gif`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"snippet", "-base=" + tc.base}
			if tc.uid != "" {
				args = append(args, "-uid="+tc.uid)
			}
			if tc.kind != "" {
				args = append(args, "-kind="+tc.kind)
			}
			code, out, errOut := runCLI(t, append(args, tc.cid)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.Contains(out, "cid="+url.QueryEscape(tc.cid)) {
				t.Errorf("content id not URL-escaped as %q", "cid="+url.QueryEscape(tc.cid))
			}
			wantAttrs := map[string][]string{
				"script":    {},
				"noscript":  {},
				"img":       {"src", "width", "height", "alt", "style", "loading", "referrerpolicy", "border"},
				"amp-pixel": {"src", "layout"},
			}
			var srcs []string
			seen := map[string]int{}
			for _, tag := range parseSnippet(t, out) {
				seen[tag.name]++
				allowed, ok := wantAttrs[tag.name]
				if !ok {
					t.Errorf("unexpected element <%s> %v", tag.name, tag.attrs)
					continue
				}
				for k := range tag.attrs {
					if !contains(allowed, k) {
						t.Errorf("<%s> has injected attribute %s=%q", tag.name, k, tag.attrs[k])
					}
				}
				switch tag.name {
				case "img", "amp-pixel":
					srcs = append(srcs, tag.attrs["src"])
				case "script":
					// The script builds the URL from one string literal, then
					// the page's URL and referrer, then a cache-buster.
					m := regexp.MustCompile(`i\.src=("(?:[^"\\]|\\.)*")\+"&url="\+encodeURIComponent\((?:location\.href\.split\("#"\)\[0\]|u)\)\+"&ref="\+encodeURIComponent\((?:document\.referrer|ref)\)\+"&cb="`).FindStringSubmatch(tag.text)
					if m == nil {
						t.Fatalf("script has no i.src literal: %s", tag.text)
					}
					var lit string
					if err := json.Unmarshal([]byte(m[1]), &lit); err != nil {
						t.Fatalf("script literal %s: %v", m[1], err)
					}
					srcs = append(srcs, lit+"&cb=fromscript")
				}
			}
			if seen["script"] != 2 || seen["noscript"] != 1 || seen["img"] != 3 || seen["amp-pixel"] != 1 {
				t.Errorf("elements %v, want 2 scripts (page, single-page app), 1 noscript, 3 img, 1 amp-pixel", seen)
			}
			if !strings.Contains(out, "&amp;url=SOURCE_URL&amp;ref=DOCUMENT_REFERRER&amp;cb=RANDOM") {
				t.Error("the AMP pixel does not send AMP's page URL and referrer")
			}
			if !strings.Contains(out, `layout="nodisplay"`) || !strings.Contains(out, "<noscript><img ") {
				t.Error("no AMP nodisplay layout or noscript image")
			}
			cbs := map[string]bool{}
			for _, src := range srcs {
				u, err := url.Parse(src)
				if err != nil {
					t.Errorf("src %q: %v", src, err)
					continue
				}
				q := u.Query()
				if u.Scheme != "https" || u.Host != "px.example.com" || u.Path != tc.wantPath {
					t.Errorf("src %q: want https://px.example.com%s", src, tc.wantPath)
				}
				if q.Get("cid") != tc.cid || q.Get("uid") != tc.uid || q.Get("k") != tc.kind {
					t.Errorf("src %q: cid %q uid %q k %q, want %q %q %q", src, q.Get("cid"), q.Get("uid"), q.Get("k"), tc.cid, tc.uid, tc.kind)
				}
				if len(q["cb"]) != 1 || q.Get("cb") == "" {
					t.Errorf("src %q: want one cache-buster cb", src)
				}
				cbs[q.Get("cb")] = true
			}
			if !cbs["RANDOM"] || !cbs["fromscript"] || len(cbs) != 3 || len(srcs) != 6 {
				t.Errorf("cache-busters %v: want AMP's RANDOM, the script's own and one static per snippet", cbs)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestListAnswers: series, top and breakdown ask the API for what their
// flags say and print its answer as a table in the API's order.
func TestListAnswers(t *testing.T) {
	var gotPath, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotAuth = r.URL.RequestURI(), r.Header.Get("Authorization")
		until, lag := "2026-11-28T13:00:00Z", 2.5
		fresh := query.FreshnessBody{CompleteUntil: &until, LagSeconds: &lag, Status: "complete"}
		items := []query.ShareItem{{Key: "acme:b", Total: 900, Uniques: 700, UniquesBound: 21}, {Key: "acme:a", Total: 1200, Uniques: 650}}
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/campaigns/"):
			_ = json.NewEncoder(w).Encode(query.SeriesResponse{Granularity: "hour", Class: "human", UniquesKind: "session", Freshness: fresh, Points: []query.SeriesPoint{
				{Start: "2026-11-01T00:00:00Z", Views: 30, Uniques: 11, Visits: 14}}})
		case strings.HasPrefix(r.URL.Path, "/v1/series/"):
			_ = json.NewEncoder(w).Encode(query.SeriesResponse{Granularity: "day", Class: "bot", UniquesKind: "click",
				From: "2026-11-01T00:00:00Z", To: "2026-11-03T00:00:00Z", Freshness: fresh, Points: []query.SeriesPoint{
					{Start: "2026-11-01T00:00:00Z", Impressions: 40, Views: 15, Clicks: 12, Conversions: 1, Uniques: 9, UniquesBound: 1},
					{Start: "2026-11-02T00:00:00Z", Opens: 3, Custom: 2}}})
		case r.URL.Path == "/v1/top":
			_ = json.NewEncoder(w).Encode(query.TopResponse{By: r.URL.Query().Get("by"), From: "a", To: "b", Items: items, Freshness: fresh})
		case strings.HasPrefix(r.URL.Path, "/v1/breakdowns/"):
			_ = json.NewEncoder(w).Encode(query.BreakdownResponse{Dimension: r.URL.Query().Get("dimension"), From: "a", To: "b"})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	for _, tc := range []struct {
		args     []string
		wantPath string
		want     []string
	}{
		{[]string{"series", "-granularity=day", "-kind=click", "-class=bot", "-from=2026-11-01", "-to=2026-11-03", "acme:a"},
			"/v1/series/acme:a?class=bot&from=2026-11-01&granularity=day&kind=click&to=2026-11-03",
			[]string{"acme:a  [2026-11-01T00:00:00Z, 2026-11-03T00:00:00Z)  bot per day, uniques of click\ncomplete until 2026-11-28T13:00:00Z (lag 2.5 s, complete)\n",
				"2026-11-01T00:00:00Z           40     15      12            1      0       0       0        9       1",
				"2026-11-02T00:00:00Z            0      0       0            0      3       2       0        0       0"}},
		{[]string{"series", "-campaign", "-kind=session", "spring/sale"}, "/v1/campaigns/spring%2Fsale/series?class=human&granularity=hour&kind=session",
			[]string{"custom  visits  uniques  ±bound\n  2026-11-01T00:00:00Z            0     30       0            0      0       0      14       11       0\n"}},
		{[]string{"top", "-by=views", "-n=2"}, "/v1/top?by=views&kind=view&limit=2",
			[]string{"top content ids by human views  [a, b)\n", "  #  views  uniques  ±bound  content id\n  1    900      700      21  acme:b\n  2   1200      650       0  acme:a\n"}},
		{[]string{"breakdown", "-dimension=os", "acme:a"}, "/v1/breakdowns/acme:a?dimension=os&kind=view&limit=10",
			[]string{"acme:a by os, human views  [a, b)\n", "nothing counted in this range\n"}},
		{[]string{"breakdown", "-dimension=prop", "-kind=custom", "acme:signup"}, "/v1/breakdowns/acme:signup?dimension=prop&kind=custom&limit=10",
			[]string{"acme:signup by prop, human custom events  [a, b)\n"}},
		{[]string{"top", "-kind=custom", "-n=2"}, "/v1/top?by=uniques&kind=custom&limit=2",
			[]string{"top content ids by uniques of human custom events  [a, b)\n", "  #  events  uniques  ±bound  content id\n"}},
	} {
		code, out, errOut := runCLI(t, append([]string{tc.args[0], "-url=" + srv.URL, "-token=tok"}, tc.args[1:]...)...)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", tc.args, code, errOut)
		}
		if gotPath != tc.wantPath || gotAuth != "Bearer tok" {
			t.Errorf("%q asked %q with %q, want %q", tc.args, gotPath, gotAuth, tc.wantPath)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
	// -json prints the answer as is.
	code, out, _ := runCLI(t, "top", "-url="+srv.URL, "-json")
	var top query.TopResponse
	if code != 0 || json.Unmarshal([]byte(out), &top) != nil || len(top.Items) != 2 || strings.Count(out, "\n") != 1 {
		t.Errorf("top -json: exit %d, %q", code, out)
	}
}

// TestStatsAnswers: the API's errors reach the terminal with their message,
// and the table is printed in a stable order.
func TestStatsAnswers(t *testing.T) {
	var gotPath, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotAuth = r.URL.RequestURI(), r.Header.Get("Authorization")
		switch r.URL.Query().Get("from") {
		case "2020-01-01":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"range of 2557 days is longer than 400"}`))
		case "2021-01-01":
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>bad gateway</html>"))
		default:
			_ = json.NewEncoder(w).Encode(query.StatsResponse{
				From: "2026-11-01T00:00:00Z", To: "2026-12-01T00:00:00Z",
				Human: query.ClassStats{
					Impressions: query.KindStats{Total: 400, Uniques: 300, UniquesBound: 3},
					Clicks:      query.KindStats{Total: 10, Uniques: 9},
					Conversions: query.KindStats{Total: 2, Uniques: 2},
					CTR:         0.025, ConversionRate: 0.2, Orders: 2,
					Revenue: map[string]money.Sum{"USD": money.Of(5_000_000), "EUR": money.Of(12_500_000), "CHF": money.Of(1_000_000)},
					Visits:  query.VisitStats{Visits: 40, Visitors: 31, VisitorsBound: 1, Bounces: 10, BounceRate: 0.25, MeanDurationS: 125.4, PagesPerVisit: 2.5},
				},
				Bot:     query.ClassStats{Impressions: query.KindStats{Total: 7}, Reasons: map[string]uint64{"ua": 5, "datacenter": 2}, Visits: query.VisitStats{Visits: 3}},
				Machine: query.ClassStats{Reasons: map[string]uint64{"apple_mpp": 1}},
			})
		}
	}))
	defer srv.Close()

	code, _, errOut := runCLI(t, "stats", "-url="+srv.URL, "-from=2020-01-01", "-to=2027-01-01", "acme:a")
	if code != 1 || !strings.Contains(errOut, "query API answered 400: range of 2557 days is longer than 400") {
		t.Errorf("400: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "stats", "-url="+srv.URL, "-from=2021-01-01", "acme:a")
	if code != 1 || !strings.Contains(errOut, "query API answered 502: <html>bad gateway</html>") {
		t.Errorf("502 without JSON: exit %d, %q", code, errOut)
	}
	code, out, errOut := runCLI(t, "stats", "-url="+srv.URL+"/", "-token=tok", "-campaign", "spring/sale")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if gotPath != "/v1/campaigns/spring%2Fsale/stats?" || gotAuth != "Bearer tok" {
		t.Errorf("asked %q with %q", gotPath, gotAuth)
	}
	for _, want := range []string{
		"impressions    400      300       3    7        0",
		"CTR 2.50%   conversion rate 20.00%   orders 2   CHF 1.00   EUR 12.50   USD 5.00\n" +
			"human visits 40   visitors 31 ±1   bounce rate 25.00%   mean visit duration 2m5s   pages per visit 2.50\n",
		"freshness: unknown",
		"\nbot reasons:  datacenter 2  ua 5\nmachine reasons:  apple_mpp 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestPrintVisits: without visits, stats says when they appear; a mean
// visit is written in tenths of a second below 10 s, whole seconds above.
func TestPrintVisits(t *testing.T) {
	var b bytes.Buffer
	printVisits(&b, query.VisitStats{})
	if want := "human visits 0 (a visit is counted when it ends: after 30 minutes without a hit, by default)\n"; b.String() != want {
		t.Errorf("no visits: %q, want %q", b.String(), want)
	}
	for s, want := range map[float64]string{0: "0s", 0.04: "0s", 1.25: "1.3s", 9.94: "9.9s", 59.6: "1m0s", 125.4: "2m5s", 3723: "1h2m3s"} {
		if got := visitDuration(s); got != want {
			t.Errorf("visitDuration(%v) = %q, want %q", s, got, want)
		}
	}
}

// TestREADMECommandLine reruns the README's command-line examples that need
// no running services (sign, snippet, input errors) and requires the output
// shown there, cache-busters aside. A "..." line stands for lines left out.
func TestREADMECommandLine(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Command line\n")
	if !ok {
		t.Fatal("README has no ### Command line section")
	}
	section, _, _ = strings.Cut(section, "\n### ")
	cb := regexp.MustCompile(`cb=[0-9a-f]{12}`)
	type example struct {
		cmd  string
		want []string
	}
	var examples []*example
	inBlock := false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			inBlock = !inBlock
		case inBlock && strings.HasPrefix(line, "$ pixelpipe "):
			examples = append(examples, &example{cmd: strings.TrimPrefix(line, "$ pixelpipe ")})
		case inBlock && len(examples) > 0:
			e := examples[len(examples)-1]
			e.want = append(e.want, line)
		}
	}
	seen := map[string]bool{}
	for _, e := range examples {
		args := strings.Fields(e.cmd)
		if args[0] != "sign" && args[0] != "snippet" && !strings.HasPrefix(strings.Join(e.want, ""), "pixelpipe ") {
			continue // needs a running pipeline: TestCLI checks these
		}
		seen[args[0]] = true
		code, out, errOut := runCLI(t, args...)
		got := strings.Split(strings.TrimSuffix(cb.ReplaceAllString(out+errOut, "cb=X"), "\n"), "\n")
		want := strings.Split(cb.ReplaceAllString(strings.Join(e.want, "\n"), "cb=X"), "\n")
		if strings.HasPrefix(want[0], "pixelpipe ") != (code != 0) {
			t.Errorf("pixelpipe %s: exit %d", e.cmd, code)
		}
		if !slices.Contains(want, "...") {
			if !slices.Equal(got, want) {
				t.Errorf("pixelpipe %s:\n%s\nREADME shows:\n%s", e.cmd, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			continue
		}
		for _, w := range want {
			if w != "..." && !slices.Contains(got, w) {
				t.Errorf("pixelpipe %s: no line\n%s\nin\n%s", e.cmd, w, strings.Join(got, "\n"))
			}
		}
	}
	for _, c := range []string{"sign", "snippet", "stats"} {
		if !seen[c] {
			t.Errorf("README shows no checked example of %s", c)
		}
	}
	for _, c := range []string{"stats", "series", "top", "breakdown", "tail", "sign", "snippet"} {
		if !strings.Contains(section, "$ pixelpipe "+c+" ") {
			t.Errorf("README's command-line section has no example of %s", c)
		}
	}
}

// TestAuditCommand: pixelpipe audit asks /v1/audit with its flags, prints
// each node's figures and missing ranges, and with -strict fails when a hit
// is missing.
func TestAuditCommand(t *testing.T) {
	var gotPath string
	at := time.Date(2026, 11, 2, 9, 41, 7, 500_000_000, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.RequestURI()
		fig := audit.Totals{Accepted: 1203, Events: 1201, Counted: 1201, DeadLettered: 1, Missing: 1, Duplicates: 3}
		_ = json.NewEncoder(w).Encode(query.AuditResponse{From: at.Truncate(time.Hour), To: at.Truncate(time.Hour).Add(time.Hour), Group: "g", CountedUntil: &at,
			Report: &audit.Report{Totals: fig, Nodes: []audit.Node{{Node: "edge-1", Totals: fig,
				Minutes: []audit.Minute{{Minute: at.Truncate(time.Minute), Totals: fig}},
				Missing: []audit.MissingRange{{BootMs: 1_793_604_000_000, Partition: 4, FromSeq: 5122, ToSeq: 5122, Before: at}}}}}})
	}))
	defer srv.Close()
	code, out, errOut := runCLI(t, "audit", "-url="+srv.URL, "-node=edge-1", "-minutes")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if gotPath != "/v1/audit?node=edge-1" {
		t.Errorf("asked %q", gotPath)
	}
	for _, w := range []string{
		"audit of processor group g, hits received in [2026-11-02T09:00:00Z, 2026-11-02T10:00:00Z)\ncounted until 2026-11-02T09:41:07.5Z",
		"  accepted  counted  not yet  dead-lettered  missing  duplicates  unsequenced  node\n      1203     1201        0              1        1           3            0  edge-1\n",
		"edge-1 per minute",
		"  partition 4, boot 2026-11-02T07:20:00Z: 5122-5122 (1 hits) before 2026-11-02T09:41:07.5Z\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if code, _, errOut := runCLI(t, "audit", "-url="+srv.URL, "-strict"); code == 0 || !strings.Contains(errOut, "1 hits missing") {
		t.Errorf("-strict with a hit missing: exit %d, %q", code, errOut)
	}
}
