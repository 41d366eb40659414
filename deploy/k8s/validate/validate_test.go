package validate

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// overlays are the overlays of deploy/k8s, with whether each expects its
// Secrets to exist in the cluster (prod) rather than generating them (dev).
var overlays = map[string]bool{"dev": false, "prod": true}

// k8sRoot is deploy/k8s, moduleRoot the module's folder.
var k8sRoot, moduleRoot string

func TestMain(m *testing.M) {
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func setup() error {
	var err error
	if k8sRoot, err = filepath.Abs(".."); err != nil {
		return err
	}
	moduleRoot = filepath.Join(k8sRoot, "..", "..")
	if _, err := os.Stat(filepath.Join(moduleRoot, "go.mod")); err != nil {
		return fmt.Errorf("module root: %w", err)
	}
	dir, err := os.MkdirTemp("", "pixelpipe-k8s-validate")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := buildBinary(moduleRoot, dir)
	if err != nil {
		return err
	}
	partFlags = map[string]map[string]flagDef{}
	for _, part := range parts {
		if partFlags[part], err = readFlags(bin, part); err != nil {
			return err
		}
	}
	crds := os.Getenv("PIXEL_STRIMZI_CRDS")
	if crds == "" {
		crds, err = strimziCRDDir(moduleRoot)
		if err != nil {
			return err
		}
	}
	if strimziCRDs, err = loadStrimziCRDs(crds); err != nil {
		return err
	}
	codeMetrics, err = metricsInCode(moduleRoot)
	return err
}

// strimziCRDDir is where deploy/local/services.sh strimzi-crds writes the
// CRDs of the Strimzi release its pom names.
func strimziCRDDir(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "deploy", "k8s", "validate", "strimzi", "pom.xml"))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`<strimzi.version>([^<]+)</strimzi.version>`).FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("no strimzi.version in deploy/k8s/validate/strimzi/pom.xml")
	}
	return filepath.Join(root, ".cache", "strimzi-crds-"+string(m[1])), nil
}

var quotedMetric = regexp.MustCompile(`"(pixel_[a-z_]+)"`)

// metricsInCode returns the pixel_* names quoted in the module's non-test
// Go files: the metric names the parts register.
func metricsInCode(root string) (map[string]bool, error) {
	names := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range quotedMetric.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
		return nil
	})
	return names, err
}

// TestOverlays renders every overlay and reports every problem.
func TestOverlays(t *testing.T) {
	for name, external := range overlays {
		t.Run(name, func(t *testing.T) {
			for _, p := range check(filesys.MakeFsOnDisk(), k8sRoot, name, external) {
				t.Error(p)
			}
		})
	}
}

