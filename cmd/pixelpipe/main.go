// Command pixelpipe runs the parts of the pipeline: each part alone against
// real Kafka and Redis (edge, processor, aggregator, query), all of them in one
// process on embedded services (dev), plus tools (topics, loadgen, and
// stats, tail, sign and snippet for people at a terminal).
//
// Every flag can also be set by an environment variable: flag a.bCd is
// PIXEL_A_BCD. A flag on the command line wins over the variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"dev", "everything in one process on an embedded Kafka broker and Redis, for trying it out", cmdDev},
		{"edge", "the public pixel server, publishing hits to Kafka", cmdEdge},
		{"processor", "validate and enrich hits into events", cmdProcessor},
		{"aggregator", "count events into Redis (totals and HyperLogLog uniques)", cmdAggregator},
		{"query", "the HTTP API over the counts", cmdQuery},
		{"topics", "create the pipeline's topics (idempotent)", cmdTopics},
		{"loadgen", "send pixel hits over HTTP at a fixed rate, for demos and load tests", cmdLoadgen},
		{"stats", "print the counts of a content id or campaign from the query API", cmdStats},
		{"series", "print a content id's or campaign's counts per hour or day from the query API", cmdSeries},
		{"top", "print the content ids with the most human uniques or views from the query API", cmdTop},
		{"breakdown", "print a content id's human views by country, device, browser, OS or source", cmdBreakdown},
		{"export", "write a series, a top list or a breakdown over a range as CSV or NDJSON, from the query API", cmdExport},
		{"recipients", "print who opened, clicked and converted in an e-mail campaign, per recipient, from the query API", cmdRecipients},
		{"links", "print an e-mail campaign's links: clicks, unique clickers and machine clicks per destination", cmdLinks},
		{"erase-recipient", "erase a recipient's activity in every campaign of its tenant, through the query API", cmdEraseRecipient},
		{"audit", "print the completeness audit from the query API: per edge node, hits accepted, counted, dead-lettered, missing", cmdAudit},
		{"tail", "print a pipeline topic as JSON lines (protojson), e.g. pixelpipe tail events", cmdTail},
		{"sign", "make a signed click URL, or a signed pixel URL", cmdSign},
		{"snippet", "print the <img>, script, noscript, email and AMP snippets of a content id", cmdSnippet},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		go forceExitOnSecondSignal(ctx, stderr)
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		default:
			fmt.Fprintf(stderr, "pixelpipe %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "pixelpipe: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// forceExitOnSecondSignal exits at once on a second SIGTERM/SIGINT, for an
// operator who does not want to wait for the drain.
func forceExitOnSecondSignal(ctx context.Context, stderr io.Writer) {
	<-ctx.Done()
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
	fmt.Fprintln(stderr, "pixelpipe: second signal, exiting without draining")
	os.Exit(1)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: pixelpipe COMMAND [flags]   (pixelpipe COMMAND -h for its flags)")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-15s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nexample: pixelpipe dev   (then open the printed pixel and stats URLs)")
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log.level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}
