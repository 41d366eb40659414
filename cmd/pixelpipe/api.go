package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/flagenv"
	"github.com/pixelpipe/pixelpipe/query"
)

// apiFlags are the flags of the commands that read the query API: where it
// is, the token, the range, and -json to print its answer as is.
type apiFlags struct {
	url, from, to *string
	token         *flagenv.Secret
	asJSON        *bool
}

// newAPIFlagSet is newFlagSet with the API flags bound; route names the
// API route whose answer -json prints.
func newAPIFlagSet(name, args, example, route string) (*flag.FlagSet, *apiFlags) {
	fs := newFlagSet(name, args, example)
	a := &apiFlags{}
	a.bind(fs, route)
	return fs, a
}

func (a *apiFlags) bind(fs *flag.FlagSet, route string) {
	a.url = fs.String("url", "http://127.0.0.1:8081", "query API base URL")
	a.token = flagenv.NewSecret("")
	fs.Var(a.token, "token", "bearer token of the query API (PIXEL_TOKEN)")
	a.from = fs.String("from", "", "start, inclusive: YYYY-MM-DD or RFC 3339 (UTC, hour resolution); default the start of today (UTC)")
	a.to = fs.String("to", "", "end, exclusive: YYYY-MM-DD or RFC 3339; default one day after -from")
	a.asJSON = new(bool)
	if route != "" { // commands that print the JSON answer
		a.asJSON = fs.Bool("json", false, "print the query API's JSON answer ("+route+", see query/openapi.yaml) as is, on one line")
	}
}

// get asks the query API for path with q and the range flags. With -json it
// prints the answer and returns printed; otherwise it decodes it into v.
// The flags are checked first, so a typo is named before anything is asked.
func (a *apiFlags) get(ctx context.Context, path string, q url.Values, stdout io.Writer, v any) (printed bool, err error) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := a.ask(rctx, path, q)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return false, fmt.Errorf("read the query API's answer: %w", err)
	}
	if *a.asJSON {
		if _, err := stdout.Write(body); err != nil {
			return true, err
		}
		if len(body) > 0 && body[len(body)-1] != '\n' {
			_, err = io.WriteString(stdout, "\n")
		}
		return true, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return false, fmt.Errorf("decode the answer: %w", err)
	}
	return false, nil
}

// ask sends the request of get and returns the answer if it is a 200; any
// other status is an error with the API's message.
func (a *apiFlags) ask(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	for _, r := range []struct{ name, v string }{{"from", *a.from}, {"to", *a.to}} {
		if r.v == "" {
			continue
		}
		if _, err := time.Parse("2006-01-02", r.v); err == nil {
			continue
		}
		if _, err := time.Parse(time.RFC3339, r.v); err != nil {
			return nil, fmt.Errorf("-%s=%q: use a UTC date (YYYY-MM-DD) or an RFC 3339 time (2026-11-01T13:00:00Z)", r.name, r.v)
		}
	}
	if *a.from != "" {
		q.Set("from", *a.from)
	}
	if *a.to != "" {
		q.Set("to", *a.to)
	}
	return a.send(ctx, http.MethodGet, path, q)
}

// send sends a request of method to the query API at path with q (no
// range flags) and returns the answer if it is a 200; any other status is
// an error with the API's message.
func (a *apiFlags) send(ctx context.Context, method, path string, q url.Values) (*http.Response, error) {
	base, err := url.Parse(strings.TrimRight(*a.url, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("-url=%q: use the query API's base URL, e.g. http://127.0.0.1:8081", *a.url)
	}
	req, err := http.NewRequestWithContext(ctx, method, base.String()+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if t := a.token.Value(); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the query API at %s: %w", *a.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		var e struct{ Error string }
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body[:min(len(body), 200)]))
		}
		return nil, fmt.Errorf("query API answered %d: %s", resp.StatusCode, e.Error)
	}
	return resp, nil
}

// oneID returns the command's single non-empty argument.
func oneID(fs *flag.FlagSet, usage string) (string, error) {
	if fs.NArg() != 1 {
		fs.Usage()
		return "", errors.New(usage)
	}
	if fs.Arg(0) == "" {
		return "", errors.New("the content id is empty")
	}
	return fs.Arg(0), nil
}

// oneOf checks an enumerated flag.
func oneOf(name, v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return fmt.Errorf("-%s=%q: use %s", name, v, strings.Join(allowed, ", "))
}

// limitFlag binds -n, the length of a list (the API's limit, 1-100).
func limitFlag(fs *flag.FlagSet, what string) *int {
	return fs.Int("n", 10, "how many "+what+" (1-100)")
}

