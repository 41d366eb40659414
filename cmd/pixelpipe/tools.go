package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/internal/flagenv"
	"github.com/pixelpipe/pixelpipe/query"
)

// cmdStats prints the counts of a content id or campaign from the query API.
func cmdStats(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("stats", "pixelpipe stats -url=http://127.0.0.1:8081 -token=$TOKEN -from=2026-11-01 -to=2026-12-01 acme:article-7\n  pixelpipe stats -campaign spring-sale")
	apiURL := fs.String("url", "http://127.0.0.1:8081", "query API base URL")
	token := flagenv.NewSecret("")
	fs.Var(token, "token", "bearer token of the query API (PIXEL_TOKEN)")
	from := fs.String("from", "", "start, inclusive: YYYY-MM-DD or RFC 3339; default the start of today (UTC)")
	to := fs.String("to", "", "end, exclusive; default one day after -from")
	campaign := fs.Bool("campaign", false, "the argument is a campaign, not a content id")
	asJSON := fs.Bool("json", false, "print the API's JSON answer as is")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("give one content id (or campaign with -campaign)")
	}
	id := fs.Arg(0)
	path := "/v1/stats/" + url.PathEscape(id)
	if *campaign {
		path = "/v1/campaigns/" + url.PathEscape(id) + "/stats"
	}
	q := url.Values{}
	if *from != "" {
		q.Set("from", *from)
	}
	if *to != "" {
		q.Set("to", *to)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, "GET", strings.TrimRight(*apiURL, "/")+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	if t := token.Value(); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask the query API at %s: %w", *apiURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		return fmt.Errorf("query API answered %d: %s", resp.StatusCode, e.Error)
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var st query.StatsResponse
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("decode the answer: %w", err)
	}
	printStats(stdout, id, &st)
	return nil
}

func printStats(w io.Writer, id string, st *query.StatsResponse) {
	fmt.Fprintf(w, "%s  [%s, %s)\n", id, st.From, st.To)
	f := st.Freshness
	if f.CompleteUntil != nil {
		fmt.Fprintf(w, "complete until %s (lag %.1f s, %s)\n\n", *f.CompleteUntil, *f.LagSeconds, f.Status)
	} else {
		fmt.Fprintf(w, "freshness: unknown (no watermark)\n\n")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tkind\thuman\tuniques\t± bound\tbot\tmachine\t")
	row := func(name string, h, b, m query.KindStats) {
		fmt.Fprintf(tw, "\t%s\t%d\t%d\t%d\t%d\t%d\t\n", name, h.Total, h.Uniques, h.UniquesBound, b.Total, m.Total)
	}
	H, B, M := st.Human, st.Bot, st.Machine
	row("impressions", H.Impressions, B.Impressions, M.Impressions)
	row("views", H.Views, B.Views, M.Views)
	row("clicks", H.Clicks, B.Clicks, M.Clicks)
	row("conversions", H.Conversions, B.Conversions, M.Conversions)
	row("opens", H.Opens, B.Opens, M.Opens)
	row("custom", H.Custom, B.Custom, M.Custom)
	_ = tw.Flush()
	fmt.Fprintf(w, "\nCTR %.2f%%   conversion rate %.2f%%   orders %d", 100*H.CTR, 100*H.ConversionRate, H.Orders)
	for cur, v := range H.Revenue {
		fmt.Fprintf(w, "   %s %.2f", cur, v)
	}
	fmt.Fprintln(w)
}

// cmdSign prints a signed click URL (edge.SignClick's format).
func cmdSign(_ context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("sign", "pixelpipe sign -base=https://px.example.com -key=k1:$(head -c32 /dev/urandom | base64) -ttl=720h acme:ad-7 https://shop.example.com/sale")
	base := fs.String("base", "http://127.0.0.1:8080", "public base URL of the edge")
	key := flagenv.NewSecret("")
	fs.Var(key, "key", "signing key KEY_ID:BASE64_KEY, one of the edge's -edge.click.keys (PIXEL_KEY)")
	ttl := fs.Duration("ttl", 0, "how long the link stays valid; 0 = no expiry")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return errors.New("give a content id and a destination URL")
	}
	cid, dest := fs.Arg(0), fs.Arg(1)
	kid, b64, ok := strings.Cut(key.Value(), ":")
	if !ok || kid == "" {
		return errors.New("-key: use KEY_ID:BASE64_KEY, as in -edge.click.keys")
	}
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf("-key: the key is not standard base64: %w", err)
	}
	if u, err := url.Parse(dest); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("destination %q: use an absolute http(s) URL", dest)
	}
	var exp int64
	if *ttl > 0 {
		exp = time.Now().Add(*ttl).Unix()
	}
	q := url.Values{"cid": {cid}, "u": {dest}, "kid": {kid}, "sig": {edge.SignClick(k, cid, dest, exp)}}
	if exp != 0 {
		q.Set("exp", strconv.FormatInt(exp, 10))
	}
	fmt.Fprintln(stdout, strings.TrimRight(*base, "/")+"/c?"+q.Encode())
	return nil
}

// cmdSnippet prints the tracking snippets of a content id.
func cmdSnippet(_ context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("snippet", "pixelpipe snippet -base=https://px.example.com acme:article-7\n  pixelpipe snippet -kind=open -uid='{{recipient_hash}}' acme:newsletter-42")
	base := fs.String("base", "http://127.0.0.1:8080", "public base URL of the edge")
	kind := fs.String("kind", "", "event kind parameter (k): view (default), impression, open, ...")
	uid := fs.String("uid", "", "explicit visitor id to put in the URL, e.g. your mail tool's hashed-recipient merge tag")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("give one content id")
	}
	cid := fs.Arg(0)
	q := url.Values{"cid": {cid}}
	if *kind != "" {
		q.Set("k", *kind)
	}
	raw := strings.TrimRight(*base, "/") + "/p.gif?" + q.Encode()
	if *uid != "" {
		raw += "&uid=" + *uid // merge tags stay unescaped for the mail tool
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	static := raw + "&cb=" + hex.EncodeToString(nonce[:])
	esc := html.EscapeString
	fmt.Fprintf(stdout, `<!-- page: a fresh cache-buster on every load -->
<script>(function(){var i=new Image(1,1);i.referrerPolicy="no-referrer-when-downgrade";i.src=%q+"&cb="+Date.now().toString(36)+Math.random().toString(36).slice(2)+"&ref="+encodeURIComponent(document.referrer);})();</script>
<noscript><img src="%s" width="1" height="1" alt="" style="position:absolute;border:0"></noscript>

<!-- plain <img> (server-rendered pages: the server should render a new cb per response) -->
<img src="%s" width="1" height="1" alt="" loading="eager" referrerpolicy="no-referrer-when-downgrade" style="position:absolute;border:0">

<!-- email: a static cache-buster per send; mail proxies fetch once, the visitor id counts each recipient -->
<img src="%s" width="1" height="1" alt="" border="0" style="display:block;height:1px;width:1px;border:0">

<!-- AMP: RANDOM is replaced on every render -->
<amp-pixel src="%s&cb=RANDOM" layout="nodisplay"></amp-pixel>
`, raw, esc(static), esc(static), esc(static), esc(raw))
	return nil
}
