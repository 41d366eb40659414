package query

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/money"
	"github.com/pixelpipe/pixelpipe/internal/pii"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// Per-recipient activity of e-mail campaigns (the uid a sender puts in its
// pixel and link URLs):
//
//	GET    /v1/campaigns/{campaign}/recipients        who opened, clicked, converted; filter, cursor, CSV
//	GET    /v1/campaigns/{campaign}/recipients/{uid}  one recipient
//	GET    /v1/campaigns/{campaign}/links             clicks and unique clickers per destination
//	DELETE /v1/recipients/{uid}                       erase a recipient's activity
//
// Recipients are known by their recipient key, a keyed hash of the tenant
// and the uid under the visitor secret (the processors compute it; so does
// this API, given Config.VisitorSecret, to find or erase a uid). A uid is
// shown as the sender gave it only where the processors were told to keep
// it (-processor.recipientIDs). Ranges are in whole UTC days, default the
// last 30. Recipient keys are scoped to the part of a content id before
// its first ':' (the processors' rule): with another -query.tenantSeparator
// a token's tenant and a recipient's scope differ, so the recipient routes
// assume the default separator.

// Eraser erases a recipient's activity (hllstore.Store.EraseRecipient).
type Eraser interface {
	EraseRecipient(ctx context.Context, tenant string, key hllstore.RecipientKey, atMs int64) (int, error)
}

// SetEraser enables DELETE /v1/recipients/{uid} (without one it answers
// 501): the one route that writes.
func (s *Server) SetEraser(e Eraser) { s.eraser = e }

// RecipientJSON is one recipient's activity over a range.
type RecipientJSON struct {
	// Key is the recipient key in hex; UID the recipient id as sent, only
	// where the processors keep it.
	Key string `json:"key"`
	UID string `json:"uid,omitempty"`
	// Opens counts a person's opens, MachineOpens those of mail privacy
	// proxies and scanners; first and last of each in RFC 3339.
	Opens            uint64  `json:"opens"`
	MachineOpens     uint64  `json:"machine_opens"`
	FirstOpen        *string `json:"first_open,omitempty"`
	LastOpen         *string `json:"last_open,omitempty"`
	FirstMachineOpen *string `json:"first_machine_open,omitempty"`
	LastMachineOpen  *string `json:"last_machine_open,omitempty"`
	// Clicks counts a person's clicks, Links them per destination;
	// MachineClicks counts link scanners' clicks.
	Clicks        uint64      `json:"clicks"`
	Links         []LinkClick `json:"links,omitempty"`
	MachineClicks uint64      `json:"machine_clicks"`
	// Conversions counts a person's conversions (each order once), Orders
	// those with an order id, Revenue their value per currency.
	Conversions uint64               `json:"conversions"`
	Orders      []OrderJSON          `json:"orders,omitempty"`
	Revenue     map[string]money.Sum `json:"revenue,omitempty"`
	// Views counts page views with the recipient's id.
	Views uint64 `json:"views"`
}

// LinkClick is a recipient's clicks on one link.
type LinkClick struct {
	Destination string `json:"destination"`
	Clicks      uint64 `json:"clicks"`
}

// OrderJSON is a conversion with an order id.
type OrderJSON struct {
	OrderID  string    `json:"order_id"`
	Value    money.Sum `json:"value"`
	Currency string    `json:"currency,omitempty"`
}

// RecipientsResponse is a page of a campaign's recipients, in key order.
type RecipientsResponse struct {
	Campaign   string          `json:"campaign"`
	ContentID  string          `json:"content_id,omitempty"`
	From       string          `json:"from"`
	To         string          `json:"to"`
	Filter     string          `json:"filter"`
	Recipients []RecipientJSON `json:"recipients"`
	// NextCursor continues the listing (the cursor parameter); absent after
	// the last page. A page may hold fewer than limit recipients and still
	// have one.
	NextCursor string        `json:"next_cursor,omitempty"`
	Freshness  FreshnessBody `json:"freshness"`
}

