//go:build integration

package query

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/hllstore/hllstoretest"
	"github.com/pixelpipe/pixelpipe/internal/money"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
)

const (
	recipientSecret = "recipients-visitor-secret"
	shopLink        = "https://shop.example/sale"
	blogLink        = "https://blog.example/post"
)

// recipientWorld is campaign "spring" seeded by seedRecipientWorld, and the
// servers that answer for it.
type recipientWorld struct {
	s     *Server // with the visitor secret and an eraser
	plain *Server // without either
	// keys are the recipients' keys by name; want their activity over the
	// whole range, as the API answers it, by name.
	keys  map[string]hllstore.RecipientKey
	want  map[string]RecipientJSON
	today time.Time
	// rng is the range of both seeded days.
	rng string
}

// seedRecipientWorld writes campaign "spring" on two days (day1, day2: the two
// days before today) over "acme:mail-1" and "acme:landing" of tenant acme
// and "globex:mail" of tenant globex:
//
//	ann  opened on both days (and a proxy before her), clicked the shop link 3 times and the blog link once, ordered (25 EUR), 2 views
//	bob  only machines: two opens, a click (no uid kept)
//	cat  opened, ordered (10 USD) and converted without an order id
//	dan  opened on day1, a view on day2
//	eve  a view only
//	fay  clicked the blog link, no open
//	hal  opened (no uid kept; a key in ann's bucket)
//	gus  globex's recipient of the same uid as ann: opened
func seedRecipientWorld(t *testing.T) *recipientWorld {
	t.Helper()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	keyer := visitor.NewKeyer(recipientSecret)
	key := func(tenant, uid string) hllstore.RecipientKey {
		return hllstore.RecipientKey(keyer.RecipientKey(nil, tenant, uid))
	}
	w := &recipientWorld{keys: map[string]hllstore.RecipientKey{
		"ann": key("acme", "ann"), "bob": key("acme", "bob"), "cat": key("acme", "cat"), "dan": key("acme", "dan"),
		"eve": key("acme", "eve"), "fay": key("acme", "fay"), "gus": key("globex", "ann"),
	}}
	hal := w.keys["ann"]
	hal[15] ^= 0xff
	w.keys["hal"] = hal
	w.today = time.Now().UTC().Truncate(24 * time.Hour)
	day1, day2 := w.today.Add(-48*time.Hour), w.today.Add(-24*time.Hour)
	w.rng = "from=" + day1.Format(dayLayout) + "&to=" + w.today.Format(dayLayout)
	ms := func(day time.Time, hour int) int64 { return day.Add(time.Duration(hour) * time.Hour).UnixMilli() }

	spring := hllstoretest.Campaign{Name: "spring"}
	rec := func(cid string, day time.Time, name string) *hllstore.Activity {
		return spring.Recipient(cid, day.UnixMilli(), w.keys[name])
	}
	a := rec("acme:mail-1", day1, "ann")
	a.UID = "ann"
	a.AddOpen(ms(day1, 9), true)
	a.AddOpen(ms(day1, 10), false)
	a.AddClick(shopLink, false)
	a = rec("acme:mail-1", day2, "ann")
	a.AddOpen(ms(day2, 8), false)
	a.AddClick(shopLink, false)
	a.AddClick(shopLink, false)
	a.AddClick(blogLink, false)
	a = rec("acme:landing", day2, "ann")
	a.AddConversion("o-1", 25_000_000, "EUR")
	a.AddConversion("o-1", 25_000_000, "EUR") // the same order again
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
	a.AddConversion("", 0, "")
	a = rec("acme:mail-1", day1, "dan")
	a.UID = "dan"
	a.AddOpen(ms(day1, 11), false)
	rec("acme:landing", day2, "dan").Views++
	a = rec("acme:landing", day1, "eve")
	a.UID = "eve"
	a.Views++
	a = rec("acme:mail-1", day2, "fay")
	a.UID = "fay"
	a.AddClick(blogLink, false)
	rec("acme:mail-1", day1, "hal").AddOpen(ms(day1, 13), false)
	a = rec("globex:mail", day1, "gus")
	a.UID = "ann"
	a.AddOpen(ms(day1, 6), false)
	if err := spring.Put(context.Background(), store); err != nil {
		t.Fatalf("seed: %v", err)
	}

	at := func(day time.Time, hour int) *string {
		s := day.Add(time.Duration(hour) * time.Hour).Format(time.RFC3339Nano)
		return &s
	}
	w.want = map[string]RecipientJSON{
		"ann": {UID: "ann", Opens: 2, MachineOpens: 1, FirstOpen: at(day1, 10), LastOpen: at(day2, 8), FirstMachineOpen: at(day1, 9), LastMachineOpen: at(day1, 9),
			Clicks: 4, Links: []LinkClick{{blogLink, 1}, {shopLink, 3}}, Conversions: 1,
			Orders: []OrderJSON{{"o-1", money.Of(25_000_000), "EUR"}}, Revenue: map[string]money.Sum{"EUR": money.Of(25_000_000)}, Views: 2},
		"bob": {MachineOpens: 2, FirstMachineOpen: at(day1, 7), LastMachineOpen: at(day2, 7), MachineClicks: 1},
		"cat": {UID: "cat", Opens: 1, FirstOpen: at(day2, 12), LastOpen: at(day2, 12), Conversions: 2,
			Orders: []OrderJSON{{"o-2", money.Of(10_000_000), "USD"}}, Revenue: map[string]money.Sum{"USD": money.Of(10_000_000)}},
		"dan": {UID: "dan", Opens: 1, FirstOpen: at(day1, 11), LastOpen: at(day1, 11), Views: 1},
		"eve": {UID: "eve", Views: 1},
		"fay": {UID: "fay", Clicks: 1, Links: []LinkClick{{blogLink, 1}}},
		"hal": {Opens: 1, FirstOpen: at(day1, 13), LastOpen: at(day1, 13)},
		"gus": {UID: "ann", Opens: 1, FirstOpen: at(day1, 6), LastOpen: at(day1, 6)},
	}
	for name, j := range w.want {
		j.Key = w.keys[name].String()
		w.want[name] = j
	}

	cfg := DefaultConfig()
	cfg.Tokens = map[string]string{"acme-tok": "acme", "globex-tok": "globex", "op-tok": "*"}
	cfg.VisitorSecret, cfg.ErasureGrace = recipientSecret, 10*time.Millisecond
	var err error
	if w.s, err = New(cfg, nil, nil, counts.NewReader(store), nil); err != nil {
		t.Fatal(err)
	}
	w.s.SetEraser(store)
	cfg.VisitorSecret = ""
	if w.plain, err = New(cfg, nil, nil, counts.NewReader(store), nil); err != nil {
		t.Fatal(err)
	}
	return w
}

