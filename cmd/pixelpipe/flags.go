package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pixelpipe/pixelpipe/internal/flagenv"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/redisconn"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// common holds the flags most commands share.
type common struct {
	logLevel      string
	adminAddr     string
	brokers       string
	replication   int
	topicPrefix   string
	redisAddr     string
	redisPrefix   string
	visitorSecret *flagenv.Secret
}

// newFlagSet returns the flag set of a command whose usage line is
// "pixelpipe NAME [flags] ARGS" and whose help shows example.
func newFlagSet(name, args, example string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if args != "" {
		args = " " + args
	}
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: pixelpipe %s [flags]%s\n\nexample:\n  %s\n\nflags (each also read from PIXEL_<NAME>, e.g. -kafka.brokers is PIXEL_KAFKA_BROKERS):\n", name, args, example)
		fs.PrintDefaults()
	}
	return fs
}

func (c *common) bindLog(fs *flag.FlagSet) {
	fs.StringVar(&c.logLevel, "log.level", "info", "log level: debug, info, warn or error; logs are JSON lines on stdout")
}

func (c *common) bindAdmin(fs *flag.FlagSet, def string) {
	fs.StringVar(&c.adminAddr, "admin.listenAddr", def, "address of /metrics, /healthz, /readyz and /debug/pprof; keep it off the public network")
}

func (c *common) bindKafka(fs *flag.FlagSet) {
	fs.StringVar(&c.brokers, "kafka.brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap brokers, host:port")
	fs.StringVar(&c.topicPrefix, "kafka.topicPrefix", "", "prefix of every topic name, to run several pipelines on one cluster (all parts of a pipeline must agree)")
	fs.IntVar(&c.replication, "kafka.replicationFactor", 1, "replication factor of topics this command creates; use 3 on a real cluster (min.insync.replicas is set to one less)")
}

func (c *common) bindRedis(fs *flag.FlagSet) {
	fs.StringVar(&c.redisAddr, "redis.addr", "127.0.0.1:6379", "Redis address: host:port of a single server, or a Redis Cluster as host:port,host:port,... or "+redisconn.ClusterScheme+"host:port[,host:port...] (seed nodes; one is enough)")
	fs.StringVar(&c.redisPrefix, "redis.keyPrefix", "pp", "prefix of every Redis key, without { or } (they would change the keys' cluster hash tags); every part of a pipeline must agree")
}

// redis returns the parsed -redis.addr, after checking -redis.keyPrefix.
func (c *common) redis() (redisconn.Addr, error) {
	if strings.ContainsAny(c.redisPrefix, "{}") {
		return redisconn.Addr{}, fmt.Errorf("redis.keyPrefix %q: must not contain { or }: keys that a script writes together share the hash tag in braces after the prefix", c.redisPrefix)
	}
	a, err := redisconn.Parse(c.redisAddr)
	if err != nil {
		return redisconn.Addr{}, fmt.Errorf("redis.addr: %w", err)
	}
	return a, nil
}

func (c *common) bindVisitor(fs *flag.FlagSet) {
	c.visitorSecret = flagenv.NewSecret("")
	fs.Var(c.visitorSecret, "visitor.secret", "secret keying visitor hashes and the daily cookieless salt; every edge and processor must share it (required)")
}

func (c *common) kafka() kafkaconn.Config {
	return kafkaconn.Config{Brokers: kafkaconn.ParseBrokers(c.brokers), ReplicationFactor: c.replication}
}

// topic returns the name of a pipeline topic with the configured prefix.
func (c *common) topic(name string) string { return c.topicPrefix + name }

// topicSpecs returns the pipeline's topics with the configured prefix.
func (c *common) topicSpecs() []schemas.TopicSpec {
	specs := schemas.Topics()
	for i := range specs {
		specs[i].Name = c.topic(specs[i].Name)
	}
	return specs
}

// parse parses args (and PIXEL_* variables) into fs. Help asked for with
// -h or --help goes to stdout, so it can be paged; the usage shown for a
// wrong flag, and any later fs.Usage call, go to stderr.
func parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := flagenv.Parse(fs, args, nil)
	fs.SetOutput(stderr)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = stdout.Write(buf.Bytes())
	} else {
		_, _ = stderr.Write(buf.Bytes())
	}
	return err
}
