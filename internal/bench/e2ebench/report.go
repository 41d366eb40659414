package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// printReport prints the tables of every binary, then the before/after.
func printReport(out io.Writer, cfg *config, reports []*binaryReport) {
	for _, rep := range reports {
		fmt.Fprintf(out, "\n== %s (%s) ==\n", rep.label, rep.bin)
		printThroughput(out, cfg, rep)
		printCPU(out, rep)
		printRedis(out, rep)
		printChecks(out, rep)
		if rep.kneeRan {
			if rep.knee > 0 {
				fmt.Fprintf(out, "knee: %d hits/s, the highest constant rate whose hit→visible p99 ≤ %v, with the backlog bounded and drained, every hit counted (%s)\n", rep.knee, cfg.kneeP99, rep.kneeNote)
			} else {
				fmt.Fprintf(out, "knee: below %d hits/s, the first step (%s)\n", cfg.kneeStart, rep.kneeNote)
			}
		}
	}
	if len(reports) == 2 {
		printBeforeAfter(out, reports[0], reports[1])
	}
	fmt.Fprintf(out, `
accepted: the edge's pixel_edge_hits_total{result="accepted"} over the scenario (load and markers).
counted: GET /v1/campaigns/e2e-<tag>/stats, every kind and class added up (the scenario's own campaign).
e2e hits/s: accepted ÷ (load start → the API shows every accepted hit). backlog@end: accepted − the
aggregator's applied events when the load ended, in seconds of the accepted rate; bounded when ≤ %v.
hit→visible: a marker hit every %v during the load, polled on GET /v1/stats/{cid} every ~50 ms.
HTTP p50/p99: as the load generator measured (wrk: closed loop; vegeta: from each request's send).
CPU per hit: utime+stime over load start → all visible (kafka, redis: shared processes; loadgen and
harness are the load generator's and this program's, not part of the pipeline).
`, cfg.lagBound, cfg.markerEvery)
}