// TestDriftIsCaught plants one drift at a time between the code and the
// manifests (in an in-memory copy) and wants the validation to report it.
func TestDriftIsCaught(t *testing.T) {
	cases := []struct {
		name, file, old, new, want string
	}{
		{"env name", "base/edge.yaml", "{name: PIXEL_EDGE_DRAINTIMEOUT,", "{name: PIXEL_EDGE_DRAIN_TIMEOUT,", "env PIXEL_EDGE_DRAIN_TIMEOUT is no flag of pixelpipe edge"},
		{"env of another part", "base/query.yaml", "PIXEL_QUERY_AUDITGROUP", "PIXEL_PROCESSOR_GROUP", "env PIXEL_PROCESSOR_GROUP is no flag of pixelpipe query"},
		{"configmap key", "base/config.yaml", "PIXEL_LOG_LEVEL", "PIXEL_LOGLEVEL", "env PIXEL_LOGLEVEL (from ConfigMap pixelpipe-common) is no flag"},
		{"admin container port", "base/processor.yaml", "{name: admin, containerPort: 9100}", "{name: admin, containerPort: 9200}", `container port "admin" is 9200, the part listens on 9100`},
		{"admin address", "base/config.yaml", `PIXEL_ADMIN_LISTENADDR: ":9100"`, `PIXEL_ADMIN_LISTENADDR: ":9101"`, `container port "admin" is 9100, the part listens on 9101`},
		{"public port", "base/query.yaml", `{name: PIXEL_QUERY_LISTENADDR, value: ":8081"}`, `{name: PIXEL_QUERY_LISTENADDR, value: ":8082"}`, `container port "http" is 8081, the part listens on 8082`},
		{"probe path", "base/edge.yaml", "path: /readyz", "path: /ready", "readiness probe: the admin server does not serve /ready (404)"},
		{"probes swapped", "base/query.yaml", "livenessProbe: {httpGet: {path: /healthz", "livenessProbe: {httpGet: {path: /readyz", "liveness probe: /readyz answers 503 while not ready and 200 while ready: a liveness probe needs 200 in both"},
		{"scrape path", "base/monitoring.yaml", "path: /metrics", "path: /metric", "ServiceMonitor pixelpipe: endpoint admin: the admin server does not serve /metric (404)"},
		{"probe port", "base/aggregator.yaml", "livenessProbe: {httpGet: {path: /healthz, port: admin}", "livenessProbe: {httpGet: {path: /healthz, port: 8080}", "liveness probe on port 8080"},
		{"edge drain above grace", "base/edge.yaml", `{name: PIXEL_EDGE_DRAINTIMEOUT, value: "20s"}`, `{name: PIXEL_EDGE_DRAINTIMEOUT, value: "40s"}`, "is not above the part's drain time 55s"},
		{"grace below drain", "base/processor.yaml", "terminationGracePeriodSeconds: 75", "terminationGracePeriodSeconds: 60", "terminationGracePeriodSeconds 1m0s is not above the part's drain time 1m5s"},
		{"spool not on the claim", "base/edge.yaml", "{name: PIXEL_EDGE_SPOOL_DIR, value: /spool}", "{name: PIXEL_EDGE_SPOOL_DIR, value: /tmp/spool}", "edge.spool.dir /tmp/spool is not the mount"},
		{"unknown field", "base/query.yaml", "readinessProbe: {httpGet: {path: /readyz, port: admin}, periodSeconds: 5}", "readinessProbe: {httpGet: {path: /readyz, port: admin}, periodSecond: 5}", `Deployment pixelpipe-query: error unmarshaling JSON: while decoding JSON: json: unknown field "periodSecond"`},
		{"unknown Strimzi field", "kafka/topics.yaml", "topicName: pixel.dlq.v1", "topic: pixel.dlq.v1", `KafkaTopic pixel-dlq-v1: error unmarshaling JSON: while decoding JSON: json: unknown field "topic"`},
		{"topic partitions", "kafka/topics.yaml", "topicName: pixel.hits.v1\n  partitions: 6", "topicName: pixel.hits.v1\n  partitions: 12", "partitions 12, the code's pixel.hits.v1 has 6"},
		{"topic missing", "kafka/topics.yaml", "topicName: pixel.sessions.v1", "topicName: pixel.session.v1", "no KafkaTopic for pixel.sessions.v1"},
		{"compaction", "kafka/topics.yaml", "cleanup.policy: compact", "cleanup.policy: delete", `cleanup.policy "delete", compacted in the code: true`},
		{"listener type", "kafka/kafka.yaml", "type: internal", "type: intern", `type "intern" is not a Strimzi listener type`},
		{"listener port below the CRD's minimum", "kafka/kafka.yaml", "name: plain\n        port: 9092", "name: plain\n        port: 9091", "Kafka pixel-kafka: Strimzi CRD schema: kafka.spec.kafka.listeners[0].port: 9091 is below the minimum 9092"},
		{"listener name against the CRD's pattern", "kafka/kafka.yaml", "- name: plain\n", "- name: plain-text\n", `Kafka pixel-kafka: Strimzi CRD schema: kafka.spec.kafka.listeners[0].name: "plain-text" does not match ^[a-z0-9]{1,11}$`},
		{"node pool role outside the CRD's enum", "overlays/prod/kafka-nodepools.yaml", "roles: [broker]", "roles: [brokers]", "Strimzi CRD schema: kafkanodepool.spec.roles[0]: brokers is not one of [controller broker]"},
		{"alert renamed", "base/monitoring.yaml", "alert: PixelAggregatorLateEvents", "alert: PixelAggregatorLate", "README alert PixelAggregatorLateEvents: no such alert"},
		{"metric renamed", "base/monitoring.yaml", "pixel_processor_write_errors_total", "pixel_processor_write_error_total", "metric pixel_processor_write_error_total: no metric of that name in the code"},
		{"processor above partitions", "overlays/prod/scale.yaml", "minReplicas: 3\n  maxReplicas: 6", "minReplicas: 3\n  maxReplicas: 8", "maxReplicas 8 above the 6 partitions of pixel.hits.v1"},
		{"no PDB", "base/query.yaml", "maxUnavailable: 1\n  selector: {matchLabels: {app: pixelpipe-query}}", "maxUnavailable: 1\n  selector: {matchLabels: {app: pixelpipe-other}}", "Deployment pixelpipe-query: 0 PodDisruptionBudgets, want 1"},
		{"unknown kind", "base/query.yaml", "kind: PodDisruptionBudget", "kind: PodDisruptionBudgets", "policy/v1 PodDisruptionBudgets pixelpipe-query: a kind the validation does not know"},
		{"writable root", "base/aggregator.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem is not set"},
		{"secret key", "base/edge.yaml", "key: click-keys", "key: click-key", "Secret pixelpipe-secrets-"},
		{"no TLS", "overlays/dev/ingress.yaml", "- hosts: [stats.dev.example.test]", "- hosts: [stats.example.test]", `host "stats.dev.example.test" has no TLS`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			planted := false
			mem, err := memCopy(k8sRoot, func(rel string, b []byte) []byte {
				if filepath.ToSlash(rel) != c.file {
					return b
				}
				if !strings.Contains(string(b), c.old) {
					return b
				}
				planted = true
				return []byte(strings.Replace(string(b), c.old, c.new, 1))
			})
			if err != nil {
				t.Fatal(err)
			}
			if !planted {
				t.Fatalf("%s does not contain %q: update the case", c.file, c.old)
			}
			overlay := "prod"
			if c.file == "overlays/dev/ingress.yaml" || c.name == "secret key" {
				overlay = "dev"
			}
			got := check(mem, k8sRoot, overlay, overlays[overlay])
			for _, p := range got {
				if strings.Contains(p, c.want) {
					return
				}
			}
			t.Errorf("planted %s (%q -> %q in %s): want a problem containing %q, got:\n%s", c.name, c.old, c.new, c.file, c.want, got)
		})
	}
}
