package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/flagenv"
	"github.com/pixelpipe/pixelpipe/internal/money"
	"github.com/pixelpipe/pixelpipe/query"
)

// Per-recipient activity of e-mail campaigns, from the query API: who
// opened, clicked and converted (recipients), the campaign's links (links),
// and the erasure of a recipient's activity (erase-recipient).

// recipientRange sets the help of the range flags of the recipient
// commands: activity is kept per UTC day, and the API's default range is
// the last 30 days.
func recipientRange(fs *flag.FlagSet) {
	fs.Lookup("from").Usage = "start, inclusive: YYYY-MM-DD or RFC 3339 (UTC); activity is kept per UTC day, so every day the range touches is read; default 30 days ago, or with -to alone the start of today (UTC)"
	fs.Lookup("to").Usage = "end, exclusive: YYYY-MM-DD or RFC 3339; default one day after -from, or without -from the end of today (UTC)"
}

// cmdRecipients prints a campaign's recipients page by page, or one
// recipient (-uid or -key).
func cmdRecipients(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := newAPIFlagSet("recipients", "", "pixelpipe recipients -url=http://127.0.0.1:8081 -token=$TOKEN -campaign=spring -filter=clicked -from=2026-11-01 -to=2026-12-01\n"+
		"  pixelpipe recipients -campaign=spring -all -csv > spring-recipients.csv\n"+
		"  pixelpipe recipients -campaign=spring -uid=ann@example.com", "/v1/campaigns/{campaign}/recipients")
	campaign := fs.String("campaign", "", "the campaign (required)")
	filter := fs.String("filter", "all", "which recipients: all, opened, clicked, converted (a person's open, click or conversion), machine-only (only mail privacy proxies or link scanners opened or clicked) or none (no person's open, click or conversion)")
	limit := fs.Int("limit", 1000, "recipients per page (1-10000); a page may hold fewer and still have a next one")
	cursor := fs.String("cursor", "", "start at this cursor (the next cursor a page printed)")
	all := fs.Bool("all", false, "follow the next cursor to the last page")
	cid := fs.String("cid", "", "only this content id of the campaign")
	asCSV := fs.Bool("csv", false, "print the query API's CSV (format=csv; with -all one header row); the next cursor goes to standard error")
	uid := fs.String("uid", "", "print this one recipient, by the uid the sender put in its URLs (the query API needs -visitor.secret)")
	key := fs.String("key", "", "print this one recipient, by its key (32 hex digits, the key column of a listing)")
	tenant := fs.String("tenant", "", "with -uid or -key and an operator's token: the recipient's tenant (default the campaign's one tenant)")
	recipientRange(fs)
	fs.Lookup("json").Usage = "print the query API's JSON answer as is (/v1/campaigns/{campaign}/recipients, see query/openapi.yaml), one line per page; with -uid or -key /v1/campaigns/{campaign}/recipients/{uid}"
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("recipients takes no argument, got %q", fs.Args())
	}
	set := setFlags(fs)
	one := *uid != "" || *key != ""
	var errs []error
	if *campaign == "" {
		errs = append(errs, errors.New("-campaign: give the campaign"))
	}
	if *uid != "" && *key != "" {
		errs = append(errs, errors.New("-uid and -key: give one of them"))
	}
	if *key != "" {
		errs = append(errs, checkKey(*key))
	}
	if one {
		for _, name := range []string{"filter", "limit", "cursor", "all", "cid", "csv"} {
			if set[name] {
				errs = append(errs, fmt.Errorf("-%s lists recipients: not with -uid or -key", name))
			}
		}
	} else {
		if set["tenant"] {
			errs = append(errs, errors.New("-tenant is for one recipient: give -uid or -key"))
		}
		if *limit < 1 || *limit > 10000 {
			errs = append(errs, fmt.Errorf("-limit=%d: use 1 to 10000", *limit))
		}
		if *asCSV && *api.asJSON {
			errs = append(errs, errors.New("-csv and -json: give one of them"))
		}
		errs = append(errs, oneOf("filter", *filter, "all", "opened", "clicked", "converted", "machine-only", "none"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	base := "/v1/campaigns/" + url.PathEscape(*campaign) + "/recipients"
	if one {
		q := url.Values{}
		id := *uid
		if *key != "" {
			id = *key
			q.Set("by", "key")
		}
		if set["tenant"] { // -tenant= (empty): content ids without a tenant
			q.Set("tenant", *tenant)
		}
		var rr query.RecipientResponse
		if printed, err := api.get(ctx, base+"/"+url.PathEscape(id), q, stdout, &rr); err != nil || printed {
			return err
		}
		printRecipient(stdout, &rr)
		return nil
	}

	q := url.Values{"filter": {*filter}, "limit": {strconv.Itoa(*limit)}}
	if *cid != "" {
		q.Set("cid", *cid)
	}
	if *asCSV {
		q.Set("format", "csv")
	}
	var first *query.RecipientsResponse
	var rows []query.RecipientJSON
	page, next := *cursor, ""
	for pages := 0; ; pages++ {
		q.Del("cursor")
		if page != "" {
			q.Set("cursor", page)
		}
		body, header, err := api.fetch(ctx, base, q)
		if err != nil {
			return err
		}
		if *asCSV {
			next = header.Get("X-Next-Cursor")
			if pages > 0 { // a later page of -all: the header row once
				_, body, _ = bytes.Cut(body, []byte("\n"))
			}
			if _, err := stdout.Write(body); err != nil {
				return err
			}
		} else {
			var rr query.RecipientsResponse
			if err := json.Unmarshal(body, &rr); err != nil {
				return fmt.Errorf("decode the answer: %w", err)
			}
			next = rr.NextCursor
			if *api.asJSON {
				if _, err := fmt.Fprintf(stdout, "%s\n", bytes.TrimRight(body, "\n")); err != nil {
					return err
				}
			} else {
				if first == nil {
					first = &rr
				}
				rows = append(rows, rr.Recipients...)
			}
		}
		if !*all || next == "" {
			break
		}
		if next == page {
			return fmt.Errorf("the query API answered cursor %q with the same next cursor", page)
		}
		page = next
	}
	switch {
	case *asCSV:
		if next != "" {
			fmt.Fprintf(stderr, "next cursor: %s (pass -cursor=%s for the next page, or -all for every page)\n", next, next)
		}
	case *api.asJSON:
	default:
		printRecipients(stdout, first, rows, next, *cursor != "")
	}
	return nil
}

// printRecipients prints a listing (continued: from a cursor): the range
// and filter, the freshness, a table of the recipients (the uid where the
// API shows it, else the key) and the next cursor, if any.
func printRecipients(w io.Writer, rr *query.RecipientsResponse, rows []query.RecipientJSON, next string, continued bool) {
	scope := rr.Campaign
	if rr.ContentID != "" {
		scope += " on " + rr.ContentID
	}
	fmt.Fprintf(w, "%s  [%s, %s)  filter %s, %d recipients\n", scope, rr.From, rr.To, rr.Filter, len(rows))
	printFreshness(w, &rr.Freshness)
	switch {
	case len(rows) == 0 && continued:
		fmt.Fprintln(w, "no more recipients")
	case len(rows) == 0:
		fmt.Fprintln(w, "no recipients in this range")
	default:
		// The recipient first, padded so it stays left-aligned; the links
		// last, as they come.
		width := len("recipient")
		for _, r := range rows {
			width = max(width, len(recipientName(r)))
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "%-*s\topens\tmachine opens\tfirst open\tlast open\tclicks\tmachine clicks\tconversions\trevenue\tviews\t  links\n", width, "recipient")
		for _, r := range rows {
			fmt.Fprintf(tw, "%-*s\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%s\t%d\t  %s\n", width, recipientName(r), r.Opens, r.MachineOpens, orDash(r.FirstOpen), orDash(r.LastOpen),
				r.Clicks, r.MachineClicks, r.Conversions, revenue(r.Revenue), r.Views, linkClicks(r.Links))
		}
		_ = tw.Flush()
	}
	if next != "" {
		fmt.Fprintf(w, "\nnext cursor: %s (pass -cursor=%s for the next page, or -all for every page)\n", next, next)
	}
}

// recipientName is the uid of a recipient when the API shows it, else its key.
func recipientName(r query.RecipientJSON) string {
	if r.UID != "" {
		return r.UID
	}
	return r.Key
}

func orDash(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

// revenue writes a recipient's revenue per currency, in currency order:
// "EUR 25.00 USD 10.00".
func revenue(m map[string]money.Sum) string {
	if len(m) == 0 {
		return "-"
	}
	curs := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(curs))
	for i, c := range curs {
		parts[i] = c + " " + m[c].Format(2)
	}
	return strings.Join(parts, " ")
}

// linkClicks writes a recipient's clicks per link: "https://a.example/ (2), ...".
func linkClicks(links []query.LinkClick) string {
	if len(links) == 0 {
		return "-"
	}
	parts := make([]string, len(links))
	for i, l := range links {
		parts[i] = l.Destination + " (" + strconv.FormatUint(l.Clicks, 10) + ")"
	}
	return strings.Join(parts, ", ")
}

// printRecipient prints one recipient's activity.
func printRecipient(w io.Writer, rr *query.RecipientResponse) {
	r := rr.Recipient
	fmt.Fprintf(w, "recipient %s of tenant %s in campaign %s  [%s, %s)\nkey %s\n", recipientName(r), tenantName(rr.Tenant), rr.Campaign, rr.From, rr.To, r.Key)
	printFreshness(w, &rr.Freshness)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "opens\t%d\tfirst %s\tlast %s\n", r.Opens, orDash(r.FirstOpen), orDash(r.LastOpen))
	fmt.Fprintf(tw, "machine opens\t%d\tfirst %s\tlast %s\n", r.MachineOpens, orDash(r.FirstMachineOpen), orDash(r.LastMachineOpen))
	fmt.Fprintf(tw, "clicks\t%d\t%s\n", r.Clicks, linkClicks(r.Links))
	fmt.Fprintf(tw, "machine clicks\t%d\n", r.MachineClicks)
	orders := make([]string, len(r.Orders))
	for i, o := range r.Orders {
		orders[i] = strings.TrimSpace(o.OrderID + " " + o.Value.Format(2) + " " + o.Currency)
	}
	if len(orders) > 0 {
		fmt.Fprintf(tw, "conversions\t%d\t%s\n", r.Conversions, strings.Join(orders, ", "))
	} else {
		fmt.Fprintf(tw, "conversions\t%d\n", r.Conversions)
	}
	fmt.Fprintf(tw, "revenue\t%s\n", revenue(r.Revenue))
	fmt.Fprintf(tw, "views\t%d\n", r.Views)
	_ = tw.Flush()
}

// cmdLinks prints a campaign's links: a person's clicks, the distinct
// recipients who clicked, and machines' clicks per destination.
func cmdLinks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := newAPIFlagSet("links", "", "pixelpipe links -url=http://127.0.0.1:8081 -token=$TOKEN -campaign=spring -from=2026-11-01 -to=2026-12-01", "/v1/campaigns/{campaign}/links")
	campaign := fs.String("campaign", "", "the campaign (required)")
	cid := fs.String("cid", "", "only this content id of the campaign")
	recipientRange(fs)
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("links takes no argument, got %q", fs.Args())
	}
	if *campaign == "" {
		return errors.New("-campaign: give the campaign")
	}
	q := url.Values{}
	if *cid != "" {
		q.Set("cid", *cid)
	}
	var lr query.LinksResponse
	if printed, err := api.get(ctx, "/v1/campaigns/"+url.PathEscape(*campaign)+"/links", q, stdout, &lr); err != nil || printed {
		return err
	}
	scope := lr.Campaign
	if lr.ContentID != "" {
		scope += " on " + lr.ContentID
	}
	fmt.Fprintf(stdout, "links of %s  [%s, %s)\n", scope, lr.From, lr.To)
	printFreshness(stdout, &lr.Freshness)
	if len(lr.Links) == 0 {
		_, err := fmt.Fprintln(stdout, "no clicks in this range")
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "clicks\tunique clickers\tmachine clicks\t  destination\n")
	for _, l := range lr.Links {
		fmt.Fprintf(tw, "%d\t%d\t%d\t  %s\n", l.Clicks, l.UniqueClickers, l.MachineClicks, l.Destination)
	}
	return tw.Flush()
}