// RecipientResponse is one recipient of a campaign.
type RecipientResponse struct {
	Campaign  string        `json:"campaign"`
	Tenant    string        `json:"tenant"`
	From      string        `json:"from"`
	To        string        `json:"to"`
	Recipient RecipientJSON `json:"recipient"`
	Freshness FreshnessBody `json:"freshness"`
}

// LinksResponse lists a campaign's links.
type LinksResponse struct {
	Campaign  string        `json:"campaign"`
	ContentID string        `json:"content_id,omitempty"`
	From      string        `json:"from"`
	To        string        `json:"to"`
	Links     []LinkJSON    `json:"links"`
	Freshness FreshnessBody `json:"freshness"`
}

// LinkJSON is one link of a campaign: a person's clicks, the distinct
// recipients who clicked (people), and machines' clicks.
type LinkJSON struct {
	Destination    string `json:"destination"`
	Clicks         uint64 `json:"clicks"`
	UniqueClickers uint64 `json:"unique_clickers"`
	MachineClicks  uint64 `json:"machine_clicks"`
}

// ErasureResponse answers an erasure.
type ErasureResponse struct {
	Tenant string `json:"tenant"`
	Key    string `json:"key"`
	// Removed counts the stored records (a recipient's activity of one
	// campaign on one content id and day) removed.
	Removed  int    `json:"removed"`
	ErasedAt string `json:"erased_at"`
}

const (
	defaultRecipientLimit = 1000
	maxRecipientLimit     = 10000
	defaultRecipientDays  = 30
)

// recipientScope reads the campaign, the optional cid and the range
// (whole UTC days; default the last 30 days up to today included).
func (s *Server) recipientScope(w http.ResponseWriter, r *http.Request) (counts.RecipientScope, bool) {
	params := r.URL.Query()
	sc := counts.RecipientScope{Campaign: r.PathValue("campaign"), ContentID: params.Get("cid")}
	for _, id := range []string{sc.Campaign, sc.ContentID} {
		if id != "" && !validID(id) {
			writeError(w, http.StatusBadRequest, badIDMsg)
			return sc, false
		}
	}
	if sc.ContentID != "" && !s.checkContent(w, r, sc.ContentID) {
		return sc, false
	}
	sc.Allow = s.allowFunc(r)
	if params.Get("from") == "" && params.Get("to") == "" {
		sc.To = s.now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		sc.From = sc.To.Add(-defaultRecipientDays * 24 * time.Hour)
		return sc, true
	}
	from, to, ok := s.rangeParams(w, r)
	sc.From, sc.To = from, to
	return sc, ok
}

// recipientJSON renders a recipient; dests maps link ids to destinations.
func recipientJSON(k hllstore.RecipientKey, a *hllstore.Activity, dests map[string]string) RecipientJSON {
	j := RecipientJSON{
		Key: k.String(), UID: a.UID, Opens: a.Opens, MachineOpens: a.MachineOpens,
		FirstOpen: msTime(a.FirstOpenMs), LastOpen: msTime(a.LastOpenMs),
		FirstMachineOpen: msTime(a.FirstMachineOpenMs), LastMachineOpen: msTime(a.LastMachineMs),
		Clicks: a.HumanClicks(), MachineClicks: a.MachineClicks,
		Conversions: a.Conversions + uint64(len(a.Orders)), Views: a.Views,
	}
	for id, n := range a.Clicks {
		d := dests[id]
		if d == "" {
			d = "link:" + id
		}
		j.Links = append(j.Links, LinkClick{Destination: d, Clicks: n})
	}
	slices.SortFunc(j.Links, func(a, b LinkClick) int { return strings.Compare(a.Destination, b.Destination) })
	for _, o := range a.Orders {
		j.Orders = append(j.Orders, OrderJSON{OrderID: o.ID, Value: money.Of(o.ValueMicros), Currency: o.Currency})
		if j.Revenue == nil {
			j.Revenue = map[string]money.Sum{}
		}
		sum := j.Revenue[o.Currency]
		sum.Add(o.ValueMicros)
		j.Revenue[o.Currency] = sum
	}
	return j
}

func msTime(ms int64) *string {
	if ms <= 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
	return &t
}

