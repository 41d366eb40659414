package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/query"
)

// cmdAudit prints the completeness audit: per edge node, what it accepted
// and what became of it, and the numbers missing.
func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, api := newAPIFlagSet("audit", "", "pixelpipe audit -url=http://127.0.0.1:8081 -token=$OPERATOR_TOKEN -minutes -from=2026-11-02T09:00:00Z -to=2026-11-02T10:00:00Z", "/v1/audit")
	node := fs.String("node", "", "only this edge node")
	group := fs.String("group", "", "the processors' consumer group (default the query server's -query.auditGroup)")
	minutes := fs.Bool("minutes", false, "print each node's figures per minute too")
	strict := fs.Bool("strict", false, "exit with an error when any hit is missing or not yet counted (for monitoring)")
	fs.Lookup("from").Usage = "start of the receive-time range, inclusive: YYYY-MM-DD or RFC 3339; default an hour ago"
	fs.Lookup("to").Usage = "end, exclusive, at most 8 days after -from; default the end of the current minute"
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("audit takes no argument, got %q", fs.Args())
	}
	q := url.Values{}
	if *node != "" {
		q.Set("node", *node)
	}
	if *group != "" {
		q.Set("group", *group)
	}
	var a query.AuditResponse
	if printed, err := api.get(ctx, "/v1/audit", q, stdout, &a); err != nil || printed {
		return err
	}
	if a.Report == nil {
		return fmt.Errorf("the query API's audit answer has no figures")
	}
	counted := "unknown (no aggregator watermark)"
	if a.CountedUntil != nil {
		counted = a.CountedUntil.Format(time.RFC3339Nano)
	}
	fmt.Fprintf(stdout, "audit of processor group %s, hits received in [%s, %s)\ncounted until %s\n\n",
		a.Group, a.From.Format(time.RFC3339), a.To.Format(time.RFC3339), counted)
	if len(a.Nodes) == 0 {
		fmt.Fprintln(stdout, "no hits in this range")
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "accepted\tcounted\tnot yet\tdead-lettered\tmissing\tduplicates\tunsequenced\t  node\n")
		row := func(t audit.Totals, name string) {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t  %s\n", t.Accepted, t.Counted, t.NotYetCounted, t.DeadLettered, t.Missing, t.Duplicates, t.Unsequenced, name)
		}
		for _, n := range a.Nodes {
			row(n.Totals, n.Node)
		}
		if len(a.Nodes) > 1 {
			row(a.Totals, "(all)")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if *minutes {
			for _, n := range a.Nodes {
				fmt.Fprintf(stdout, "\n%s per minute\n", n.Node)
				tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
				fmt.Fprint(tw, "accepted\tcounted\tnot yet\tdead-lettered\tmissing\tduplicates\t  minute\n")
				for _, m := range n.Minutes {
					fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t  %s\n", m.Accepted, m.Counted, m.NotYetCounted, m.DeadLettered, m.Missing, m.Duplicates, m.Minute.Format("2006-01-02T15:04Z"))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
		}
		for _, n := range a.Nodes {
			if len(n.Missing) == 0 {
				continue
			}
			fmt.Fprintf(stdout, "\nmissing from %s (numbers of its lanes that never arrived; received before the time given):\n", n.Node)
			for _, m := range n.Missing {
				fmt.Fprintf(stdout, "  partition %d, boot %s: %d-%d (%d hits) before %s\n", m.Partition,
					time.UnixMilli(m.BootMs).UTC().Format(time.RFC3339), m.FromSeq, m.ToSeq, m.ToSeq-m.FromSeq+1, m.Before.Format(time.RFC3339Nano))
			}
		}
	}
	if *strict && (a.Missing > 0 || a.NotYetCounted > 0) {
		return fmt.Errorf("%d hits missing, %d not yet counted", a.Missing, a.NotYetCounted)
	}
	return nil
}