// request sends method target with token to srv.
func request(srv *Server, method, token, target string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	srv.srv.Handler.ServeHTTP(rec, req)
	return rec
}

// getJSON GETs target with token, wants a 200 and decodes it into v.
func (w *recipientWorld) getJSON(t *testing.T, token, target string, v any) {
	t.Helper()
	rec := request(w.s, "GET", token, target)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
	}
	// Decoded into a zero value: json.Unmarshal would keep the fields
	// an answer leaves out from the last one decoded into v.
	reflect.ValueOf(v).Elem().SetZero()
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
}

// wantAPIError sends method target with token and wants code and an error
// message containing msg.
func wantAPIError(t *testing.T, srv *Server, method, token, target string, code int, msg string) {
	t.Helper()
	rec := request(srv, method, token, target)
	var e errorBody
	if rec.Code != code || json.Unmarshal(rec.Body.Bytes(), &e) != nil || !strings.Contains(e.Error, msg) {
		t.Errorf("%s %s: %d %s, want %d and %q", method, target, rec.Code, rec.Body, code, msg)
	}
}

// pages lists target with limit page by page to the end, checking that no
// page holds more than limit, and returns the recipients and the cursors.
func (w *recipientWorld) pages(t *testing.T, target string, limit int) (got []RecipientJSON, cursors []string) {
	t.Helper()
	cursor := ""
	for {
		var page RecipientsResponse
		w.getJSON(t, "acme-tok", target+"&limit="+strconv.Itoa(limit)+"&cursor="+cursor, &page)
		if len(page.Recipients) > limit {
			t.Fatalf("limit %d: a page of %d", limit, len(page.Recipients))
		}
		got = append(got, page.Recipients...)
		if page.NextCursor == "" {
			return got, cursors
		}
		if len(cursors) > 50 {
			t.Fatalf("limit %d: no end after cursors %q", limit, cursors)
		}
		cursor = page.NextCursor
		cursors = append(cursors, cursor)
	}
}

