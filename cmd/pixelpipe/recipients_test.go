//go:build integration

package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/hllstore/hllstoretest"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/query"
)

const (
	shopLink = "https://shop.example/sale"
	blogLink = "https://blog.example/post"
)

// recipientAPI seeds campaign "spring" of tenant acme on the two days
// before today in a real Redis and serves the query API over it. It
// returns the API's URL, the recipients' keys by uid, and the two days.
//
//	ann  opened on both days (and a proxy before her), clicked the shop link twice and the blog link once, ordered (25 EUR), 2 views
//	bob              only machines: an open on each day, a click (uid not kept)
//	cat              opened, ordered (10 USD)
//	dan              opened
//	eve              a view only
func recipientAPI(t *testing.T) (string, map[string]hllstore.RecipientKey, time.Time, time.Time) {
	t.Helper()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	const secret = "cli-recipients-secret"
	keyer := visitor.NewKeyer(secret)
	keys := map[string]hllstore.RecipientKey{}
	for _, uid := range []string{"ann", "bob", "cat", "dan", "eve"} {
		keys[uid] = hllstore.RecipientKey(keyer.RecipientKey(nil, "acme", uid))
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	day1, day2 := today.Add(-48*time.Hour), today.Add(-24*time.Hour)
	ms := func(day time.Time, hour int) int64 { return day.Add(time.Duration(hour) * time.Hour).UnixMilli() }
	spring := hllstoretest.Campaign{Name: "spring"}
	rec := func(cid string, day time.Time, uid string) *hllstore.Activity {
		return spring.Recipient(cid, day.UnixMilli(), keys[uid])
	}
	a := rec("acme:mail-1", day1, "ann")
	a.UID = "ann"
	a.AddOpen(ms(day1, 9), true)
	a.AddOpen(ms(day1, 10), false)
	a.AddClick(shopLink, false)
	a = rec("acme:mail-1", day2, "ann")
	a.AddOpen(ms(day2, 8), false)
	a.AddClick(shopLink, false)
	a.AddClick(blogLink, false)
	a = rec("acme:landing", day2, "ann")
	a.AddConversion("o-1", 25_000_000, "EUR")
	a.Views += 2
	a = rec("acme:mail-1", day1, "bob")
	a.AddOpen(ms(day1, 7), true)
	a.AddClick(shopLink, true)
	rec("acme:mail-1", day2, "bob").AddOpen(ms(day2, 7), true)
	a = rec("acme:mail-1", day2, "cat")
	a.UID = "cat"
	a.AddOpen(ms(day2, 12), false)
	a = rec("acme:landing", day2, "cat")
	a.AddConversion("o-2", 10_000_000, "USD")
	a = rec("acme:mail-1", day1, "dan")
	a.UID = "dan"
	a.AddOpen(ms(day1, 11), false)
	a = rec("acme:landing", day1, "eve")
	a.UID = "eve"
	a.Views++
	ctx, cancel := context.WithCancel(context.Background())
	if err := spring.Put(ctx, store); err != nil {
		t.Fatalf("seed: %v", err)
	}

	cfg := query.DefaultConfig()
	cfg.Tokens = map[string]string{"acme-tok": "acme", "op-tok": "*"}
	cfg.VisitorSecret, cfg.ErasureGrace = secret, 10*time.Millisecond
	srv, err := query.New(cfg, nil, nil, counts.NewReader(store), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetEraser(store)
	ln := pipetest.Listen(t)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("query API: %v", err)
		}
	})
	return "http://" + ln.Addr().String(), keys, day1, day2
}

// tableRow matches a table row of the cells given, in order, each
// separated by spaces from the next.
func tableRow(cells ...string) *regexp.Regexp {
	for i, c := range cells {
		cells[i] = regexp.QuoteMeta(c)
	}
	return regexp.MustCompile(`(?m)^ *` + strings.Join(cells, " +") + ` *$`)
}

// firstColumn returns the first cell of each row of the table under the
// line that starts with heading, up to a blank line.
func firstColumn(out, heading string) []string {
	var names []string
	in := false
	for line := range strings.SplitSeq(out, "\n") {
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), heading):
			in = true
		case in && strings.TrimSpace(line) == "":
			return names
		case in:
			names = append(names, strings.Fields(line)[0])
		}
	}
	return names
}

