package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"time"
)

// cmdExport writes a series, a top list or a breakdown over a range as CSV
// or NDJSON, as the query API exports it (format=csv|ndjson).
func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := newAPIFlagSet("export", "series|top|breakdown [CONTENT_ID | CAMPAIGN]",
		"pixelpipe export -token=$TOKEN -from=2026-11-01 -to=2026-12-01 -granularity=day series acme:article-7 > article-7.csv\n"+
			"  pixelpipe export -format=ndjson -campaign series spring\n"+
			"  pixelpipe export -dimension=country -n=100 -o=countries.csv breakdown acme:article-7\n"+
			"  pixelpipe export -by=views -n=100 top", "")
	format := fs.String("format", "csv", "csv (a header row, then one row per point or item) or ndjson (one JSON object per line)")
	out := fs.String("o", "", "write to this file instead of standard output")
	campaign := fs.Bool("campaign", false, "series: the argument is a campaign, not a content id")
	granularity := fs.String("granularity", "hour", "series: bucket length, hour (at most 31 days) or day")
	kind := fs.String("kind", "view", "series: the kind whose unique visitors each bucket shows; top: the kind ranked; breakdown: the kind broken down: view, impression, click, conversion, open, custom, session (visits: series only)")
	class := fs.String("class", "human", "series: traffic class: human, bot, machine or unverified")
	by := fs.String("by", "uniques", "top: order by human unique visitors (uniques) or human views (views)")
	dimension := fs.String("dimension", "country", "breakdown: country, device, browser, os, source (referrer class), referrer (domain), utm_source, utm_medium, utm_campaign, page, landing (a session's first page), destination (a click's link; with -kind=click) or prop (custom properties, key=value; with -kind=custom for custom events)")
	n := limitFlag(fs, "content ids (top) or values (breakdown)")
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if err := oneOf("format", *format, "csv", "ndjson"); err != nil {
		return err
	}
	q := url.Values{"format": {*format}}
	var path string
	switch report := fs.Arg(0); report {
	case "series":
		if fs.NArg() != 2 || fs.Arg(1) == "" {
			return errors.New("export series takes one content id (or a campaign with -campaign)")
		}
		if err := errors.Join(oneOf("granularity", *granularity, "hour", "day"),
			oneOf("kind", *kind, kindNames...),
			oneOf("class", *class, "human", "bot", "machine", "unverified")); err != nil {
			return err
		}
		path = "/v1/series/" + url.PathEscape(fs.Arg(1))
		if *campaign {
			path = "/v1/campaigns/" + url.PathEscape(fs.Arg(1)) + "/series"
		}
		q.Set("granularity", *granularity)
		q.Set("kind", *kind)
		q.Set("class", *class)
	case "top":
		if fs.NArg() != 1 {
			return fmt.Errorf("export top takes no id, got %q", fs.Args()[1:])
		}
		if err := errors.Join(oneOf("by", *by, "uniques", "views"), eventKind(*kind, "top lists do not rank visits"), checkLimit(*n)); err != nil {
			return err
		}
		path = "/v1/top"
		q.Set("by", *by)
		q.Set("kind", *kind)
		q.Set("limit", strconv.Itoa(*n))
	case "breakdown":
		if fs.NArg() != 2 || fs.Arg(1) == "" {
			return errors.New("export breakdown takes one content id")
		}
		if err := errors.Join(oneOf("dimension", *dimension, breakdownDims...), eventKind(*kind, "visits have no breakdowns (-dimension=landing breaks views down by landing page)"), checkLimit(*n)); err != nil {
			return err
		}
		path = "/v1/breakdowns/" + url.PathEscape(fs.Arg(1))
		q.Set("dimension", *dimension)
		q.Set("kind", *kind)
		q.Set("limit", strconv.Itoa(*n))
	default:
		fs.Usage()
		return fmt.Errorf("export what? give series, top or breakdown, got %q", report)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	resp, err := api.ask(rctx, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("write the export: %w", err)
	}
	if *out != "" {
		if err := w.(*os.File).Close(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s (counts %s up to %s)\n", *out, resp.Header.Get("X-Counts-Status"), resp.Header.Get("X-Counts-Complete-Until"))
	}
	return nil
}
