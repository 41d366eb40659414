package pipetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// Broker is an Apache Kafka node of one test's own (a single node, or one
// of a KafkaCluster), for fault tests that stop, kill or pause a broker:
// never the shared one other tests use. It is started by deploy/local/services.sh with its run folder (pidfile,
// log, data) in the test's temporary folder and on free ports, and it is
// killed on cleanup. Only the process this Broker started is ever signalled,
// by the PID the script recorded.
type Broker struct {
	Addr    string
	script  string
	runDir  string
	env     []string
	up      []string // the script's arguments that start it
	pidFile string
	logFile string
	started bool // Start succeeded once: later starts are restarts
}

// PrivateKafka starts a private broker and creates the pipeline's topics on
// it (production partition counts, random prefix).
func PrivateKafka(t testing.TB) (*Broker, kafkaconn.Config, Topics) {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	runDir := t.TempDir()
	b := &Broker{
		Addr:    "127.0.0.1:" + strconv.Itoa(ports[0]),
		script:  filepath.Join(root, "deploy", "local", "services.sh"),
		runDir:  runDir,
		up:      []string{"kafka-up"},
		pidFile: filepath.Join(runDir, "kafka.pid"),
		logFile: filepath.Join(runDir, "kafka.log"),
	}
	b.env = append(os.Environ(),
		"PIXEL_RUN_DIR="+b.runDir,
		"PIXEL_KAFKA_PORT="+strconv.Itoa(ports[0]),
		"PIXEL_KAFKA_CONTROLLER_PORT="+strconv.Itoa(ports[1]),
		"PIXEL_KAFKA_HEAP=-Xms128m -Xmx512m",
	)
	b.cleanup(t)
	b.Start(t)
	kc := kafkaconn.Config{Brokers: []string{b.Addr}}
	return b, kc, createTopics(t, kc)
}

// cleanup kills the broker when the test ends and, when the test failed,
// logs what the broker said.
func (b *Broker) cleanup(t testing.TB) {
	t.Cleanup(func() {
		if pid := b.pid(); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, 30*time.Second)
		}
	})
	// Registered after the kill above, so it runs first: a failed test
	// shows what the broker said (recovery, stray logs, errors) before
	// its folder is removed.
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(b.logFile)
			t.Logf("private Kafka %s failed the test; its log's notable lines:\n%s", b.Addr, notable(log, 60))
		}
	})
}