// sorted returns the expected answers of names in key order (the API's).
func (w *recipientWorld) sorted(names ...string) []RecipientJSON {
	out := make([]RecipientJSON, 0, len(names))
	for _, n := range names {
		out = append(out, w.want[n])
	}
	slices.SortFunc(out, func(a, b RecipientJSON) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// sameRecipients fails the test unless got are want, in order.
func sameRecipients(t *testing.T, what string, got, want []RecipientJSON) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		wj, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("%s:\n%s\nwant\n%s", what, g, wj)
	}
}

var acmeRecipients = []string{"ann", "bob", "cat", "dan", "eve", "fay", "hal"}

// The listing merges each recipient's activity over the campaign's days
// and content ids (opens, first and last times, clicks per link, orders
// once, revenue, views), filters by what a person or a machine did, pages
// in key order, exports CSV and NDJSON, and shows a token only its tenant's
// recipients.
func TestRecipientsRoute(t *testing.T) {
	t.Parallel()
	w := seedRecipientWorld(t)
	base := "/v1/campaigns/spring/recipients?" + w.rng

	var page RecipientsResponse
	w.getJSON(t, "acme-tok", base, &page)
	if page.Campaign != "spring" || page.Filter != "all" || page.NextCursor != "" ||
		page.From != w.today.Add(-48*time.Hour).Format(dayLayout) || page.To != w.today.Format(dayLayout) {
		t.Errorf("listing head %+v", page)
	}
	sameRecipients(t, "acme's recipients", page.Recipients, w.sorted(acmeRecipients...))

	// Without from and to: the last 30 days, today included.
	w.getJSON(t, "acme-tok", "/v1/campaigns/spring/recipients", &page)
	if page.From != w.today.Add(-29*24*time.Hour).Format(dayLayout) || page.To != w.today.Add(24*time.Hour).Format(dayLayout) || len(page.Recipients) != len(acmeRecipients) {
		t.Errorf("default range [%s, %s) with %d recipients, want the last 30 days and %d", page.From, page.To, len(page.Recipients), len(acmeRecipients))
	}
	// A range before the campaign has none.
	w.getJSON(t, "acme-tok", "/v1/campaigns/spring/recipients?from="+w.today.Add(-5*24*time.Hour).Format(dayLayout)+"&to="+w.today.Add(-48*time.Hour).Format(dayLayout), &page)
	if len(page.Recipients) != 0 || page.Recipients == nil {
		t.Errorf("before the campaign: %+v, want an empty list", page.Recipients)
	}

	for filter, names := range map[string][]string{
		"opened":       {"ann", "cat", "dan", "hal"},
		"clicked":      {"ann", "fay"},
		"converted":    {"ann", "cat"},
		"machine-only": {"bob"},
		"none":         {"bob", "eve"},
		"all":          acmeRecipients,
	} {
		w.getJSON(t, "acme-tok", base+"&filter="+filter, &page)
		if page.Filter != filter {
			t.Errorf("filter %s answered as %q", filter, page.Filter)
		}
		sameRecipients(t, "filter "+filter, page.Recipients, w.sorted(names...))
	}

	// One content id of the campaign: its activity alone.
	w.getJSON(t, "acme-tok", base+"&cid=acme:landing", &page)
	if page.ContentID != "acme:landing" || len(page.Recipients) != 4 {
		t.Fatalf("cid acme:landing: %+v", page)
	}
	for _, r := range page.Recipients {
		if r.Key == w.keys["ann"].String() && (r.Opens != 0 || r.Conversions != 1 || r.Views != 2 || r.Clicks != 0 || r.Revenue["EUR"] != money.Of(25_000_000)) {
			t.Errorf("ann on acme:landing: %+v", r)
		}
	}

	// Paging: every recipient once, in key order, whatever the limit; a
	// cursor may point inside a bucket (ann and hal share one).
	for _, limit := range []int{1, 2, 3} {
		got, cursors := w.pages(t, base, limit)
		sameRecipients(t, fmt.Sprintf("pages of %d", limit), got, w.sorted(acmeRecipients...))
		if limit == 1 && !slices.ContainsFunc(cursors, func(c string) bool { return strings.Contains(c, ".") }) {
			t.Errorf("limit 1: no cursor inside a bucket: %q", cursors)
		}
	}
	opened, _ := w.pages(t, base+"&filter=opened", 1)
	sameRecipients(t, "pages of opened", opened, w.sorted("ann", "cat", "dan", "hal"))

	// CSV: the documented columns, the same rows, the next cursor in a
	// header.
	rec := request(w.s, "GET", "acme-tok", base+"&format=csv")
	rows, err := csv.NewReader(rec.Body).ReadAll()
	if err != nil || rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(rec.Header().Get("Content-Disposition"), `attachment; filename="recipients-spring-`) {
		t.Fatalf("CSV: %d %v %v", rec.Code, rec.Header(), err)
	}
	header := []string{"key", "uid", "opens", "machine_opens", "first_open", "last_open", "first_machine_open", "last_machine_open", "clicks", "machine_clicks", "links", "conversions", "orders", "views"}
	if len(rows) != 1+len(acmeRecipients) || !slices.Equal(rows[0], header) {
		t.Fatalf("CSV rows %q", rows)
	}
	ann, bob := w.want["ann"], w.want["bob"]
	for _, want := range [][]string{
		{ann.Key, "ann", "2", "1", *ann.FirstOpen, *ann.LastOpen, *ann.FirstMachineOpen, *ann.LastMachineOpen, "4", "0", blogLink + "=1 | " + shopLink + "=3", "1", "o-1=25 EUR", "2"},
		{bob.Key, "", "0", "2", "", "", *bob.FirstMachineOpen, *bob.LastMachineOpen, "0", "1", "", "0", "", "0"},
	} {
		if !slices.ContainsFunc(rows, func(r []string) bool { return slices.Equal(r, want) }) {
			t.Errorf("CSV lacks row %q:\n%q", want, rows)
		}
	}
	w.getJSON(t, "acme-tok", base+"&limit=2", &page)
	rec = request(w.s, "GET", "acme-tok", base+"&limit=2&format=csv")
	if rows, _ := csv.NewReader(bytes.NewReader(rec.Body.Bytes())).ReadAll(); len(rows) != 3 || rec.Header().Get("X-Next-Cursor") != page.NextCursor || page.NextCursor == "" {
		t.Errorf("CSV page of 2: %d rows, X-Next-Cursor %q, want 3 and %q", len(rows), rec.Header().Get("X-Next-Cursor"), page.NextCursor)
	}
	// NDJSON: one recipient per line.
	rec = request(w.s, "GET", "acme-tok", base+"&format=ndjson")
	var lines []RecipientJSON
	for line := range strings.SplitSeq(strings.TrimSuffix(rec.Body.String(), "\n"), "\n") {
		var r RecipientJSON
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("NDJSON line %q: %v", line, err)
		}
		lines = append(lines, r)
	}
	sameRecipients(t, "NDJSON", lines, w.sorted(acmeRecipients...))

	// Tenants: each token its own recipients; an operator's all.
	w.getJSON(t, "globex-tok", base, &page)
	sameRecipients(t, "globex's recipients", page.Recipients, w.sorted("gus"))
	w.getJSON(t, "op-tok", base, &page)
	sameRecipients(t, "every tenant's recipients", page.Recipients, w.sorted(append([]string{"gus"}, acmeRecipients...)...))
	wantAPIError(t, w.s, "GET", "acme-tok", base+"&cid=globex:mail", 403, `content id "globex:mail" is outside this token's tenant`)

	// Bad parameters: 400 with what to fix.
	for target, msg := range map[string]string{
		base + "&filter=opend": `bad filter "opend": use all, opened`,
		base + "&limit=0":      `bad limit "0": use 1 to 10000`,
		base + "&limit=10001":  `bad limit "10001"`,
		base + "&limit=ten":    `bad limit "ten"`,
		base + "&cursor=x1":    `bad cursor "x1": pass the next cursor of the previous page`,
		base + "&cursor=257":   `bad cursor "257"`,
		base + "&format=xml":   `bad format "xml"`,
		base + "&cid=acme%20x": "bad id",
		"/v1/campaigns/spring/recipients?cursor=3." + strings.Repeat("04", 16):                 `bad cursor`, // a key of another bucket
		"/v1/campaigns/spring/recipients?from=2020-01-01&to=" + w.today.Format(dayLayout):      "longer than the limit of 400 days",
		"/v1/campaigns/spring/recipients?from=" + w.today.Format(dayLayout) + "&to=2020-01-01": "empty range",
		"/v1/campaigns/spring/recipients?from=yesterday":                                       `bad from "yesterday"`,
		"/v1/campaigns/spr%20ing/recipients":                                                   "bad id",
	} {
		wantAPIError(t, w.s, "GET", "acme-tok", target, 400, msg)
	}
	wantAPIError(t, w.s, "GET", "", base, 401, "missing or wrong bearer token")
}

