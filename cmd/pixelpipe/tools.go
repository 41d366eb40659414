package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/internal/flagenv"
	"github.com/pixelpipe/pixelpipe/query"
)

// cmdStats prints the counts of a content id or campaign from the query API.
func cmdStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := newAPIFlagSet("stats", "CONTENT_ID  (or -campaign CAMPAIGN)", "pixelpipe stats -url=http://127.0.0.1:8081 -token=$TOKEN -from=2026-11-01 -to=2026-12-01 acme:article-7\n  pixelpipe stats -json -campaign spring-sale", "/v1/stats/{cid}")
	campaign := fs.Bool("campaign", false, "the argument is a campaign, not a content id")
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	id, err := oneID(fs, "give one content id (or a campaign with -campaign)")
	if err != nil {
		return err
	}
	path := "/v1/stats/" + url.PathEscape(id)
	if *campaign {
		path = "/v1/campaigns/" + url.PathEscape(id) + "/stats"
	}
	var st query.StatsResponse
	if printed, err := api.get(ctx, path, url.Values{}, stdout, &st); err != nil || printed {
		return err
	}
	printStats(stdout, id, &st)
	return nil
}

// printStats prints a stats answer as a table: per kind, the human total,
// human unique visitors and their error bound, and the bot, machine and
// unverified totals; then the human funnel rates and revenue, the human
// visits, and the events per reason of each class that has some.
func printStats(w io.Writer, id string, st *query.StatsResponse) {
	fmt.Fprintf(w, "%s  [%s, %s)\n", id, st.From, st.To)
	printFreshness(w, &st.Freshness)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\thuman\tuniques\t±bound\tbot\tmachine\tunverified\t")
	row := func(name string, h, b, m, u query.KindStats) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", name, h.Total, h.Uniques, h.UniquesBound, b.Total, m.Total, u.Total)
	}
	H, B, M, U := st.Human, st.Bot, st.Machine, st.Unverified
	row("impressions", H.Impressions, B.Impressions, M.Impressions, U.Impressions)
	row("views", H.Views, B.Views, M.Views, U.Views)
	row("clicks", H.Clicks, B.Clicks, M.Clicks, U.Clicks)
	row("conversions", H.Conversions, B.Conversions, M.Conversions, U.Conversions)
	row("opens", H.Opens, B.Opens, M.Opens, U.Opens)
	row("custom", H.Custom, B.Custom, M.Custom, U.Custom)
	_ = tw.Flush()
	fmt.Fprintf(w, "\nCTR %.2f%%   conversion rate %.2f%%   orders %d", 100*H.CTR, 100*H.ConversionRate, H.Orders)
	curs := make([]string, 0, len(H.Revenue))
	for cur := range H.Revenue {
		curs = append(curs, cur)
	}
	sort.Strings(curs)
	for _, cur := range curs {
		fmt.Fprintf(w, "   %s %s", cur, H.Revenue[cur].Format(2))
	}
	fmt.Fprintln(w)
	printVisits(w, H.Visits)
	for _, c := range []struct {
		name    string
		reasons map[string]uint64
	}{{"human (not verified, signing policy prefer)", H.Reasons}, {"bot", B.Reasons}, {"machine", M.Reasons}, {"unverified", U.Reasons}} {
		if len(c.reasons) == 0 {
			continue
		}
		names := make([]string, 0, len(c.reasons))
		for r := range c.reasons {
			names = append(names, r)
		}
		sort.Strings(names)
		fmt.Fprintf(w, "%s reasons:", c.name)
		for _, r := range names {
			fmt.Fprintf(w, "  %s %d", r, c.reasons[r])
		}
		fmt.Fprintln(w)
	}
}