func dash(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	if d < time.Second {
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func printThroughput(out io.Writer, cfg *config, rep *binaryReport) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\toffered/s\tsent/s\taccepted\tcounted\texact\te2e hits/s\tall visible\tbacklog@end\tlag\tvisible p50\tvisible p99\tmarkers\tHTTP p50\tHTTP p99\terrors\tnote\t")
	for _, r := range rep.results {
		if r.skipped != "" {
			fmt.Fprintf(tw, "%s\t-\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t%s\t\n", r.name, r.skipped)
			continue
		}
		exact := "NO"
		if r.exact() {
			exact = "yes"
		}
		lag := "UNBOUNDED"
		switch {
		case !r.backlogKnown:
			lag = "?"
		case r.lagBounded(cfg.lagBound):
			lag = "bounded"
		}
		visible := "never"
		if r.drained {
			visible = fmt.Sprintf("%.2fs", r.visibleAfter.Seconds())
		}
		// A load sent below the rate asked measured the load generator
		// (vegeta) or a slow edge (paced wrk), not the pipeline at that rate.
		note := ""
		if r.gen.offered > 0 && r.gen.rps < 0.95*r.gen.offered {
			note = fmt.Sprintf("%s sent %.0f%% of offered", r.gen.tool, 100*r.gen.rps/r.gen.offered)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%d\t%s\t%s\t%s\t%.2fs\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\t\n",
			r.name, dash(r.gen.offered, "%.0f"), r.gen.rps, r.accepted, r.counted, exact, dash(r.e2eRate(), "%.0f"), visible,
			r.lagEnd(), lag, ms(r.markers.quantile(0.5)), ms(r.markers.quantile(0.99)), len(r.markers.latencies),
			ms(r.gen.p50), ms(r.gen.p99), r.gen.errors, note)
	}
	tw.Flush()
}

func printCPU(out io.Writer, rep *binaryReport) {
	fmt.Fprintln(out, "\nCPU per accepted hit (µs):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tedge\tprocessor\taggregator\tquery\tkafka\tredis\tpipeline\tcores busy\t|\tloadgen\tharness\t")
	for _, r := range rep.results {
		if r.skipped != "" || len(r.cpu) == 0 {
			continue
		}
		var total time.Duration
		fmt.Fprintf(tw, "%s\t", r.name)
		for _, c := range r.cpu {
			total += c.cpu
			if !c.found {
				fmt.Fprint(tw, "n/a\t")
				continue
			}
			fmt.Fprintf(tw, "%.2f\t", r.perHit(c.cpu))
		}
		fmt.Fprintf(tw, "%.2f\t%.2f\t|\t%.2f\t%.2f\t\n", r.perHit(total), total.Seconds()/r.window.Seconds(), r.perHit(r.gen.cpu), r.perHit(r.harnessCPU))
	}
	tw.Flush()
}

func printRedis(out io.Writer, rep *binaryReport) {
	fmt.Fprintln(out, "\nRedis commands per accepted hit (INFO commandstats over the window; commands run by scripts count under their own name too):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tcalls/hit\tRedis µs/hit\ttop commands: calls/hit (µs/call)\t")
	for _, r := range rep.results {
		if r.skipped != "" || r.redisCalls == nil {
			continue
		}
		type kv struct {
			name string
			cmdStat
		}
		var all []kv
		var calls, usec int64
		for k, v := range r.redisCalls {
			all = append(all, kv{k, v})
			calls += v.calls
			if !isScript(k) { // a script's µs include its commands'
				usec += v.usec
			}
		}
		slices.SortFunc(all, func(a, b kv) int { return int(b.calls - a.calls) })
		var top []string
		for _, c := range all[:min(len(all), 8)] {
			top = append(top, fmt.Sprintf("%s %.4f (%.1f)", c.name, float64(c.calls)/r.accepted, float64(c.usec)/float64(c.calls)))
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%.2f\t%s\t\n", r.name, float64(calls)/r.accepted, float64(usec)/r.accepted, strings.Join(top, ", "))
	}
	tw.Flush()
}

func isScript(cmd string) bool {
	return strings.HasPrefix(cmd, "eval") || strings.HasPrefix(cmd, "fcall")
}

func printChecks(out io.Writer, rep *binaryReport) {
	fmt.Fprintln(out)
	for _, r := range rep.results {
		if r.skipped != "" {
			continue
		}
		human := 0.0
		if r.counted > 0 {
			human = 100 * float64(r.human) / float64(r.counted)
		}
		cross := fmt.Sprintf("Σ GET /v1/stats/{cid} over %d content ids = %d", r.crossN, r.crossSum)
		if r.crossErr != nil {
			cross += fmt.Sprintf(" (stopped: %v)", r.crossErr)
		}
		fmt.Fprintf(out, "%s: %d requests by %s in %.2fs (until its last answer), %.0f invalid, %.0f dropped at the edge; backlog at most %.0f hits during the load; %.1f%% counted as human; %s; markers sent %d (send errors %d), unseen %d, over-counted %d; API polls: %d campaign, %d marker\n",
			r.name, r.gen.requests, r.gen.tool, r.loadTime.Seconds(), r.invalid, r.dropped, r.backlogMax, human, cross,
			len(r.markers.cids), r.markers.sendErrors, r.markers.unseen, r.markers.overcount, r.apiPolls, r.markerPolls)
		if r.failure != "" {
			fmt.Fprintf(out, "  FAILED: %s\n", r.failure)
		}
		if r.kneeWhy != "" {
			fmt.Fprintf(out, "  knee step failed: %s\n", r.kneeWhy)
		}
	}
}

func printBeforeAfter(out io.Writer, cur, base *binaryReport) {
	fmt.Fprintf(out, "\n== %s vs %s (same scenarios, same run) ==\n", cur.label, base.label)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\te2e hits/s %s\te2e hits/s %s\tratio\tpipeline CPU/hit %s\t%s\tratio\tvisible p99 %s\t%s\t\n", cur.label, base.label, cur.label, base.label, cur.label, base.label)
	for _, a := range cur.results {
		for _, b := range base.results {
			if a.tag != b.tag || a.skipped != "" || b.skipped != "" {
				continue
			}
			pa, pb := pipelineCPU(a), pipelineCPU(b)
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%.2fµs\t%.2fµs\t%s\t%s\t%s\t\n", a.name, a.e2eRate(), b.e2eRate(), ratio(a.e2eRate(), b.e2eRate()),
				pa, pb, ratio(pa, pb), ms(a.markers.quantile(0.99)), ms(b.markers.quantile(0.99)))
		}
	}
	tw.Flush()
	if cur.kneeRan && base.kneeRan {
		fmt.Fprintf(out, "knee: %s %d hits/s, %s %d hits/s\n", cur.label, cur.knee, base.label, base.knee)
	}
}

func pipelineCPU(r *result) float64 {
	var t time.Duration
	for _, c := range r.cpu {
		t += c.cpu
	}
	return r.perHit(t)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}