func checkLimit(n int) error {
	if n < 1 || n > 100 {
		return fmt.Errorf("-n=%d: use 1 to 100", n)
	}
	return nil
}

// cmdSeries prints a content id's (or campaign's) counts per hour or day.
func cmdSeries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := newAPIFlagSet("series", "CONTENT_ID  (or -campaign CAMPAIGN)", "pixelpipe series -url=http://127.0.0.1:8081 -token=$TOKEN -granularity=day -from=2026-11-01 -to=2026-12-01 acme:article-7\n  pixelpipe series -kind=click -class=bot acme:article-7", "/v1/series/{cid}")
	campaign := fs.Bool("campaign", false, "the argument is a campaign, not a content id")
	granularity := fs.String("granularity", "hour", "bucket length: hour (at most 31 days) or day")
	kind := fs.String("kind", "view", "the kind whose unique visitors each bucket shows: view, impression, click, conversion, open, custom, session (visits)")
	class := fs.String("class", "human", "traffic class: human, bot or machine")
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	id, err := oneID(fs, "give one content id (or a campaign with -campaign)")
	if err != nil {
		return err
	}
	if err := errors.Join(oneOf("granularity", *granularity, "hour", "day"),
		oneOf("kind", *kind, kindNames...),
		oneOf("class", *class, "human", "bot", "machine")); err != nil {
		return err
	}
	path := "/v1/series/" + url.PathEscape(id)
	if *campaign {
		path = "/v1/campaigns/" + url.PathEscape(id) + "/series"
	}
	q := url.Values{"granularity": {*granularity}, "kind": {*kind}, "class": {*class}}
	var sr query.SeriesResponse
	if printed, err := api.get(ctx, path, q, stdout, &sr); err != nil || printed {
		return err
	}
	fmt.Fprintf(stdout, "%s  [%s, %s)  %s per %s, uniques of %s\n", id, sr.From, sr.To, sr.Class, sr.Granularity, sr.UniquesKind)
	printFreshness(stdout, &sr.Freshness)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "start\timpressions\tviews\tclicks\tconversions\topens\tcustom\tvisits\tuniques\t±bound\t")
	for _, p := range sr.Points {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", p.Start, p.Impressions, p.Views, p.Clicks, p.Conversions, p.Opens, p.Custom, p.Visits, p.Uniques, p.UniquesBound)
	}
	return tw.Flush()
}

// cmdTop prints the content ids with the most human uniques or views.
func cmdTop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := newAPIFlagSet("top", "", "pixelpipe top -url=http://127.0.0.1:8081 -token=$TOKEN -by=views -n=20 -from=2026-11-01 -to=2026-12-01", "/v1/top")
	by := fs.String("by", "uniques", "order by human unique visitors (uniques) or human events of the kind (views)")
	kind := fs.String("kind", "view", "the kind ranked: view, impression, click, conversion, open, custom (the top custom events, each named by its content id); visits are not ranked")
	n := limitFlag(fs, "content ids")
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("top takes no argument, got %q", fs.Args())
	}
	if err := errors.Join(oneOf("by", *by, "uniques", "views"), eventKind(*kind, "top lists do not rank visits"), checkLimit(*n)); err != nil {
		return err
	}
	var top query.TopResponse
	if printed, err := api.get(ctx, "/v1/top", url.Values{"by": {*by}, "kind": {*kind}, "limit": {strconv.Itoa(*n)}}, stdout, &top); err != nil || printed {
		return err
	}
	k := cmp.Or(top.Kind, *kind)
	if k == "view" {
		fmt.Fprintf(stdout, "top content ids by human %s  [%s, %s)\n", top.By, top.From, top.To)
	} else {
		what := top.By
		if what == "views" {
			what = "events"
		}
		fmt.Fprintf(stdout, "top content ids by %s of human %s  [%s, %s)\n", what, kindPlural(k), top.From, top.To)
	}
	return printShares(stdout, &top.Freshness, "content id", strings.TrimPrefix(kindPlural(k), "custom "), top.Items, true)
}

// breakdownDims are the dimensions the query API breaks views down by.
var breakdownDims = hllstore.Dims()

// kindPlural names events of kind k in a heading: "views", "custom events".
func kindPlural(k string) string {
	if k == "custom" {
		return "custom events"
	}
	return k + "s"
}

// kindNames are the kinds the API's kind parameter takes; session is
// visits (stats and series only: see eventKind).
var kindNames = []string{"view", "impression", "click", "conversion", "open", "custom", "session"}