// cmdSign prints a signed click URL (edge.SignClick) or, without a
// destination, a signed pixel URL (edge.SignPixel).
func cmdSign(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sign", "CONTENT_ID [DESTINATION_URL]", `pixelpipe sign -base=https://px.example.com -key=k1:$(head -c32 /dev/urandom | base64) -ttl=720h acme:ad-7 https://shop.example.com/sale
  pixelpipe sign -base=https://px.example.com -key=k1:$KEY -kind=impression acme:ad-7

  With a destination: a click URL (/c) that redirects there. Without one: a
  pixel URL (/p.gif) whose hits the edge marks verified; append &cb=ANY as a
  cache-buster, nothing else.`)
	base := fs.String("base", "http://127.0.0.1:8080", "public base URL of the edge")
	key := flagenv.NewSecret("")
	fs.Var(key, "key", "signing key KEY_ID:BASE64_KEY, one of the edge's -edge.click.keys (PIXEL_KEY)")
	ttl := fs.Duration("ttl", 0, "how long the URL stays valid; 0 = no expiry")
	kind := fs.String("kind", "", "pixel only: event kind (k): view (default), impression, click, conversion, open, custom")
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 && fs.NArg() != 2 {
		fs.Usage()
		return errors.New("give a content id, and a destination URL for a click URL")
	}
	cid := fs.Arg(0)
	if err := checkID(cid); err != nil {
		return err
	}
	b, err := parseBase(*base)
	if err != nil {
		return err
	}
	kid, b64, ok := strings.Cut(key.Value(), ":")
	if !ok || kid == "" {
		return errors.New("-key: use KEY_ID:BASE64_KEY, as in -edge.click.keys")
	}
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf("-key: the key is not standard base64: %w", err)
	}
	if len(k) < 16 {
		return fmt.Errorf("-key: the key has %d bytes; the edge wants at least 16", len(k))
	}
	if *ttl < 0 {
		return fmt.Errorf("-ttl=%s: use a positive duration, or 0 for no expiry", *ttl)
	}
	var exp int64
	if *ttl > 0 {
		exp = time.Now().Add(*ttl).Unix()
	}
	if fs.NArg() == 1 {
		q := url.Values{"cid": {cid}, "kid": {kid}}
		if *kind != "" {
			if !validKind(*kind) {
				return fmt.Errorf("-kind=%q: use view, impression, click, conversion, open or custom", *kind)
			}
			q.Set("k", *kind)
		}
		if exp != 0 {
			q.Set("exp", strconv.FormatInt(exp, 10))
		}
		signed := q.Encode()
		fmt.Fprintln(stdout, b+"/p.gif?"+signed+"&sig="+edge.SignPixel(k, signed))
		return nil
	}
	if *kind != "" {
		return errors.New("-kind is for signed pixels; a click URL always records a click")
	}
	dest := fs.Arg(1)
	if u, err := url.Parse(dest); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("destination %q: use an absolute http(s) URL", dest)
	}
	q := url.Values{"cid": {cid}, "u": {dest}, "kid": {kid}, "sig": {edge.SignClick(k, cid, dest, exp)}}
	if exp != 0 {
		q.Set("exp", strconv.FormatInt(exp, 10))
	}
	fmt.Fprintln(stdout, b+"/c?"+q.Encode())
	return nil
}

// parseBase checks the -base flag: an absolute http(s) URL without query
// or fragment. It returns it rebuilt from the parse (so quotes and angle
// brackets come out percent-encoded) without a trailing slash.
func parseBase(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("-base=%q: use the edge's public base URL, e.g. https://px.example.com", base)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// checkID refuses content ids the edge would record as invalid (bad_cid).
func checkID(id string) error {
	ok := id != "" && len(id) <= 128
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("content id %q: use 1-128 characters of A-Z a-z 0-9 . _ : - (the edge records anything else as invalid)", id)
	}
	return nil
}

func validKind(k string) bool {
	switch k {
	case "view", "impression", "click", "conversion", "open", "custom":
		return true
	}
	return false
}

// cmdSnippet prints the tracking snippets of a content id.
func cmdSnippet(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("snippet", "CONTENT_ID", "pixelpipe snippet -base=https://px.example.com acme:article-7\n  pixelpipe snippet -kind=open -uid='{{recipient_hash}}' acme:newsletter-42")
	base := fs.String("base", "http://127.0.0.1:8080", "public base URL of the edge")
	kind := fs.String("kind", "", "event kind parameter (k): view (default), impression, click, conversion, open, custom")
	uid := fs.String("uid", "", "explicit visitor id to put in the URL, e.g. your mail tool's hashed-recipient merge tag (put in as is, not URL-encoded)")
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("give one content id")
	}
	cid := fs.Arg(0)
	if err := checkID(cid); err != nil {
		return err
	}
	b, err := parseBase(*base)
	if err != nil {
		return err
	}
	q := url.Values{"cid": {cid}}
	if *kind != "" {
		if !validKind(*kind) {
			return fmt.Errorf("-kind=%q: use view, impression, click, conversion, open or custom", *kind)
		}
		q.Set("k", *kind)
	}
	raw := b + "/p.gif?" + q.Encode()
	if *uid != "" {
		raw += "&uid=" + *uid // merge tags stay unescaped for the mail tool
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	static := raw + "&cb=" + hex.EncodeToString(nonce[:])
	esc := html.EscapeString
	js := jsString(raw)
	fmt.Fprintf(stdout, `<!-- page: the page's URL and where its visitor came from, a fresh cache-buster on every load -->
<script>(function(){var i=new Image(1,1);i.referrerPolicy="no-referrer-when-downgrade";i.src=%s+"&url="+encodeURIComponent(location.href.split("#")[0])+"&ref="+encodeURIComponent(document.referrer)+"&cb="+Date.now().toString(36)+Math.random().toString(36).slice(2);})();</script>
<noscript><img src="%s" width="1" height="1" alt="" referrerpolicy="no-referrer-when-downgrade" style="position:absolute;border:0"></noscript>

<!-- single-page app: a view at load and at every history change (pushState, replaceState to a new URL, back and forward); a later view's referrer is the view before it -->
<script>(function(){var last="";function send(ref){var u=location.href.split("#")[0];if(u===last)return;last=u;var i=new Image(1,1);i.referrerPolicy="no-referrer-when-downgrade";i.src=%s+"&url="+encodeURIComponent(u)+"&ref="+encodeURIComponent(ref)+"&cb="+Date.now().toString(36)+Math.random().toString(36).slice(2);}send(document.referrer);["pushState","replaceState"].forEach(function(m){var o=history[m];history[m]=function(){var prev=last,r=o.apply(this,arguments);send(prev);return r;};});addEventListener("popstate",function(){send(last);});})();</script>

<!-- plain <img> (server-rendered pages: the server should render a new cb per response; the page is taken from the Referer header, no referrer is known) -->
<img src="%s" width="1" height="1" alt="" loading="eager" referrerpolicy="no-referrer-when-downgrade" style="position:absolute;border:0">

<!-- email: a static cache-buster per send; no page and no referrer (mail clients send none); mail proxies fetch once, the visitor id counts each recipient -->
<img src="%s" width="1" height="1" alt="" border="0" style="display:block;height:1px;width:1px;border:0">

<!-- AMP: SOURCE_URL is the page's URL, DOCUMENT_REFERRER its referrer, RANDOM a new cache-buster on every render -->
<amp-pixel src="%s" layout="nodisplay"></amp-pixel>
`, js, esc(static), js, esc(static), esc(static), esc(raw+"&url=SOURCE_URL&ref=DOCUMENT_REFERRER&cb=RANDOM"))
	return nil
}

// jsString quotes s as a JavaScript string literal that is safe inside an
// HTML <script> element: quotes, backslashes, angle brackets (so no
// "</script>" or "<!--"), control characters and the JS line separators
// are escaped; the rest, & and = of a URL included, stays readable.
func jsString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\' || r == '\'' || r == '<' || r == '>' || r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