// cmdEraseRecipient erases a recipient's activity (DELETE
// /v1/recipients/{uid}) and prints what was removed.
func cmdEraseRecipient(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("erase-recipient", "", "pixelpipe erase-recipient -url=http://127.0.0.1:8081 -token=$TOKEN -uid=ann@example.com\n"+
		"  pixelpipe erase-recipient -token=$OPERATOR_TOKEN -tenant=acme -key=5f0c6e2a9b1d4c3e8f7a6b5c4d3e2f10")
	api := &apiFlags{url: fs.String("url", "http://127.0.0.1:8081", "query API base URL"), token: flagenv.NewSecret("")}
	fs.Var(api.token, "token", "bearer token of the query API (PIXEL_TOKEN)")
	api.asJSON = fs.Bool("json", false, "print the query API's JSON answer (DELETE /v1/recipients/{uid}, see query/openapi.yaml) as is, on one line")
	uid := fs.String("uid", "", "the recipient, by the uid the sender put in its URLs (the query API needs -visitor.secret)")
	key := fs.String("key", "", "the recipient, by its key (32 hex digits, the key column of pixelpipe recipients)")
	tenant := fs.String("tenant", "", "the recipient's tenant; required with an operator's token, else the token's (-tenant= with no value: content ids without a tenant)")
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("erase-recipient takes no argument, got %q", fs.Args())
	}
	id, q := *uid, url.Values{}
	switch {
	case *uid == "" && *key == "":
		return errors.New("-uid or -key: give the recipient to erase")
	case *uid != "" && *key != "":
		return errors.New("-uid and -key: give one of them")
	case *key != "":
		if err := checkKey(*key); err != nil {
			return err
		}
		id = *key
		q.Set("by", "key")
	}
	if setFlags(fs)["tenant"] { // -tenant= (empty): content ids without a tenant
		q.Set("tenant", *tenant)
	}
	// The API erases, waits its grace (at most a minute) and erases again.
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	resp, err := api.send(rctx, http.MethodDelete, "/v1/recipients/"+url.PathEscape(id), q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read the query API's answer: %w", err)
	}
	if *api.asJSON {
		_, err := fmt.Fprintf(stdout, "%s\n", bytes.TrimRight(body, "\n"))
		return err
	}
	var er query.ErasureResponse
	if err := json.Unmarshal(body, &er); err != nil {
		return fmt.Errorf("decode the answer: %w", err)
	}
	name := *uid
	if name == "" {
		name = er.Key
	}
	_, err = fmt.Fprintf(stdout, "erased recipient %s of tenant %s (key %s) at %s: %d records removed (a record: its activity in one campaign, on one content id and day)\n",
		name, tenantName(er.Tenant), er.Key, er.ErasedAt, er.Removed)
	return err
}

// tenantName names a tenant in output: content ids without one have the
// tenant "".
func tenantName(t string) string {
	if t == "" {
		return "(none)"
	}
	return t
}

// checkKey checks a recipient key flag.
func checkKey(key string) error {
	if _, ok := hllstore.ParseRecipientKey(key); !ok {
		return fmt.Errorf("-key=%q: use the recipient's key, 32 hex digits (the key column of pixelpipe recipients)", key)
	}
	return nil
}

// setFlags returns the names of the flags set on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// fetch asks the query API for path with q and the range flags (ask) and
// returns the body of its answer and the answer's headers.
func (a *apiFlags) fetch(ctx context.Context, path string, q url.Values) ([]byte, http.Header, error) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	resp, err := a.ask(rctx, path, q)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("read the query API's answer: %w", err)
	}
	return body, resp.Header, nil
}