// The recipient commands against a real query API over real Redis:
// the listing's numbers and filters, paging by hand, with -all, as CSV and
// as JSON, one recipient by uid and by key, the links, and an erasure
// after which the recipient is not found.
func TestRecipientCommands(t *testing.T) {
	t.Parallel()
	api, keys, day1, day2 := recipientAPI(t)
	today := day2.Add(24 * time.Hour)
	at := func(day time.Time, hour int) string {
		return day.Add(time.Duration(hour) * time.Hour).Format(time.RFC3339)
	}
	// name is how the listing shows a recipient: its uid where it was kept.
	name := map[string]string{"ann": "ann", "bob": keys["bob"].String(), "cat": "cat", "dan": "dan", "eve": "eve"}
	inKeyOrder := func(uids ...string) []string {
		slices.SortFunc(uids, func(a, b string) int { return strings.Compare(keys[a].String(), keys[b].String()) })
		out := make([]string, len(uids))
		for i, u := range uids {
			out[i] = name[u]
		}
		return out
	}
	everyone := inKeyOrder("ann", "bob", "cat", "dan", "eve")
	rng := []string{"-url=" + api, "-token=acme-tok", "-from=" + day1.Format("2006-01-02"), "-to=" + today.Format("2006-01-02")}
	cli := func(args ...string) (string, string) {
		t.Helper()
		code, out, errOut := runCLI(t, append(append([]string{args[0]}, rng...), args[1:]...)...)
		if code != 0 {
			t.Fatalf("pixelpipe %q: exit %d: %s", args, code, errOut)
		}
		return out, errOut
	}

	out, _ := cli("recipients", "-campaign=spring")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^spring  \[` + day1.Format("2006-01-02") + `, ` + today.Format("2006-01-02") + `\)  filter all, 5 recipients$`),
		tableRow("recipient", "opens", "machine opens", "first open", "last open", "clicks", "machine clicks", "conversions", "revenue", "views", "links"),
		tableRow("ann", "2", "1", at(day1, 10), at(day2, 8), "3", "0", "1", "EUR 25.00", "2", blogLink+" (1), "+shopLink+" (2)"),
		tableRow(keys["bob"].String(), "0", "2", "-", "-", "0", "1", "0", "-", "0", "-"),
		tableRow("cat", "1", "0", at(day2, 12), at(day2, 12), "0", "0", "1", "USD 10.00", "0", "-"),
		tableRow("dan", "1", "0", at(day1, 11), at(day1, 11), "0", "0", "0", "-", "0", "-"),
		tableRow("eve", "0", "0", "-", "-", "0", "0", "0", "-", "1", "-"),
	} {
		if !want.MatchString(out) {
			t.Errorf("recipients: no line %s in\n%s", want, out)
		}
	}
	if got := firstColumn(out, "recipient"); !slices.Equal(got, everyone) || strings.Contains(out, "next cursor") {
		t.Errorf("recipients %q, want %q in key order and no next page:\n%s", got, everyone, out)
	}
	for filter, uids := range map[string][]string{
		"opened":       {"ann", "cat", "dan"},
		"clicked":      {"ann"},
		"converted":    {"ann", "cat"},
		"machine-only": {"bob"},
		"none":         {"bob", "eve"},
	} {
		out, _ := cli("recipients", "-campaign=spring", "-filter="+filter)
		if got := firstColumn(out, "recipient"); !slices.Equal(got, inKeyOrder(uids...)) || !strings.Contains(out, "filter "+filter+", ") {
			t.Errorf("-filter=%s: %q, want %q:\n%s", filter, got, inKeyOrder(uids...), out)
		}
	}

	// Pages of 2 by hand, following the printed cursor, then with -all.
	var paged []string
	cursorLine := regexp.MustCompile(`(?m)^next cursor: (\S+) \(pass -cursor=(\S+) for the next page`)
	for cursor, pages := "", 0; ; pages++ {
		out, _ := cli("recipients", "-campaign=spring", "-limit=2", "-cursor="+cursor)
		got := firstColumn(out, "recipient")
		if len(got) > 2 || pages > 10 {
			t.Fatalf("page %d of 2: %q", pages, got)
		}
		paged = append(paged, got...)
		m := cursorLine.FindStringSubmatch(out)
		if m == nil {
			break
		}
		cursor = m[1]
	}
	if !slices.Equal(paged, everyone) {
		t.Errorf("pages of 2: %q, want %q", paged, everyone)
	}
	out, _ = cli("recipients", "-campaign=spring", "-limit=2", "-all")
	if got := firstColumn(out, "recipient"); !slices.Equal(got, everyone) || strings.Contains(out, "next cursor") || !strings.Contains(out, "filter all, 5 recipients") {
		t.Errorf("-limit=2 -all: %q, want %q:\n%s", got, everyone, out)
	}
	out, errOut := cli("recipients", "-campaign=spring", "-limit=2", "-all", "-csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 6 || rows[0][0] != "key" || errOut != "" {
		t.Fatalf("-all -csv: %v %q\n%s", err, errOut, out)
	}
	var hexKeys, csvKeys []string
	for _, k := range keys {
		hexKeys = append(hexKeys, k.String())
	}
	slices.Sort(hexKeys)
	for _, r := range rows[1:] {
		csvKeys = append(csvKeys, r[0])
	}
	if !slices.Equal(csvKeys, hexKeys) {
		t.Errorf("-all -csv keys %q, want %q", csvKeys, hexKeys)
	}
	wantAnn := []string{keys["ann"].String(), "ann", "2", "1", at(day1, 10), at(day2, 8), at(day1, 9), at(day1, 9), "3", "0", blogLink + "=1 | " + shopLink + "=2", "1", "o-1=25 EUR", "2"}
	if !slices.ContainsFunc(rows, func(r []string) bool { return slices.Equal(r, wantAnn) }) {
		t.Errorf("-csv: no row %q in\n%s", wantAnn, out)
	}
	out, errOut = cli("recipients", "-campaign=spring", "-limit=2", "-csv")
	if rows, _ := csv.NewReader(strings.NewReader(out)).ReadAll(); len(rows) != 3 || !strings.HasPrefix(errOut, "next cursor: ") {
		t.Errorf("-limit=2 -csv: %d rows, stderr %q; want 3 and the next cursor", len(rows), errOut)
	}
	out, _ = cli("recipients", "-campaign=spring", "-limit=2", "-all", "-json")
	var listed []string
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, line := range lines {
		var rr query.RecipientsResponse
		if err := json.Unmarshal([]byte(line), &rr); err != nil || (rr.NextCursor == "") != (i == len(lines)-1) {
			t.Fatalf("-all -json line %d %q: %v", i, line, err)
		}
		for _, r := range rr.Recipients {
			listed = append(listed, cmp.Or(r.UID, r.Key))
		}
	}
	if !slices.Equal(listed, everyone) || len(lines) < 3 {
		t.Errorf("-all -json: %d pages of %q, want at least 3 of %q", len(lines), listed, everyone)
	}

	// One recipient, by uid and by key.
	out, _ = cli("recipients", "-campaign=spring", "-uid=ann")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^recipient ann of tenant acme in campaign spring  \[` + day1.Format("2006-01-02") + `, ` + today.Format("2006-01-02") + `\)\nkey ` + keys["ann"].String() + `$`),
		tableRow("opens", "2", "first "+at(day1, 10), "last "+at(day2, 8)),
		tableRow("machine opens", "1", "first "+at(day1, 9), "last "+at(day1, 9)),
		tableRow("clicks", "3", blogLink+" (1), "+shopLink+" (2)"),
		tableRow("machine clicks", "0"),
		tableRow("conversions", "1", "o-1 25.00 EUR"),
		tableRow("revenue", "EUR 25.00"),
		tableRow("views", "2"),
	} {
		if !want.MatchString(out) {
			t.Errorf("recipients -uid: no line %s in\n%s", want, out)
		}
	}
	out, _ = cli("recipients", "-campaign=spring", "-key="+keys["bob"].String())
	if !tableRow("machine opens", "2", "first "+at(day1, 7), "last "+at(day2, 7)).MatchString(out) || !tableRow("machine clicks", "1").MatchString(out) ||
		!strings.HasPrefix(out, "recipient "+keys["bob"].String()+" of tenant acme") {
		t.Errorf("recipients -key:\n%s", out)
	}

	out, _ = cli("links", "-campaign=spring")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^links of spring  \[` + day1.Format("2006-01-02") + `, ` + today.Format("2006-01-02") + `\)$`),
		tableRow("clicks", "unique clickers", "machine clicks", "destination"),
		tableRow("2", "1", "1", shopLink),
		tableRow("1", "1", "0", blogLink),
	} {
		if !want.MatchString(out) {
			t.Errorf("links: no line %s in\n%s", want, out)
		}
	}
	if strings.Index(out, shopLink) > strings.Index(out, blogLink) {
		t.Errorf("links: not most clicked first:\n%s", out)
	}

	// Erasure: bob's two records go, and bob with them; the others stay.
	code, out, errOut := runCLI(t, "erase-recipient", "-url="+api, "-token=acme-tok", "-uid=bob")
	if want := regexp.MustCompile(`^erased recipient bob of tenant acme \(key ` + keys["bob"].String() + `\) at \S+: 2 records removed`); code != 0 || !want.MatchString(out) {
		t.Errorf("erase-recipient: exit %d %s%s", code, out, errOut)
	}
	code, _, errOut = runCLI(t, append([]string{"recipients", "-campaign=spring", "-uid=bob"}, rng...)...)
	if code != 1 || !strings.Contains(errOut, "query API answered 404: no activity of this recipient in campaign \"spring\"") {
		t.Errorf("recipients -uid=bob after its erasure: exit %d, %q", code, errOut)
	}
	out, _ = cli("recipients", "-campaign=spring")
	if got, want := firstColumn(out, "recipient"), inKeyOrder("ann", "cat", "dan", "eve"); !slices.Equal(got, want) {
		t.Errorf("after bob's erasure: %q, want %q", got, want)
	}
	code, out, _ = runCLI(t, "erase-recipient", "-url="+api, "-token=op-tok", "-tenant=acme", "-key="+keys["eve"].String(), "-json")
	var er query.ErasureResponse
	if code != 0 || json.Unmarshal([]byte(out), &er) != nil || er.Removed != 1 || er.Key != keys["eve"].String() || er.Tenant != "acme" {
		t.Errorf("erase-recipient -key -json: exit %d %q", code, out)
	}

	// The API's refusals reach the terminal with their message.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"recipients", "-campaign=spring", "-cursor=zz"}, `query API answered 400: bad cursor "zz"`},
		{[]string{"recipients", "-campaign=spring", "-cid=globex:mail"}, `query API answered 403: content id "globex:mail" is outside this token's tenant`},
		{[]string{"links", "-campaign=spring", "-token=nope"}, "query API answered 401"},
	} {
		code, out, errOut := runCLI(t, append(append([]string{tc.args[0]}, rng...), tc.args[1:]...)...)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, %q %q; want %q", tc.args, code, out, errOut, tc.want)
		}
	}
	code, _, errOut = runCLI(t, "erase-recipient", "-url="+api, "-token=op-tok", "-uid=cat")
	if code != 1 || !strings.Contains(errOut, "query API answered 400: tenant required") {
		t.Errorf("erase-recipient without the tenant of an operator's token: exit %d, %q", code, errOut)
	}
}