// destsAndFreshness returns what a recipient's answer needs besides its
// activity: the destinations of sc's link ids, and the freshness. It
// answers and returns false when either cannot be read.
func (s *Server) destsAndFreshness(w http.ResponseWriter, r *http.Request, sc counts.RecipientScope) (map[string]string, FreshnessBody, bool) {
	links, err := s.reader.Links(r.Context(), sc, false)
	if err != nil {
		s.readErr(w, err, "links")
		return nil, FreshnessBody{}, false
	}
	dests := make(map[string]string, len(links))
	for _, l := range links {
		dests[l.ID] = l.Destination
	}
	fresh, err := s.reader.Freshness(r.Context(), s.now(), s.cfg.EventsPartitions)
	if err != nil {
		s.readErr(w, err, "freshness")
		return nil, FreshnessBody{}, false
	}
	return dests, freshnessBody(fresh, s.now()), true
}

// dayRange renders a scope's days: from the first day, to the day after
// the last (exclusive).
func dayRange(sc counts.RecipientScope) (string, string) {
	to := sc.To.UTC()
	if t := to.Truncate(24 * time.Hour); !t.Equal(to) {
		to = t.Add(24 * time.Hour)
	}
	return sc.From.UTC().Truncate(24 * time.Hour).Format(dayLayout), to.Format(dayLayout)
}

// dayRangeName is a range of days in a file name: 20261101-20261201.
func dayRangeName(from, to string) string {
	return strings.ReplaceAll(from, "-", "") + "-" + strings.ReplaceAll(to, "-", "")
}

func (s *Server) recipients(w http.ResponseWriter, r *http.Request) {
	sc, ok := s.recipientScope(w, r)
	if !ok {
		return
	}
	f, ok := formatParam(w, r)
	if !ok {
		return
	}
	params := r.URL.Query()
	filterName := params.Get("filter")
	filter, ok := counts.RecipientFilters[filterName]
	if !ok {
		writeError(w, http.StatusBadRequest, "bad filter "+quote(filterName)+": use all, opened, clicked, converted, machine-only or none (no person's open, click or conversion)")
		return
	}
	if filterName == "" {
		filterName = "all"
	}
	limit := defaultRecipientLimit
	if v := params.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxRecipientLimit {
			writeError(w, http.StatusBadRequest, "bad limit "+quote(v)+": use 1 to "+strconv.Itoa(maxRecipientLimit))
			return
		}
		limit = n
	}
	page, err := s.reader.Recipients(r.Context(), sc, filter, params.Get("cursor"), limit)
	if err != nil {
		s.readErr(w, err, "recipients")
		return
	}
	dests, fresh, ok := s.destsAndFreshness(w, r, sc)
	if !ok {
		return
	}
	from, to := dayRange(sc)
	body := RecipientsResponse{Campaign: sc.Campaign, ContentID: sc.ContentID, From: from, To: to, Filter: filterName,
		Recipients: make([]RecipientJSON, 0, len(page.Recipients)), NextCursor: page.Next, Freshness: fresh}
	for _, row := range page.Recipients {
		body.Recipients = append(body.Recipients, recipientJSON(row.Key, &row.Activity, dests))
	}
	if f == formatJSON {
		writeJSON(w, http.StatusOK, body)
		return
	}
	if page.Next != "" {
		w.Header().Set("X-Next-Cursor", page.Next)
	}
	writeRows(w, f, "recipients-"+sc.Campaign+"-"+dayRangeName(from, to), body.Freshness, recipientHeader, body.Recipients, recipientRow)
}

// recipientHeader and recipientRow are the CSV columns of recipients:
// links as "destination=clicks" and orders as "order_id=value currency",
// each joined by " | ".
var recipientHeader = []string{"key", "uid", "opens", "machine_opens", "first_open", "last_open", "first_machine_open", "last_machine_open", "clicks", "machine_clicks", "links", "conversions", "orders", "views"}

func recipientRow(j RecipientJSON) []string {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	var links, orders []string
	for _, l := range j.Links {
		links = append(links, l.Destination+"="+u64(l.Clicks))
	}
	for _, o := range j.Orders {
		orders = append(orders, o.OrderID+"="+o.Value.Units()+" "+o.Currency)
	}
	return []string{j.Key, cell(j.UID), u64(j.Opens), u64(j.MachineOpens), str(j.FirstOpen), str(j.LastOpen), str(j.FirstMachineOpen), str(j.LastMachineOpen),
		u64(j.Clicks), u64(j.MachineClicks), cell(strings.Join(links, " | ")), u64(j.Conversions), cell(strings.Join(orders, " | ")), u64(j.Views)}
}