// createTopics creates the pipeline's topics (production partition counts,
// random prefix) with kc's replication factor.
func createTopics(t testing.TB, kc kafkaconn.Config) Topics {
	t.Helper()
	id := "t" + randomID() + "."
	tp := Topics{Hits: id + schemas.TopicHits, Events: id + schemas.TopicEvents, Sessions: id + schemas.TopicSessions, Counts: id + schemas.TopicCounts, DLQ: id + schemas.TopicDLQ}
	var specs []schemas.TopicSpec
	for _, s := range schemas.Topics() {
		s.Name = id + s.Name
		specs = append(specs, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kafkaconn.EnsureTopics(ctx, kc, specs); err != nil {
		t.Fatalf("create topics on private Kafka %v: %v", kc.Brokers, err)
	}
	return tp
}

// Start starts the broker (again, on the same data) and waits until it
// serves.
func (b *Broker) Start(t testing.TB) {
	t.Helper()
	out := b.run(t, b.up...)
	// A restart must keep the topics: the script's fallback of a fresh data
	// dir would make a fault test fail for a reason that is not the edge's.
	if b.started && strings.Contains(out, "wiping Kafka data dir") {
		t.Fatalf("private Kafka on %s restarted on a wiped data dir:\n%s", b.Addr, out)
	}
	b.started = true
}

// run runs deploy/local/services.sh with args in the broker's environment
// and returns what it printed.
func (b *Broker) run(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(b.script, args...)
	cmd.Env = b.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(b.logFile)
		t.Fatalf("services.sh %s for private Kafka %s: %v\n%s\n--- broker log tail:\n%s", strings.Join(args, " "), b.Addr, err, out, tail(log, 3000))
	}
	return string(out)
}

// Kill stops the broker with SIGKILL and waits until it is gone.
func (b *Broker) Kill(t testing.TB) { b.signal(t, syscall.SIGKILL, true) }

// Stop stops the broker with SIGTERM (a controlled shutdown: it hands its
// partitions' leadership over first) and waits until it is gone.
func (b *Broker) Stop(t testing.TB) { b.signal(t, syscall.SIGTERM, true) }

// Pause stops the broker's process with SIGSTOP (a hung broker: connections
// stay open, nothing answers); Resume continues it.
func (b *Broker) Pause(t testing.TB)  { b.signal(t, syscall.SIGSTOP, false) }
func (b *Broker) Resume(t testing.TB) { b.signal(t, syscall.SIGCONT, false) }

func (b *Broker) signal(t testing.TB, sig syscall.Signal, wait bool) {
	t.Helper()
	pid := b.pid()
	if pid <= 0 {
		t.Fatalf("private Kafka on %s: no pid recorded in %s", b.Addr, b.runDir)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("signal %v to private Kafka pid %d: %v", sig, pid, err)
	}
	if wait && !waitGone(pid, time.Minute) {
		t.Fatalf("private Kafka pid %d still alive a minute after %v", pid, sig)
	}
}

func (b *Broker) pid() int {
	raw, err := os.ReadFile(b.pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return 0
	}
	return pid
}

// leaderOffsets dials the leader of topic's partition and reads its first
// and last offsets, retrying for half a minute: a broker that has just
// started, or a topic just created, can answer "not leader" for a while
// even after it acknowledged writes.
func leaderOffsets(t testing.TB, broker, topic string, part int) (*kafka.Conn, int64, int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		pc, err := kafka.DialLeader(ctx, "tcp", broker, topic, part)
		cancel()
		if err == nil {
			first, last, oerr := pc.ReadOffsets()
			if oerr == nil {
				return pc, first, last
			}
			_ = pc.Close()
			err = oerr
		}
		if time.Now().After(deadline) {
			t.Fatalf("offsets of %s/%d: %v", topic, part, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ReadTopic returns the value of every message in topic, from the first
// offset of each partition to its end at the time of the call.
func ReadTopic(t testing.TB, broker, topic string) [][]byte {
	t.Helper()
	msgs := ReadTopicMessages(t, broker, topic)
	out := make([][]byte, len(msgs))
	for i := range msgs {
		out[i] = msgs[i].Value
	}
	return out
}

// ReadTopicMessages is ReadTopic with each record's partition, offset, key
// and time.
func ReadTopicMessages(t testing.TB, broker, topic string) []kafka.Message {
	t.Helper()
	conn, err := kafka.Dial("tcp", broker)
	if err != nil {
		t.Fatalf("dial %s: %v", broker, err)
	}
	parts, err := conn.ReadPartitions(topic)
	_ = conn.Close()
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	var out []kafka.Message
	for _, p := range parts {
		pc, first, last := leaderOffsets(t, broker, topic, p.ID)
		off := first
		for off < last {
			_ = pc.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := pc.Seek(off, kafka.SeekAbsolute); err != nil {
				t.Fatalf("seek %s/%d to %d: %v", topic, p.ID, off, err)
			}
			batch := pc.ReadBatch(1, 16<<20)
			n := 0
			for {
				m, err := batch.ReadMessage()
				if err != nil {
					break
				}
				if !kafkaconn.IsClockTick(&m) {
					out = append(out, m)
				}
				off = m.Offset + 1
				n++
			}
			if err := batch.Close(); err != nil && n == 0 {
				t.Fatalf("read %s/%d at %d: %v", topic, p.ID, off, err)
			}
		}
		_ = pc.Close()
	}
	return out
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// FreePort returns a port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int { return freePorts(t, 1)[0] }

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// notable returns the last n lines of a broker log that report a warning,
// an error or a log found stray or recovered.
func notable(log []byte, n int) string {
	var keep []string
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "WARN") || strings.Contains(line, "ERROR") ||
			strings.Contains(line, "stray") || strings.Contains(line, "ecover") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep[max(0, len(keep)-n):], "\n")
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
