package query

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Exports: the series, top and breakdown routes answer JSON by default;
// format=csv gives the same rows as a CSV table with a header row, and
// format=ndjson one JSON object per line (a point or an item), for
// spreadsheets and data pipelines. Both come as attachments named after
// the route, the id and the range. Their freshness travels in the headers
// X-Counts-Status (complete, partial, unknown) and X-Counts-Complete-Until.
type format int

const (
	formatJSON format = iota
	formatCSV
	formatNDJSON
)

// formatParam reads format; it answers 400 for an unknown one.
func formatParam(w http.ResponseWriter, r *http.Request) (format, bool) {
	switch v := r.URL.Query().Get("format"); v {
	case "", "json":
		return formatJSON, true
	case "csv":
		return formatCSV, true
	case "ndjson":
		return formatNDJSON, true
	default:
		writeError(w, http.StatusBadRequest, "bad format "+quote(v)+": use json, csv or ndjson")
		return 0, false
	}
}

// writeRows answers rows as CSV (header, then row(item) per item) or as
// NDJSON (each item as a JSON object), as an attachment named name.
func writeRows[T any](w http.ResponseWriter, f format, name string, fresh FreshnessBody, header []string, items []T, row func(T) []string) {
	h := w.Header()
	h.Set("X-Counts-Status", fresh.Status)
	if fresh.CompleteUntil != nil {
		h.Set("X-Counts-Complete-Until", *fresh.CompleteUntil)
	}
	ext := ".csv"
	if f == formatNDJSON {
		ext = ".ndjson"
		h.Set("Content-Type", "application/x-ndjson")
	} else {
		h.Set("Content-Type", "text/csv; charset=utf-8")
	}
	h.Set("Content-Disposition", `attachment; filename="`+fileName(name)+ext+`"`)
	w.WriteHeader(http.StatusOK)
	if f == formatNDJSON {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, it := range items {
			if err := enc.Encode(it); err != nil {
				return // the client went away
			}
		}
		return
	}
	cw := csv.NewWriter(w)
	_ = cw.Write(header)
	for _, it := range items {
		_ = cw.Write(row(it))
	}
	cw.Flush()
}

// cell makes a text value safe to open in a spreadsheet: one that starts
// with = + - @ or a tab or carriage return would be read as a formula, so it
// gets a leading apostrophe.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

// fileName keeps the characters of name that are safe in a file name
// everywhere; others become '_'.
func fileName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// shareHeader and shareRow are the CSV columns of top and breakdown items;
// keyName names the first column.
func shareRow(it ShareItem) []string {
	return []string{cell(it.Key), u64(it.Total), u64(it.Uniques), u64(it.UniquesBound)}
}

func shareHeader(keyName string) []string {
	return []string{keyName, "total", "uniques", "uniques_bound"}
}

// seriesHeader and seriesRow are the CSV columns of series points; visits
// come last, so the columns that were there before them keep their places.
var seriesHeader = []string{"start", "impressions", "views", "clicks", "conversions", "opens", "custom", "uniques", "uniques_bound", "visits"}

func seriesRow(p SeriesPoint) []string {
	return []string{p.Start, u64(p.Impressions), u64(p.Views), u64(p.Clicks), u64(p.Conversions), u64(p.Opens), u64(p.Custom), u64(p.Uniques), u64(p.UniquesBound), u64(p.Visits)}
}

// rangeName is a range in a file name: 20261101-20261201, or with hours
// when the range does not fall on days (20261101T13-20261101T18).
func rangeName(from, to time.Time) string {
	layout := "20060102"
	if from.UTC().Hour() != 0 || to.UTC().Hour() != 0 {
		layout = "20060102T15"
	}
	return from.UTC().Format(layout) + "-" + to.UTC().Format(layout)
}