// recipientKey returns the key of the request's {uid} for tenant: the uid
// keyed as the processors key it (as its pseudonym where the edges record
// one: Config.UIDsPseudonymised, or a uid holding an e-mail address or a
// phone number), or with by=key the key itself in hex.
// It answers and returns false when it cannot.
func (s *Server) recipientKey(w http.ResponseWriter, r *http.Request, tenant string) (hllstore.RecipientKey, bool) {
	uid := r.PathValue("uid")
	switch by := r.URL.Query().Get("by"); by {
	case "key":
		k, ok := hllstore.ParseRecipientKey(uid)
		if !ok {
			writeError(w, http.StatusBadRequest, "bad recipient key "+quote(uid)+": 32 hex digits (the key field of a listed recipient)")
		}
		return k, ok
	case "", "uid":
	default:
		writeError(w, http.StatusBadRequest, "bad by "+quote(by)+": use uid (default) or key")
		return hllstore.RecipientKey{}, false
	}
	if s.keyer == nil {
		writeError(w, http.StatusNotImplemented, "this query API has no visitor secret (-visitor.secret, the processors'), so it cannot key a uid: pass the recipient's key with by=key")
		return hllstore.RecipientKey{}, false
	}
	if uid == "" || len(uid) > schemas.MaxIDLen {
		writeError(w, http.StatusBadRequest, "bad uid: 1 to 128 bytes")
		return hllstore.RecipientKey{}, false
	}
	if id := []byte(uid); s.cfg.UIDsPseudonymised || pii.Find([]byte("uid"), id) != 0 {
		uid = string(visitor.AppendPseudonym(nil, []byte(s.cfg.VisitorSecret), visitor.UIDPseudonym, id))
	}
	var k hllstore.RecipientKey
	s.keyer.RecipientKey(k[:0], tenant, uid)
	return k, true
}

// requestTenant is the tenant a recipient route acts for: the token's, or
// for an operator's token ("*") the tenant parameter (tenant= with no
// value: content ids without a tenant), else the one tenant of the
// campaign's content ids (fallback, when given). It answers 400 and returns
// false when none can be chosen.
func (s *Server) requestTenant(w http.ResponseWriter, r *http.Request, fallback func() ([]string, error)) (string, bool) {
	tenant, _ := r.Context().Value(tenantKey{}).(string)
	params := r.URL.Query()
	want := params.Get("tenant")
	if tenant != allTenants {
		if params.Has("tenant") && want != tenant {
			writeError(w, http.StatusForbidden, "tenant "+quote(want)+" is not this token's")
			return "", false
		}
		return tenant, true
	}
	if params.Has("tenant") {
		// Empty: content ids without a tenant.
		return want, true
	}
	if fallback != nil {
		ts, err := fallback()
		if err != nil {
			s.readErr(w, err, "tenants")
			return "", false
		}
		if len(ts) == 1 {
			return ts[0], true
		}
	}
	writeError(w, http.StatusBadRequest, "tenant required: a uid is keyed per tenant; pass tenant=NAME (the part of the content ids before \":\")")
	return "", false
}

