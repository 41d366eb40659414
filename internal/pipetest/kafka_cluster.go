package pipetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
)

// kafkaClusterNodes is the size of a KafkaCluster.
const kafkaClusterNodes = 3

// KafkaCluster is a Kafka cluster of three nodes of one test's own, each a
// broker and a controller (a controller quorum of three), for fault tests
// that kill or restart brokers: never the shared broker other tests use. It
// is started by deploy/local/services.sh (kafka-cluster-up) with its run
// folder in the test's temporary folder and on free ports; its topics have
// three replicas, of which two must have a write before it is acknowledged,
// and unclean leader election is off. Node n (1-3) is Nodes[n-1]; its
// broker id is n.
type KafkaCluster struct {
	Nodes []*Broker
}

// PrivateKafkaCluster starts a private cluster and creates the pipeline's
// topics on it (production partition counts, random prefix, replication
// factor 3, min.insync.replicas 2).
func PrivateKafkaCluster(t testing.TB) (*KafkaCluster, kafkaconn.Config, Topics) {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	const controllerOffset = 100 // the script's default distance
	base := consecutivePorts(t, kafkaClusterNodes, controllerOffset, "a private Kafka cluster")
	runDir := t.TempDir()
	env := append(os.Environ(),
		"PIXEL_RUN_DIR="+runDir,
		"PIXEL_KAFKA_CLUSTER_PORT="+strconv.Itoa(base),
		"PIXEL_KAFKA_CLUSTER_CONTROLLER_PORT="+strconv.Itoa(base+controllerOffset),
	)
	script := filepath.Join(root, "deploy", "local", "services.sh")
	c := &KafkaCluster{}
	kc := kafkaconn.Config{ReplicationFactor: kafkaClusterNodes}
	for n := 1; n <= kafkaClusterNodes; n++ {
		b := &Broker{
			Addr:    "127.0.0.1:" + strconv.Itoa(base+n-1),
			script:  script,
			runDir:  runDir,
			env:     env,
			up:      []string{"kafka-node-up", strconv.Itoa(n)},
			pidFile: filepath.Join(runDir, "kafka-cluster", strconv.Itoa(n)+".pid"),
			logFile: filepath.Join(runDir, "kafka-cluster", strconv.Itoa(n)+".log"),
			started: true, // started below, by the cluster's command
		}
		b.cleanup(t)
		c.Nodes = append(c.Nodes, b)
		kc.Brokers = append(kc.Brokers, b.Addr)
	}
	c.Nodes[0].run(t, "kafka-cluster-up")
	return c, kc, createTopics(t, kc)
}

// Node returns node n (1-3).
func (c *KafkaCluster) Node(n int) *Broker { return c.Nodes[n-1] }

// PartitionState is a partition's leader and in-sync replicas (broker ids).
type PartitionState struct {
	Partition int
	Leader    int
	ISR       []int
}

// Partitions returns the state of topic's partitions as the cluster's
// metadata tells it, asking the nodes in turn until one answers.
func (c *KafkaCluster) Partitions(t testing.TB, topic string) []PartitionState {
	t.Helper()
	var lastErr error
	for range 3 {
		for _, b := range c.Nodes {
			client := &kafka.Client{Addr: kafka.TCP(b.Addr), Timeout: 5 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
			cancel()
			if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil {
				var out []PartitionState
				for _, p := range md.Topics[0].Partitions {
					ps := PartitionState{Partition: p.ID, Leader: p.Leader.ID}
					for _, r := range p.Isr {
						ps.ISR = append(ps.ISR, r.ID)
					}
					out = append(out, ps)
				}
				return out
			}
			if err == nil {
				err = fmt.Errorf("metadata of %s: %+v", topic, md.Topics)
			}
			lastErr = err
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("no node of the private Kafka cluster told the partitions of %s: %v", topic, lastErr)
	return nil
}

// Leader returns the broker id leading most of topic's partitions (the
// lowest id on a tie), preferring one that is not avoid if that one leads
// any.
func (c *KafkaCluster) Leader(t testing.TB, topic string, avoid int) int {
	t.Helper()
	led := map[int]int{}
	for _, p := range c.Partitions(t, topic) {
		led[p.Leader]++
	}
	best := 0
	for id := 1; id <= kafkaClusterNodes; id++ {
		if id != avoid && led[id] > led[best] {
			best = id
		}
	}
	if best == 0 && led[avoid] > 0 {
		best = avoid
	}
	if best == 0 {
		t.Fatalf("no partition of %s has a leader", topic)
	}
	return best
}

// WaitInSync waits until every partition of topics has a leader and all
// three replicas in sync (a restarted broker has caught up), and returns how
// long that took.
func (c *KafkaCluster) WaitInSync(t testing.TB, timeout time.Duration, topics ...string) time.Duration {
	t.Helper()
	start := time.Now()
	Eventually(t, timeout, func() string {
		for _, topic := range topics {
			for _, p := range c.Partitions(t, topic) {
				if p.Leader <= 0 || len(p.ISR) < kafkaClusterNodes {
					return fmt.Sprintf("%s/%d: leader %d, in sync %v", topic, p.Partition, p.Leader, p.ISR)
				}
			}
		}
		return ""
	})
	return time.Since(start)
}

// String lists the nodes' addresses.
func (c *KafkaCluster) String() string {
	addrs := make([]string, len(c.Nodes))
	for i, b := range c.Nodes {
		addrs[i] = b.Addr
	}
	return strings.Join(addrs, ",")
}
