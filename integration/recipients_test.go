//go:build integration

package integration

import (
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/processor"
	"github.com/pixelpipe/pixelpipe/query"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// User agents of a campaign's recipients: people reading in mail clients,
// the image proxies of Gmail and Yahoo and Apple's Mail Privacy
// Protection fetching on their behalf, and a mail gateway's link scanner.
const (
	appleMailUA   = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
	iPhoneMailUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
	thunderbirdUA = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0"
	gmailProxyUA  = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
	yahooProxyUA  = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
	appleMPPUA    = "Mozilla/5.0"
	scannerUA     = "Mozilla/5.0 (compatible; Mimecast Link Scanner)"
)

// wantRecipient is what a test recipient did.
type wantRecipient struct {
	opens, machineOpens, machineClicks uint64
	links                              map[string]uint64
	orders                             []string
}

// recipientPlan is the campaign's traffic per recipient i of n: a person's
// opens (0-2, from three mail clients), proxies' opens (Gmail, Yahoo,
// Apple), clicks on three links (one twice), a scanner's clicks, and
// conversions (some sent twice, as a reloaded thank-you page does).
func recipientPlan(i int) wantRecipient {
	w := wantRecipient{opens: uint64(i % 3), links: map[string]uint64{}}
	for _, m := range []int{5, 7, 11} {
		if i%m == 0 {
			w.machineOpens++
		}
	}
	if i%4 == 1 {
		w.links[linkSale]++
	}
	if i%6 == 2 {
		w.links[linkNew] += 2
	}
	if i%9 == 3 {
		w.links[linkBlog]++
	}
	if i%13 == 0 {
		w.machineClicks++
	}
	if i%8 == 1 {
		w.orders = append(w.orders, fmt.Sprintf("ORD-%d", i))
	}
	return w
}

const emailUID = "ann.smith@example.com"

const (
	linkSale = "https://shop.example/sale"
	linkNew  = "https://shop.example/new"
	linkBlog = "https://blog.example/winter-tips"
)

// sendRecipient sends recipient i's traffic of the campaign through the
// edge: its opens, signed clicks and conversions.
func sendRecipient(t *testing.T, s *stack, key []byte, i int) {
	t.Helper()
	uid := fmt.Sprintf("sub-%03d", i)
	const mail, shop = "acme:newsletter-12", "acme:shop"
	open := s.edgeURL + "/p.gif?cid=" + mail + "&k=open&cmp=spring&uid=" + uid
	w := recipientPlan(i)
	for j := range w.opens {
		if r := getAs(t, open, []string{appleMailUA, iPhoneMailUA, thunderbirdUA}[(i+int(j))%3]); r.StatusCode != 200 {
			t.Fatalf("open: %d", r.StatusCode)
		}
	}
	for m, ua := range map[int]string{5: gmailProxyUA, 7: yahooProxyUA, 11: appleMPPUA} {
		if i%m == 0 {
			bareGet(t, open, ua)
		}
	}
	click := func(dest string) string {
		return s.edgeURL + "/c?cid=" + mail + "&cmp=spring&uid=" + uid + "&kid=k1&u=" + url.QueryEscape(dest) + "&sig=" + edge.SignClick(key, mail, dest, 0)
	}
	for dest, n := range w.links {
		for range n {
			if r := browserGet(t, click(dest)); r.StatusCode != http.StatusFound {
				t.Fatalf("click %s: %d", dest, r.StatusCode)
			}
		}
	}
	if w.machineClicks > 0 {
		bareGet(t, click(linkSale), scannerUA)
	}
	for _, o := range w.orders {
		conv := s.edgeURL + "/p.gif?cid=" + shop + "&k=conversion&cmp=spring&uid=" + uid + "&oid=" + o + "&val=19.99&cur=EUR"
		for range 1 + i%16/9 { // a reloaded thank-you page sends it twice
			if r := browserGet(t, conv); r.StatusCode != 200 {
				t.Fatalf("conversion: %d", r.StatusCode)
			}
		}
	}
}

// bareGet requests u with only a user agent, as proxies and scanners do.
func bareGet(t *testing.T, u, ua string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("User-Agent", ua)
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// listRecipients reads every page of the campaign's recipients (filter
// f) from the API, checking that keys come in order and once.
func listRecipients(t *testing.T, s *stack, f string) map[string]query.RecipientJSON {
	t.Helper()
	return listCampaign(t, s, "spring", f, func(r query.RecipientJSON) string { return r.UID })
}

// listCampaign reads every page of a campaign's recipients (filter f),
// checking that keys come in order and once, by name(recipient).
func listCampaign(t *testing.T, s *stack, campaign, f string, name func(query.RecipientJSON) string) map[string]query.RecipientJSON {
	t.Helper()
	out := map[string]query.RecipientJSON{}
	cursor, last := "", ""
	for pages := 0; ; pages++ {
		var page query.RecipientsResponse
		if err := s.getJSON("/v1/campaigns/"+campaign+"/recipients?limit=40&filter="+f+"&cursor="+url.QueryEscape(cursor), &page); err != nil {
			t.Fatalf("recipients page %d: %v", pages, err)
		}
		for _, r := range page.Recipients {
			if r.Key <= last {
				t.Fatalf("recipient %s after %s: not in key order", r.Key, last)
			}
			last = r.Key
			out[name(r)] = r
		}
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

// TestRecipientsThroughPipeline sends an e-mail campaign of a few hundred
// recipients through the real pipeline (opens from mail clients and mail
// proxies, signed clicks on three links, a link scanner, conversions, some
// sent twice), kills the aggregator process with SIGKILL in the middle, and
// reads back exactly who did what: every recipient's opens, machine opens,
// clicks per link and orders, each filter's recipients, the links' clicks
// and unique clickers. Then it erases one recipient and finds nothing of
// theirs in the API or anywhere in Redis.
func TestRecipientsThroughPipeline(t *testing.T) {
	const n = 240
	bin := buildBinary(t)
	s := newStack(t)
	key := []byte("recipients-click-key-0123")
	s.startEdgeWith(func(c *edge.Config) {
		c.ClickKeys = map[string][]byte{"k1": key}
		c.RateFlag = 0 // every recipient here is 127.0.0.1
	})
	s.startProcessorWith("rcpt-proc", func(c *processor.Config) { c.RecipientIDs = "acme/spring" })
	cfg := query.DefaultConfig()
	cfg.ListenAddr, cfg.Token, cfg.VisitorSecret, cfg.ErasureGrace = "127.0.0.1:0", "it-token", secret, time.Second
	store := hllstore.New(s.rdb, hllstore.Config{Prefix: s.prefix})
	q, err := query.New(cfg, s.logger, nil, counts.NewReader(store), audit.NewReader(s.rdb, s.prefix))
	if err != nil {
		t.Fatal(err)
	}
	q.SetEraser(store)
	s.queryURL = "http://" + s.serve("query", q)

	started := time.Now().Add(-time.Second) // the edge's clock may read a little behind
	env := aggregatorEnv(s, pipetest.RedisAddr(), time.Second)
	agg := start(t, bin, "aggregator-1", "", env, "aggregator")
	for i := range n / 2 {
		sendRecipient(t, s, key, i)
	}
	time.Sleep(1500 * time.Millisecond) // some of it written, some not
	if err := agg.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-agg.done
	for i := n / 2; i < n; i++ {
		sendRecipient(t, s, key, i)
	}
	// A sender whose uids are e-mail addresses: the edge records them as
	// pseudonyms, and the API finds one by the address all the same.
	if r := getAs(t, s.edgeURL+"/p.gif?cid=acme:newsletter-12&k=open&cmp=spring&uid="+url.QueryEscape(emailUID), appleMailUA); r.StatusCode != 200 {
		t.Fatalf("open: %d", r.StatusCode)
	}
	agg = start(t, bin, "aggregator-2", "", env, "aggregator")
	defer agg.stop(t, 30*time.Second)

	want := map[string]wantRecipient{}
	for i := range n {
		w := recipientPlan(i)
		if w.opens+w.machineOpens+w.machineClicks > 0 || len(w.links) > 0 || len(w.orders) > 0 {
			want[fmt.Sprintf("sub-%03d", i)] = w
		}
	}
	var got map[string]query.RecipientJSON
	pipetest.Eventually(t, 2*time.Minute, func() string {
		got = listRecipients(t, s, "all")
		for uid, w := range want {
			if msg := recipientDiff(got[uid], w); msg != "" {
				return uid + ": " + msg
			}
		}
		if len(got) != len(want)+1 {
			return fmt.Sprintf("%d recipients listed, want %d", len(got), len(want)+1)
		}
		return ""
	})
	var byMail query.RecipientResponse
	if err := s.getJSON("/v1/campaigns/spring/recipients/"+url.PathEscape(emailUID), &byMail); err != nil {
		t.Fatalf("recipient by e-mail address: %v", err)
	}
	if r := byMail.Recipient; r.Opens != 1 || !strings.HasPrefix(r.UID, "h:") || got[r.UID].Key != r.Key {
		t.Fatalf("recipient by e-mail address: %+v", r)
	}
	delete(got, byMail.Recipient.UID)
	for uid, r := range got {
		if r.Opens > 0 && (r.FirstOpen == nil || r.LastOpen == nil || rfcTime(t, *r.FirstOpen).After(rfcTime(t, *r.LastOpen)) ||
			rfcTime(t, *r.FirstOpen).Before(started) || rfcTime(t, *r.LastOpen).After(time.Now())) {
			t.Fatalf("%s: first open %+v, last %+v", uid, r.FirstOpen, r.LastOpen)
		}
		if r.MachineOpens > 0 && r.FirstMachineOpen == nil {
			t.Fatalf("%s: machine opens without a first", uid)
		}
	}

	// Each filter lists exactly its recipients.
	for f, match := range map[string]func(wantRecipient) bool{
		"opened":       func(w wantRecipient) bool { return w.opens > 0 },
		"clicked":      func(w wantRecipient) bool { return len(w.links) > 0 },
		"converted":    func(w wantRecipient) bool { return len(w.orders) > 0 },
		"machine-only": func(w wantRecipient) bool { return human(w) == 0 && w.machineOpens+w.machineClicks > 0 },
		"none":         func(w wantRecipient) bool { return human(w) == 0 },
	} {
		var wantUIDs []string
		for uid, w := range want {
			if match(w) {
				wantUIDs = append(wantUIDs, uid)
			}
		}
		listed := listRecipients(t, s, f)
		if _, ok := listed[byMail.Recipient.UID]; ok != (f == "opened") {
			t.Fatalf("filter %s: the e-mail address's recipient listed %v", f, ok)
		}
		delete(listed, byMail.Recipient.UID)
		gotUIDs := slices.Collect(maps.Keys(listed))
		slices.Sort(wantUIDs)
		slices.Sort(gotUIDs)
		if !slices.Equal(gotUIDs, wantUIDs) || len(wantUIDs) == 0 {
			t.Fatalf("filter %s: %d recipients %v, want %d %v", f, len(gotUIDs), gotUIDs, len(wantUIDs), wantUIDs)
		}
	}

	// Links: a person's clicks and distinct clickers per destination.
	var links query.LinksResponse
	if err := s.getJSON("/v1/campaigns/spring/links", &links); err != nil {
		t.Fatal(err)
	}
	wantLinks := map[string]query.LinkJSON{}
	for i := range n {
		w := recipientPlan(i)
		for d, c := range w.links {
			l := wantLinks[d]
			l.Destination, l.Clicks, l.UniqueClickers = d, l.Clicks+c, l.UniqueClickers+1
			wantLinks[d] = l
		}
		if w.machineClicks > 0 {
			l := wantLinks[linkSale]
			l.MachineClicks++
			wantLinks[linkSale] = l
		}
	}
	if len(links.Links) != len(wantLinks) {
		t.Fatalf("links %+v, want %+v", links.Links, wantLinks)
	}
	for _, l := range links.Links {
		if l != wantLinks[l.Destination] {
			t.Fatalf("link %+v, want %+v", l, wantLinks[l.Destination])
		}
	}

	// The command line says the same: every recipient (all pages, as
	// CSV), one recipient, the links.
	cli := []string{"-url=" + s.queryURL, "-token=it-token", "-campaign=spring"}
	rows, err := csv.NewReader(strings.NewReader(mustBin(t, bin, append([]string{"recipients", "-all", "-csv", "-limit=70"}, cli...)...))).ReadAll()
	if err != nil || len(rows) != len(got)+2 || !slices.Equal(rows[0][:4], []string{"key", "uid", "opens", "machine_opens"}) {
		t.Fatalf("recipients -all -csv: %d rows (want a header and %d), %v", len(rows), len(got)+1, err)
	}
	for _, row := range rows[1:] {
		if row[1] == byMail.Recipient.UID {
			continue
		}
		w, ok := want[row[1]]
		if !ok || row[2] != fmt.Sprint(w.opens) || row[3] != fmt.Sprint(w.machineOpens) || row[9] != fmt.Sprint(w.machineClicks) || row[11] != fmt.Sprint(len(w.orders)) || row[0] != got[row[1]].Key {
			t.Fatalf("recipients -csv row %v, want %+v", row, w)
		}
	}
	out := mustBin(t, bin, append([]string{"recipients", "-uid=sub-002", "-tenant=acme"}, cli...)...)
	w2 := recipientPlan(2)
	for _, line := range []string{fmt.Sprintf(`opens\s+%d\s`, w2.opens), fmt.Sprintf(`machine opens\s+%d\s`, w2.machineOpens), fmt.Sprintf(`conversions\s+%d\s`, len(w2.orders))} {
		if !regexp.MustCompile(`(?m)^` + line).MatchString(out) {
			t.Fatalf("recipients -uid=sub-002: no line %q in\n%s", line, out)
		}
	}
	out = mustBin(t, bin, append([]string{"links"}, cli...)...)
	for _, l := range links.Links {
		if !regexpLink(out, l) {
			t.Fatalf("links: no line for %+v in\n%s", l, out)
		}
	}

	// One recipient by uid, then erased from the command line.
	var one query.RecipientResponse
	if err := s.getJSON("/v1/campaigns/spring/recipients/sub-001", &one); err != nil {
		t.Fatal(err)
	}
	if one.Tenant != "acme" || recipientDiff(one.Recipient, want["sub-001"]) != "" {
		t.Fatalf("sub-001: %+v", one)
	}
	out = mustBin(t, bin, "erase-recipient", "-url="+s.queryURL, "-token=it-token", "-uid=sub-001", "-tenant=acme")
	if !strings.Contains(out, "erased recipient sub-001 of tenant acme") {
		t.Fatalf("erase-recipient: %s", out)
	}
	if err := s.getJSON("/v1/campaigns/spring/recipients/sub-001", &one); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("erased recipient still answered: %v", err)
	}
	if _, ok := listRecipients(t, s, "all")["sub-001"]; ok {
		t.Fatal("erased recipient still listed")
	}
	checkErased(t, s, "acme", "sub-001")
	if len(listRecipients(t, s, "all")) != len(want) {
		t.Fatal("the erasure removed others too")
	}
}

func rfcTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// regexpLink reports whether out has the line of link l: its three counts
// and its destination, however the columns are padded.
func regexpLink(out string, l query.LinkJSON) bool {
	re := regexp.MustCompile(fmt.Sprintf(`(?m)^\s*%d\s+%d\s+%d\s+%s$`, l.Clicks, l.UniqueClickers, l.MachineClicks, regexp.QuoteMeta(l.Destination)))
	return re.MatchString(out)
}

// human counts a person's activity of a plan.
func human(w wantRecipient) int { return int(w.opens) + len(w.links) + len(w.orders) }

// recipientDiff says how r differs from w ("" when it does not).
func recipientDiff(r query.RecipientJSON, w wantRecipient) string {
	links := map[string]uint64{}
	var clicks uint64
	for _, l := range r.Links {
		links[l.Destination] = l.Clicks
		clicks += l.Clicks
	}
	var orders []string
	for _, o := range r.Orders {
		orders = append(orders, o.OrderID)
		if o.Value.Units() != "19.99" || o.Currency != "EUR" {
			return fmt.Sprintf("order %+v", o)
		}
	}
	if r.Opens != w.opens || r.MachineOpens != w.machineOpens || r.MachineClicks != w.machineClicks || !maps.Equal(links, w.links) ||
		r.Clicks != clicks || !slices.Equal(orders, w.orders) || r.Conversions != uint64(len(w.orders)) {
		return fmt.Sprintf("got opens %d machine %d clicks %v machine clicks %d orders %v; want %d %d %v %d %v",
			r.Opens, r.MachineOpens, links, r.MachineClicks, orders, w.opens, w.machineOpens, w.links, w.machineClicks, w.orders)
	}
	return ""
}

// checkErased scans every key of the stack's prefix: no hash holds the
// recipient's key in a field name, and no value holds the uid.
func checkErased(t *testing.T, s *stack, tenant, uid string) {
	t.Helper()
	ctx := t.Context()
	rk := string(visitor.NewKeyer(secret).RecipientKey(nil, tenant, uid))
	iter := s.rdb.Scan(ctx, 0, s.prefix+"*", 500).Iterator()
	checked := 0
	for iter.Next(ctx) {
		k := iter.Val()
		if s.rdb.Type(ctx, k).Val() != "hash" {
			continue
		}
		for f, v := range s.rdb.HGetAll(ctx, k).Val() {
			if strings.Contains(f, rk) || strings.Contains(v, uid) || strings.Contains(v, rk) {
				if k == s.prefix+":erased" {
					continue // the erasure record: the key alone, no activity
				}
				t.Fatalf("erased recipient found in %s field %q", k, f)
			}
		}
		checked++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no hash scanned")
	}
}

// faultCampaign is the campaign of the fault tests' load: every hit names
// its visitor's uid, so the aggregators keep each one's page views.
const faultCampaign = "fault"

// checkRecipientViews waits until the API's recipients of campaign have
// exactly the page views the processors wrote to the events topic for
// them: each event once (by its source position), a person's only.
func checkRecipientViews(t *testing.T, s *stack, campaign string, timeout time.Duration) {
	t.Helper()
	pipetest.Eventually(t, timeout, func() string {
		want := map[string]uint64{}
		seen := map[[2]int64]bool{}
		for _, v := range pipetest.ReadTopic(t, s.kc.Brokers[0], s.topics.Events) {
			var ev pixelpb.Event
			if err := proto.Unmarshal(v, &ev); err != nil {
				t.Fatal(err)
			}
			pos := [2]int64{int64(ev.GetSource().GetPartition()), ev.GetSource().GetOffset()}
			if ev.GetKind() == pixelpb.Kind_KIND_SESSION || seen[pos] {
				continue
			}
			seen[pos] = true
			if ev.GetCampaignId() != campaign || ev.GetKind() != pixelpb.Kind_KIND_VIEW || ev.GetBot() || ev.GetMachineOpen() || len(ev.GetRecipientKey()) == 0 {
				continue
			}
			want[hex.EncodeToString(ev.GetRecipientKey())]++
		}
		if len(want) == 0 {
			return "no person's view of a recipient in the events topic yet"
		}
		got := listCampaign(t, s, campaign, "all", func(r query.RecipientJSON) string { return r.Key })
		for k, n := range want {
			if got[k].Views != n {
				return fmt.Sprintf("recipient %s: %d views in the API, %d in the events topic", k, got[k].Views, n)
			}
		}
		for k, r := range got {
			if want[k] == 0 && r.Views > 0 {
				return fmt.Sprintf("recipient %s: %d views in the API, none in the events topic", k, r.Views)
			}
		}
		return ""
	})
}