// eventKind checks the -kind of a report that holds events only (top
// lists, breakdowns): any kind but session, refused with why.
func eventKind(kind, why string) error {
	if kind == "session" {
		return fmt.Errorf("-kind=session: %s; a content id's visits are in pixelpipe stats", why)
	}
	return oneOf("kind", kind, kindNames[:len(kindNames)-1]...)
}

// cmdBreakdown prints a content id's human views by one dimension
// (breakdownDims).
func cmdBreakdown(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := newAPIFlagSet("breakdown", "CONTENT_ID", "pixelpipe breakdown -url=http://127.0.0.1:8081 -token=$TOKEN -dimension=country -n=20 acme:article-7", "/v1/breakdowns/{cid}")
	dimension := fs.String("dimension", "country", "country, device, browser, os, source (referrer class), referrer (domain), utm_source, utm_medium, utm_campaign, page, landing (a session's first page), destination (a click's link; with -kind=click) or prop (custom properties, key=value; with -kind=custom for custom events)")
	kind := fs.String("kind", "view", "the kind of the events broken down: view, impression, click, conversion, open, custom")
	n := limitFlag(fs, "values")
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	id, err := oneID(fs, "give one content id")
	if err != nil {
		return err
	}
	if err := errors.Join(oneOf("dimension", *dimension, breakdownDims...), eventKind(*kind, "visits have no breakdowns (-dimension=landing breaks views down by landing page)"), checkLimit(*n)); err != nil {
		return err
	}
	var bd query.BreakdownResponse
	q := url.Values{"dimension": {*dimension}, "kind": {*kind}, "limit": {strconv.Itoa(*n)}}
	if printed, err := api.get(ctx, "/v1/breakdowns/"+url.PathEscape(id), q, stdout, &bd); err != nil || printed {
		return err
	}
	fmt.Fprintf(stdout, "%s by %s, human %s  [%s, %s)\n", id, bd.Dimension, kindPlural(cmp.Or(bd.Kind, *kind)), bd.From, bd.To)
	return printShares(stdout, &bd.Freshness, bd.Dimension, strings.TrimPrefix(kindPlural(cmp.Or(bd.Kind, *kind)), "custom "), bd.Items, false)
}

// printShares prints a top list or a breakdown: rank (for a top list), the
// events (counted, named in their column's heading), unique visitors with
// their error bound and the key.
func printShares(w io.Writer, f *query.FreshnessBody, keyName, countName string, items []query.ShareItem, ranked bool) error {
	printFreshness(w, f)
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "nothing counted in this range")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if ranked {
		fmt.Fprint(tw, "#\t")
	}
	// The key last, so it stays left-aligned under the right-aligned numbers.
	fmt.Fprintf(tw, "%s\tuniques\t±bound\t  %s\n", countName, keyName)
	for i, it := range items {
		if ranked {
			fmt.Fprintf(tw, "%d\t", i+1)
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t  %s\n", it.Total, it.Uniques, it.UniquesBound, it.Key)
	}
	return tw.Flush()
}

// printVisits prints the human visits of a stats answer on one line:
// visits, distinct visitors ± their bound, bounce rate, mean visit duration
// and pages per visit; or, without visits, when they appear.
func printVisits(w io.Writer, v query.VisitStats) {
	if v.Visits == 0 {
		fmt.Fprintln(w, "human visits 0 (a visit is counted when it ends: after 30 minutes without a hit, by default)")
		return
	}
	fmt.Fprintf(w, "human visits %d   visitors %d ±%d   bounce rate %.2f%%   mean visit duration %s   pages per visit %.2f\n",
		v.Visits, v.Visitors, v.VisitorsBound, 100*v.BounceRate, visitDuration(v.MeanDurationS), v.PagesPerVisit)
}

// visitDuration writes a mean visit duration in seconds: tenths of a second
// below 10 s (1.5s), whole seconds above (4m5s, 1h2m3s).
func visitDuration(s float64) string {
	d := time.Duration(s * float64(time.Second))
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// printFreshness prints the watermark line and a blank line.
func printFreshness(w io.Writer, f *query.FreshnessBody) {
	if f.CompleteUntil != nil && f.LagSeconds != nil {
		fmt.Fprintf(w, "complete until %s (lag %.1f s, %s)\n\n", *f.CompleteUntil, *f.LagSeconds, f.Status)
	} else {
		fmt.Fprintf(w, "freshness: unknown (no watermark)\n\n")
	}
}