// TestRecipientCommandArguments: the recipient commands refuse what they
// cannot use with exit 1 and a message naming the flag, before asking the
// API (which is not running here).
func TestRecipientCommandArguments(t *testing.T) {
	off := "-url=http://127.0.0.1:1"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"recipients", off}, "-campaign: give the campaign"},
		{[]string{"recipients", off, "spring"}, `recipients takes no argument, got ["spring"]`},
		{[]string{"recipients", off, "-campaign=spring", "-filter=opend"}, `-filter="opend": use all, opened, clicked, converted, machine-only, none`},
		{[]string{"recipients", off, "-campaign=spring", "-limit=0"}, "-limit=0: use 1 to 10000"},
		{[]string{"recipients", off, "-campaign=spring", "-limit=10001"}, "-limit=10001: use 1 to 10000"},
		{[]string{"recipients", off, "-campaign=spring", "-csv", "-json"}, "-csv and -json: give one of them"},
		{[]string{"recipients", off, "-campaign=spring", "-tenant=acme"}, "-tenant is for one recipient: give -uid or -key"},
		{[]string{"recipients", off, "-campaign=spring", "-uid=a", "-key=" + strings.Repeat("0", 32)}, "-uid and -key: give one of them"},
		{[]string{"recipients", off, "-campaign=spring", "-key=xyz"}, `-key="xyz": use the recipient's key, 32 hex digits`},
		{[]string{"recipients", off, "-campaign=spring", "-uid=a", "-all"}, "-all lists recipients: not with -uid or -key"},
		{[]string{"recipients", off, "-campaign=spring", "-uid=a", "-filter=opened"}, "-filter lists recipients: not with -uid or -key"},
		{[]string{"recipients", off, "-campaign=spring", "-from=yesterday"}, `-from="yesterday": use a UTC date`},
		{[]string{"recipients", "-url=127.0.0.1:8081", "-campaign=spring"}, `-url="127.0.0.1:8081": use the query API's base URL`},
		{[]string{"links", off}, "-campaign: give the campaign"},
		{[]string{"links", off, "-campaign=spring", "x"}, `links takes no argument, got ["x"]`},
		{[]string{"erase-recipient", off}, "-uid or -key: give the recipient to erase"},
		{[]string{"erase-recipient", off, "-uid=a", "-key=" + strings.Repeat("0", 32)}, "-uid and -key: give one of them"},
		{[]string{"erase-recipient", off, "-key=" + strings.Repeat("g", 32)}, `-key="gggggggggggggggggggggggggggggggg": use the recipient's key`},
		{[]string{"erase-recipient", off, "-uid=a", "b"}, `erase-recipient takes no argument, got ["b"]`},
		{[]string{"erase-recipient", "-url=ftp://x", "-uid=a"}, `-url="ftp://x": use the query API's base URL`},
		{[]string{"erase-recipient", off, "-uid=a"}, "ask the query API at http://127.0.0.1:1"},
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