func (s *Server) recipient(w http.ResponseWriter, r *http.Request) {
	sc, ok := s.recipientScope(w, r)
	if !ok {
		return
	}
	tenant, ok := s.requestTenant(w, r, func() ([]string, error) {
		links, err := s.reader.RecipientTenants(r.Context(), sc)
		return links, err
	})
	if !ok {
		return
	}
	key, ok := s.recipientKey(w, r, tenant)
	if !ok {
		return
	}
	// Only the tenant's content ids: its recipient keys are its own.
	allow := sc.Allow
	sc.Allow = func(cid string) bool { return s.tenantOf(cid) == tenant && (allow == nil || allow(cid)) }
	got, err := s.reader.Recipient(r.Context(), sc, key)
	if err != nil {
		s.readErr(w, err, "recipient")
		return
	}
	a := got[key]
	if a == nil {
		writeError(w, http.StatusNotFound, "no activity of this recipient in campaign "+quote(sc.Campaign)+" from "+sc.From.UTC().Format(dayLayout)+" to "+sc.To.UTC().Format(dayLayout))
		return
	}
	dests, fresh, ok := s.destsAndFreshness(w, r, sc)
	if !ok {
		return
	}
	from, to := dayRange(sc)
	writeJSON(w, http.StatusOK, RecipientResponse{Campaign: sc.Campaign, Tenant: tenant, From: from, To: to,
		Recipient: recipientJSON(key, a, dests), Freshness: fresh})
}

func (s *Server) links(w http.ResponseWriter, r *http.Request) {
	sc, ok := s.recipientScope(w, r)
	if !ok {
		return
	}
	f, ok := formatParam(w, r)
	if !ok {
		return
	}
	links, err := s.reader.Links(r.Context(), sc, true)
	if err != nil {
		s.readErr(w, err, "links")
		return
	}
	fresh, err := s.reader.Freshness(r.Context(), s.now(), s.cfg.EventsPartitions)
	if err != nil {
		s.readErr(w, err, "freshness")
		return
	}
	from, to := dayRange(sc)
	body := LinksResponse{Campaign: sc.Campaign, ContentID: sc.ContentID, From: from, To: to, Links: make([]LinkJSON, 0, len(links)), Freshness: freshnessBody(fresh, s.now())}
	for _, l := range links {
		body.Links = append(body.Links, LinkJSON{Destination: l.Destination, Clicks: l.Clicks, UniqueClickers: l.Clickers, MachineClicks: l.MachineClicks})
	}
	if f == formatJSON {
		writeJSON(w, http.StatusOK, body)
		return
	}
	writeRows(w, f, "links-"+sc.Campaign+"-"+dayRangeName(from, to), body.Freshness,
		[]string{"destination", "clicks", "unique_clickers", "machine_clicks"}, body.Links,
		func(l LinkJSON) []string {
			return []string{cell(l.Destination), u64(l.Clicks), u64(l.UniqueClickers), u64(l.MachineClicks)}
		})
}

// erase removes a recipient's activity: it records the erasure (the
// aggregators leave out the recipient's events received before it, also
// those not yet written), removes what is stored, waits
// Config.ErasureGrace (longer than an aggregator's write takes) and removes
// again what an aggregator may have written in between.
func (s *Server) erase(w http.ResponseWriter, r *http.Request) {
	if s.eraser == nil {
		writeError(w, http.StatusNotImplemented, "erasure is not enabled on this query API")
		return
	}
	tenant, ok := s.requestTenant(w, r, nil)
	if !ok {
		return
	}
	if tenant != "" && !validID(tenant) {
		writeError(w, http.StatusBadRequest, "bad tenant "+quote(tenant))
		return
	}
	key, ok := s.recipientKey(w, r, tenant)
	if !ok {
		return
	}
	at := s.now().UTC()
	removed, err := s.eraser.EraseRecipient(r.Context(), tenant, key, at.UnixMilli())
	if err == nil {
		select {
		case <-r.Context().Done():
			err = r.Context().Err()
		case <-time.After(s.cfg.ErasureGrace):
			var n int
			n, err = s.eraser.EraseRecipient(r.Context(), tenant, key, at.UnixMilli())
			removed += n
		}
	}
	if err != nil {
		s.logger.Error("erase recipient", "tenant", tenant, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the erasure did not complete; send it again (erasing twice is harmless)")
		return
	}
	s.logger.Info("recipient erased", "tenant", tenant, "key", key.String(), "removed", removed)
	writeJSON(w, http.StatusOK, ErasureResponse{Tenant: tenant, Key: key.String(), Removed: removed, ErasedAt: at.Format(time.RFC3339Nano)})
}

// newKeyer returns the recipient keyer of secret (nil without one).
func newKeyer(secret string) *visitor.Keyer {
	if secret == "" {
		return nil
	}
	return visitor.NewKeyer(secret)
}