// One recipient: by uid, keyed under the token's tenant (or the one an
// operator names), or by key; 404 without activity; the links route
// counts clicks, unique clickers and machines' clicks per destination;
// an erasure removes a recipient's activity and its part in unique
// clickers, and nobody else's.
func TestRecipientAndErasureRoutes(t *testing.T) {
	t.Parallel()
	w := seedRecipientWorld(t)
	one := "/v1/campaigns/spring/recipients/"
	var rr RecipientResponse
	w.getJSON(t, "acme-tok", one+"ann?"+w.rng, &rr)
	if rr.Campaign != "spring" || rr.Tenant != "acme" || rr.From != w.today.Add(-48*time.Hour).Format(dayLayout) || rr.To != w.today.Format(dayLayout) {
		t.Errorf("ann: %+v", rr)
	}
	sameRecipients(t, "ann by uid", []RecipientJSON{rr.Recipient}, w.sorted("ann"))
	// The same uid of globex is another recipient.
	w.getJSON(t, "op-tok", one+"ann?tenant=globex&"+w.rng, &rr)
	sameRecipients(t, "globex's ann", []RecipientJSON{rr.Recipient}, w.sorted("gus"))
	if rr.Tenant != "globex" {
		t.Errorf("tenant %q, want globex", rr.Tenant)
	}
	// A tenant named, or implied by the campaign's one tenant.
	w.getJSON(t, "op-tok", one+"dan?tenant=acme&cid=acme:mail-1&"+w.rng, &rr)
	sameRecipients(t, "dan on acme:mail-1", []RecipientJSON{rr.Recipient}, []RecipientJSON{{Key: w.keys["dan"].String(), UID: "dan", Opens: 1, FirstOpen: w.want["dan"].FirstOpen, LastOpen: w.want["dan"].LastOpen}})
	w.getJSON(t, "op-tok", one+"dan?cid=acme:mail-1&"+w.rng, &rr)
	if rr.Tenant != "acme" || rr.Recipient.Opens != 1 {
		t.Errorf("dan with the tenant of the one content id: %+v", rr)
	}
	w.getJSON(t, "acme-tok", one+w.keys["hal"].String()+"?by=key&"+w.rng, &rr)
	sameRecipients(t, "hal by key", []RecipientJSON{rr.Recipient}, w.sorted("hal"))
	// Without the visitor secret, a key still finds a recipient; a uid
	// cannot.
	rec := request(w.plain, "GET", "acme-tok", one+w.keys["cat"].String()+"?by=key&"+w.rng)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"uid":"cat"`) {
		t.Errorf("cat by key without a secret: %d %s", rec.Code, rec.Body)
	}
	wantAPIError(t, w.plain, "GET", "acme-tok", one+"cat?"+w.rng, 501, "pass the recipient's key with by=key")

	wantAPIError(t, w.s, "GET", "op-tok", one+"dan?tenant=globex&"+w.rng, 404, `no activity of this recipient in campaign "spring"`)
	wantAPIError(t, w.s, "GET", "acme-tok", one+"nobody?"+w.rng, 404, "no activity of this recipient")
	wantAPIError(t, w.s, "GET", "acme-tok", one+"ann?from="+w.today.Add(-5*24*time.Hour).Format(dayLayout)+"&to="+w.today.Add(-48*time.Hour).Format(dayLayout), 404, "no activity") // before the campaign
	wantAPIError(t, w.s, "GET", "op-tok", one+"ann?"+w.rng, 400, "tenant required")
	wantAPIError(t, w.s, "GET", "globex-tok", one+"ann?tenant=acme&"+w.rng, 403, `tenant "acme" is not this token's`)
	wantAPIError(t, w.s, "GET", "acme-tok", one+"ann?cid=globex:mail&"+w.rng, 403, "outside this token's tenant")
	wantAPIError(t, w.s, "GET", "acme-tok", one+"zz?by=key&"+w.rng, 400, `bad recipient key "zz"`)
	wantAPIError(t, w.s, "GET", "acme-tok", one+"ann?by=name&"+w.rng, 400, `bad by "name": use uid (default) or key`)
	wantAPIError(t, w.s, "GET", "acme-tok", one+strings.Repeat("u", 129)+"?"+w.rng, 400, "bad uid: 1 to 128 bytes")

	// Links: shop 3 clicks by ann and 1 by a scanner; blog 1 by ann, 1 by
	// fay.
	links := "/v1/campaigns/spring/links?" + w.rng
	var lr LinksResponse
	w.getJSON(t, "acme-tok", links, &lr)
	wantLinks := []LinkJSON{{shopLink, 3, 1, 1}, {blogLink, 2, 2, 0}}
	if lr.Campaign != "spring" || !slices.Equal(lr.Links, wantLinks) {
		t.Errorf("links %+v, want %+v", lr, wantLinks)
	}
	rec = request(w.s, "GET", "acme-tok", links+"&format=csv")
	rows, _ := csv.NewReader(rec.Body).ReadAll()
	if want := [][]string{{"destination", "clicks", "unique_clickers", "machine_clicks"}, {shopLink, "3", "1", "1"}, {blogLink, "2", "2", "0"}}; !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("links CSV %q, want %q", rows, want)
	}
	w.getJSON(t, "acme-tok", links+"&cid=acme:landing", &lr)
	if lr.ContentID != "acme:landing" || lr.Links == nil || len(lr.Links) != 0 {
		t.Errorf("links of acme:landing %+v, want none", lr)
	}
	w.getJSON(t, "globex-tok", links, &lr)
	if len(lr.Links) != 0 {
		t.Errorf("globex sees links %+v", lr.Links)
	}
	wantAPIError(t, w.s, "GET", "acme-tok", links+"&format=pdf", 400, `bad format "pdf"`)

	// Erasure of dan (a record on each day) by uid under the token's tenant.
	before := time.Now().UTC().Add(-time.Second)
	var er ErasureResponse
	rec = request(w.s, "DELETE", "acme-tok", "/v1/recipients/dan")
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &er) != nil {
		t.Fatalf("erase dan: %d %s", rec.Code, rec.Body)
	}
	erasedAt, err := time.Parse(time.RFC3339Nano, er.ErasedAt)
	if er.Tenant != "acme" || er.Key != w.keys["dan"].String() || er.Removed != 2 || err != nil || erasedAt.Before(before) || erasedAt.After(time.Now()) {
		t.Errorf("erase dan: %+v (%v)", er, err)
	}
	wantAPIError(t, w.s, "GET", "acme-tok", one+"dan?"+w.rng, 404, "no activity of this recipient")
	var page RecipientsResponse
	w.getJSON(t, "acme-tok", "/v1/campaigns/spring/recipients?"+w.rng, &page)
	sameRecipients(t, "after dan's erasure", page.Recipients, w.sorted("ann", "bob", "cat", "eve", "fay", "hal"))
	// Again: nothing left to remove.
	rec = request(w.s, "DELETE", "acme-tok", "/v1/recipients/dan")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"removed":0`) {
		t.Errorf("erase dan again: %d %s", rec.Code, rec.Body)
	}

	// Erasure of acme's ann by an operator: her 3 records and her part in
	// the links' unique clickers go, globex's ann stays.
	rec = request(w.s, "DELETE", "op-tok", "/v1/recipients/"+w.keys["ann"].String()+"?by=key&tenant=acme")
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &er) != nil || er.Removed != 3 || er.Key != w.keys["ann"].String() {
		t.Fatalf("erase ann: %d %s", rec.Code, rec.Body)
	}
	w.getJSON(t, "op-tok", "/v1/campaigns/spring/recipients?"+w.rng, &page)
	sameRecipients(t, "after ann's erasure", page.Recipients, w.sorted("bob", "cat", "eve", "fay", "hal", "gus"))
	w.getJSON(t, "acme-tok", links, &lr)
	if want := []LinkJSON{{shopLink, 3, 0, 1}, {blogLink, 2, 1, 0}}; !slices.Equal(lr.Links, want) {
		t.Errorf("links after ann's erasure %+v, want %+v (clicks stay, clickers go)", lr.Links, want)
	}

	wantAPIError(t, w.s, "DELETE", "op-tok", "/v1/recipients/cat", 400, "tenant required")
	wantAPIError(t, w.s, "DELETE", "acme-tok", "/v1/recipients/cat?tenant=globex", 403, `tenant "globex" is not this token's`)
	wantAPIError(t, w.s, "DELETE", "acme-tok", "/v1/recipients/cat?by=key", 400, `bad recipient key "cat"`)
	wantAPIError(t, w.plain, "DELETE", "acme-tok", "/v1/recipients/cat", 501, "erasure is not enabled")
	w.getJSON(t, "acme-tok", one+"cat?"+w.rng, &rr)
	sameRecipients(t, "cat, after refused erasures", []RecipientJSON{rr.Recipient}, w.sorted("cat"))
}
