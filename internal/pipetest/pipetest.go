// Package pipetest gives tests real Kafka topics and a real Redis, each fresh
// per test and removed afterwards, plus Eventually for a pipeline that is only
// eventually consistent. Services are found at PIXEL_TEST_KAFKA and
// PIXEL_TEST_REDIS (defaults: the ports deploy/local/services.sh uses;
// PIXEL_TEST_REDIS may name a Redis Cluster, see Redis). A
// missing service fails the test: integration tests never skip.
//
// It imports no component.
package pipetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/redisconn"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// Default addresses of the services started by `make services-up`.
const (
	DefaultKafka = "127.0.0.1:19092"
	DefaultRedis = "127.0.0.1:16379"
)

// KafkaAddr returns the test broker address.
func KafkaAddr() string {
	if v := os.Getenv("PIXEL_TEST_KAFKA"); v != "" {
		return v
	}
	return DefaultKafka
}

// RedisAddr returns the test Redis address.
func RedisAddr() string {
	if v := os.Getenv("PIXEL_TEST_REDIS"); v != "" {
		return v
	}
	return DefaultRedis
}

// Topics are the per-test names of the pipeline's topics.
type Topics struct {
	Hits, Events, Sessions, Counts, DLQ string
}

// Kafka returns the broker config and a fresh set of the pipeline's topics
// (same partition counts as production, random names), deleted on cleanup.
func Kafka(t testing.TB) (kafkaconn.Config, Topics) {
	t.Helper()
	addr := KafkaAddr()
	mustReach(t, "Kafka", addr, "PIXEL_TEST_KAFKA")
	id := "t" + randomID() + "."
	tp := Topics{
		Hits:     id + schemas.TopicHits,
		Events:   id + schemas.TopicEvents,
		Sessions: id + schemas.TopicSessions,
		Counts:   id + schemas.TopicCounts,
		DLQ:      id + schemas.TopicDLQ,
	}
	var specs []schemas.TopicSpec
	for _, s := range schemas.Topics() {
		s.Name = id + s.Name
		specs = append(specs, s)
	}
	kc := kafkaconn.Config{Brokers: []string{addr}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kafkaconn.EnsureTopics(ctx, kc, specs); err != nil {
		t.Fatalf("create test topics on %s: %v", addr, err)
	}
	t.Cleanup(func() {
		client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 30 * time.Second}
		names := make([]string, len(specs))
		for i, s := range specs {
			names[i] = s.Name
		}
		if _, err := client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
			t.Logf("delete test topics: %v", err)
		}
	})
	return kc, tp
}

// Redis returns a client of the test Redis and a key prefix no other test
// uses; keys under it are deleted on cleanup. PIXEL_TEST_REDIS is read like
// -redis.addr (redisconn.Parse): with several addresses, or the
// redis+cluster:// form, the client is a Redis Cluster client.
func Redis(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	addr, err := redisconn.Parse(RedisAddr())
	if err != nil {
		t.Fatalf("PIXEL_TEST_REDIS: %v", err)
	}
	for _, a := range addr.Addrs {
		mustReach(t, "Redis", a, "PIXEL_TEST_REDIS")
	}
	rdb := redisconn.New(addr, redis.UniversalOptions{ContextTimeoutEnabled: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping Redis at %s: %v (start it with `make services-up`)", addr, err)
	}
	prefix := "t" + randomID()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		keys, err := redisconn.Keys(ctx, rdb, prefix+":*")
		if err == nil {
			_, err = redisconn.Del(ctx, rdb, keys...)
		}
		if err != nil {
			t.Logf("delete test keys %s:*: %v", prefix, err)
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

// RedisKeys returns the keys of the test Redis that match pattern, on
// every master of a cluster (KEYS asks a single server).
func RedisKeys(t testing.TB, rdb redis.UniversalClient, pattern string) []string {
	t.Helper()
	keys, err := redisconn.Keys(context.Background(), rdb, pattern)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// Eventually calls check until it returns "" or timeout passes, then fails
// the test with check's last message.
func Eventually(t testing.TB, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 20 * time.Millisecond
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %s: %s", timeout, msg)
		}
		time.Sleep(wait)
		wait = min(2*wait, 500*time.Millisecond)
	}
}

func mustReach(t testing.TB, what, addr, env string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("%s is not reachable at %s (%v): start it with `make services-up`, or point %s at one", what, addr, err, env)
	}
	_ = c.Close()
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(hex.EncodeToString(b[:]))
}

// Listen binds a free loopback port for a server under test to Serve on
// (Serve closes it).
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
