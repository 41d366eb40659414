package validate

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// Shutdown bounds of the parts other than the edge, set in their code: the
// processor finishes its batch (30 s) and snapshots its state (30 s); the
// aggregator's last flush (15 s); the query API's HTTP shutdown (10 s). After
// a part has stopped, its admin server's shutdown takes at most adminStop.
// The edge's bound comes from its flags: edge.shutdownDelay plus
// edge.drainTimeout.
var shutdownBounds = map[string]time.Duration{
	"processor":  60 * time.Second,
	"aggregator": 15 * time.Second,
	"query":      10 * time.Second,
}

const adminStop = 5 * time.Second

// publicAddrFlag is the flag of a part's public listener, whose port is the
// container port "http".
var publicAddrFlag = map[string]string{"edge": "edge.listenAddr", "query": "query.listenAddr"}

// workload is a Deployment or StatefulSet with its pod template.
type workload struct {
	kind, name string
	pod        *corev1.PodTemplateSpec
	replicas   *int32
	claims     []string // the StatefulSet's volumeClaimTemplates
	serviceFor string   // the StatefulSet's serviceName
}

// set indexes an overlay's rendered objects.
type set struct {
	objs       []object
	cms        map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	services   map[string]*corev1.Service
	workloads  []workload
	jobs       []*batchv1.Job
	hpas       []*autoscalingv2.HorizontalPodAutoscaler
	pdbs       []*policyv1.PodDisruptionBudget
	ingresses  []*networkingv1.Ingress
	kafkas     []*strimziKafka
	pools      []*strimziNodePool
	topics     []*strimziTopic
	smons      []*serviceMonitor
	pmons      []*podMonitor
	rules      []*prometheusRule
	partEnv    map[string]map[string]string // part -> env name -> literal value
	partSecret map[string]map[string]string // part -> env name -> secret/key
}

func index(objs []object) *set {
	s := &set{objs: objs, cms: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, services: map[string]*corev1.Service{},
		partEnv: map[string]map[string]string{}, partSecret: map[string]map[string]string{}}
	for _, o := range objs {
		switch v := o.typed.(type) {
		case *corev1.ConfigMap:
			s.cms[v.Name] = v
		case *corev1.Secret:
			s.secrets[v.Name] = v
		case *corev1.Service:
			s.services[v.Name] = v
		case *appsv1.Deployment:
			s.workloads = append(s.workloads, workload{kind: "Deployment", name: v.Name, pod: &v.Spec.Template, replicas: v.Spec.Replicas})
		case *appsv1.StatefulSet:
			w := workload{kind: "StatefulSet", name: v.Name, pod: &v.Spec.Template, serviceFor: v.Spec.ServiceName, replicas: v.Spec.Replicas}
			for _, c := range v.Spec.VolumeClaimTemplates {
				w.claims = append(w.claims, c.Name)
			}
			s.workloads = append(s.workloads, w)
		case *batchv1.Job:
			s.jobs = append(s.jobs, v)
		case *autoscalingv2.HorizontalPodAutoscaler:
			s.hpas = append(s.hpas, v)
		case *policyv1.PodDisruptionBudget:
			s.pdbs = append(s.pdbs, v)
		case *networkingv1.Ingress:
			s.ingresses = append(s.ingresses, v)
		case *strimziKafka:
			s.kafkas = append(s.kafkas, v)
		case *strimziNodePool:
			s.pools = append(s.pools, v)
		case *strimziTopic:
			s.topics = append(s.topics, v)
		case *serviceMonitor:
			s.smons = append(s.smons, v)
		case *podMonitor:
			s.pmons = append(s.pmons, v)
		case *prometheusRule:
			s.rules = append(s.rules, v)
		}
	}
	return s
}

// check renders the overlay at root/overlays/name on fsys and returns every
// problem found. secretsExternal: the overlay expects its Secrets to exist
// in the cluster rather than rendering them.
func check(fsys filesys.FileSystem, root, overlay string, secretsExternal bool) problems {
	var p problems
	objs := render(fsys, filepath.Join(root, "overlays", overlay), &p)
	if len(objs) == 0 {
		p.add("overlay %s renders nothing", overlay)
		return p
	}
	s := index(objs)
	checkPods(s, &p)
	for _, part := range parts {
		checkPart(s, part, secretsExternal, &p)
	}
	checkCrossPart(s, &p)
	checkServices(s, &p)
	checkScaling(s, &p)
	checkIngress(s, &p)
	checkStrimzi(s, &p)
	checkMonitoring(fsys, root, s, &p)
	return p
}

// partOf returns the pixelpipe command a container runs, or "".
func partOf(c corev1.Container) string {
	if !strings.Contains(c.Image, "pixelpipe") || len(c.Args) == 0 {
		return ""
	}
	return c.Args[0]
}

// checkPods: every pod runs as non-root on a read-only root file system with
// resources; long-running ones have both probes.
func checkPods(s *set, p *problems) {
	type podOf struct {
		what  string
		spec  *corev1.PodSpec
		probe bool
	}
	var pods []podOf
	for _, w := range s.workloads {
		pods = append(pods, podOf{w.kind + " " + w.name, &w.pod.Spec, true})
	}
	for _, j := range s.jobs {
		pods = append(pods, podOf{"Job " + j.Name, &j.Spec.Template.Spec, false})
	}
	for _, pod := range pods {
		podNonRoot := pod.spec.SecurityContext != nil && pod.spec.SecurityContext.RunAsNonRoot != nil && *pod.spec.SecurityContext.RunAsNonRoot
		for _, c := range append(slices.Clone(pod.spec.InitContainers), pod.spec.Containers...) {
			what := pod.what + " container " + c.Name
			sc := c.SecurityContext
			if !podNonRoot && (sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
				p.add("%s: runAsNonRoot is not set", what)
			}
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				p.add("%s: readOnlyRootFilesystem is not set", what)
			}
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				p.add("%s: allowPrivilegeEscalation is not false", what)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				p.add("%s: needs cpu and memory requests and a memory limit", what)
			}
			if pod.probe && (c.LivenessProbe == nil || c.ReadinessProbe == nil) {
				p.add("%s: needs a liveness and a readiness probe", what)
			}
		}
	}
}

// envOf resolves a container's environment: literal values (also from
// ConfigMaps) and secret references, each checked against the part's flags.
func envOf(s *set, what, part string, c corev1.Container, secretsExternal bool, p *problems) (vals, secrets map[string]string) {
	vals, secrets = map[string]string{}, map[string]string{}
	flags := partFlags[part]
	checkName := func(name, from string) {
		if _, ok := flags[name]; !ok {
			p.add("%s: env %s%s is no flag of pixelpipe %s (its variables are PIXEL_ and the flag name, upper case, dots as underscores)", what, name, from, part)
		}
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, ok := s.cms[ef.ConfigMapRef.Name]
			if !ok {
				p.add("%s: envFrom ConfigMap %s is not in the overlay", what, ef.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				checkName(ef.Prefix+k, " (from ConfigMap "+cm.Name+")")
				vals[ef.Prefix+k] = v
			}
		case ef.SecretRef != nil:
			sec, ok := s.secrets[ef.SecretRef.Name]
			if !ok {
				p.add("%s: envFrom Secret %s: use secretKeyRef per variable, so the variables can be checked", what, ef.SecretRef.Name)
				continue
			}
			for k := range sec.Data {
				checkName(ef.Prefix+k, " (from Secret "+sec.Name+")")
				secrets[ef.Prefix+k] = sec.Name + "/" + k
			}
		}
	}
	for _, e := range c.Env {
		checkName(e.Name, "")
		switch {
		case e.ValueFrom == nil:
			vals[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := s.cms[ref.Name]
			if !ok {
				p.add("%s: env %s: ConfigMap %s is not in the overlay", what, e.Name, ref.Name)
				continue
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				p.add("%s: env %s: ConfigMap %s has no key %s", what, e.Name, ref.Name, ref.Key)
			}
			vals[e.Name] = v
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			secrets[e.Name] = ref.Name + "/" + ref.Key
			delete(vals, e.Name)
			sec, ok := s.secrets[ref.Name]
			switch {
			case !ok && !secretsExternal:
				p.add("%s: env %s: Secret %s is not in the overlay", what, e.Name, ref.Name)
			case ok:
				if _, has := sec.Data[ref.Key]; !has {
					if _, has := sec.StringData[ref.Key]; !has {
						p.add("%s: env %s: Secret %s has no key %s", what, e.Name, ref.Name, ref.Key)
					}
				}
			}
		}
	}
	return vals, secrets
}

// value returns the value a part sees for a flag: its environment variable
// as the manifests set it, else the flag's default.
func value(env map[string]string, part, flag string) string {
	name := "PIXEL_" + strings.ToUpper(strings.ReplaceAll(flag, ".", "_"))
	if v, ok := env[name]; ok {
		return v
	}
	return partFlags[part][name].def
}

func portOf(addr string) (int32, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(port, 10, 32)
	return int32(n), err
}

func duration(v string) time.Duration {
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return -1
	}
	return d
}

// probePort resolves a probe's port (a name or a number) to a number.
func probePort(c corev1.Container, port intstr.IntOrString) int32 {
	if port.Type == intstr.Int {
		return port.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == port.StrVal {
			return cp.ContainerPort
		}
	}
	return -1
}

// checkPart checks the workload running a part against the part's flags.
func checkPart(s *set, part string, secretsExternal bool, p *problems) {
	var found []workload
	for _, w := range s.workloads {
		for _, c := range w.pod.Spec.Containers {
			if partOf(c) == part {
				found = append(found, w)
			}
		}
	}
	if len(found) != 1 {
		p.add("pixelpipe %s: %d workloads run it, want 1", part, len(found))
		return
	}
	w := found[0]
	if part == "edge" && w.kind != "StatefulSet" {
		p.add("the edge is a %s: it must be a StatefulSet, so its spool volume outlives the pod", w.kind)
	}
	for _, c := range w.pod.Spec.Containers {
		if partOf(c) != part {
			continue
		}
		what := fmt.Sprintf("%s %s container %s", w.kind, w.name, c.Name)
		env, secrets := envOf(s, what, part, c, secretsExternal, p)
		s.partEnv[part], s.partSecret[part] = env, secrets

		// Ports: the admin port of the flags, the public one, nothing else.
		want := map[string]int32{}
		admin, err := portOf(value(env, part, "admin.listenAddr"))
		if err != nil {
			p.add("%s: admin.listenAddr: %v", what, err)
		}
		want["admin"] = admin
		if f, ok := publicAddrFlag[part]; ok {
			if want["http"], err = portOf(value(env, part, f)); err != nil {
				p.add("%s: %s: %v", what, f, err)
			}
		}
		got := map[string]int32{}
		for _, cp := range c.Ports {
			got[cp.Name] = cp.ContainerPort
		}
		for name, port := range want {
			if got[name] != port {
				p.add("%s: container port %q is %d, the part listens on %d (its flags)", what, name, got[name], port)
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				p.add("%s: container port %q: the part listens on no such port", what, name)
			}
		}
		// Probes: the admin server's endpoints on the admin port.
		for _, pr := range []struct {
			kind  string
			probe *corev1.Probe
		}{{"liveness", c.LivenessProbe}, {"readiness", c.ReadinessProbe}} {
			if pr.probe == nil || pr.probe.HTTPGet == nil {
				p.add("%s: %s probe must be an HTTP GET on the admin port", what, pr.kind)
				continue
			}
			if msg := probePathProblem(pr.kind, pr.probe.HTTPGet.Path); msg != "" {
				p.add("%s: %s probe: %s", what, pr.kind, msg)
			}
			if port := probePort(c, pr.probe.HTTPGet.Port); port != admin {
				p.add("%s: %s probe on port %d, the admin port is %d", what, pr.kind, port, admin)
			}
		}
		// Grace period above the drain.
		bound := shutdownBounds[part]
		if part == "edge" {
			delay, drain := duration(value(env, part, "edge.shutdownDelay")), duration(value(env, part, "edge.drainTimeout"))
			if delay < 0 || drain < 0 {
				p.add("%s: edge.shutdownDelay or edge.drainTimeout is not a duration", what)
			}
			bound = delay + drain
		}
		bound += adminStop
		grace := 30 * time.Second
		if g := w.pod.Spec.TerminationGracePeriodSeconds; g != nil {
			grace = time.Duration(*g) * time.Second
		}
		if grace <= bound {
			p.add("%s: terminationGracePeriodSeconds %s is not above the part's drain time %s", what, grace, bound)
		}
		// The edge's spool on its own volume claim.
		if part == "edge" {
			dir := value(env, part, "edge.spool.dir")
			onClaim := false
			for _, m := range c.VolumeMounts {
				if m.MountPath == dir && slices.Contains(w.claims, m.Name) {
					onClaim = true
				}
			}
			if !onClaim {
				p.add("%s: edge.spool.dir %s is not the mount of a volumeClaimTemplate", what, dir)
			}
		}
	}
}

// checkCrossPart: settings two parts must agree on, and the code's topics.
func checkCrossPart(s *set, p *problems) {
	partitions := map[string]int{}
	for _, t := range schemas.Topics() {
		partitions[t.Name] = t.Partitions
	}
	if v := value(s.partEnv["query"], "query", "query.eventsPartitions"); v != strconv.Itoa(partitions[schemas.TopicEvents]) {
		p.add("query.eventsPartitions is %s, %s has %d partitions", v, schemas.TopicEvents, partitions[schemas.TopicEvents])
	}
	if q, pr := value(s.partEnv["query"], "query", "query.auditGroup"), value(s.partEnv["processor"], "processor", "processor.group"); q != pr {
		p.add("query.auditGroup %q is not processor.group %q", q, pr)
	}
	if e, pr, q := s.partSecret["edge"]["PIXEL_VISITOR_SECRET"], s.partSecret["processor"]["PIXEL_VISITOR_SECRET"], s.partSecret["query"]["PIXEL_VISITOR_SECRET"]; e == "" || e != pr || q != pr {
		p.add("the edge's, the processor's and the query's PIXEL_VISITOR_SECRET must come from the same Secret key (edge %q, processor %q, query %q)", e, pr, q)
	}
	for _, part := range []string{"edge", "processor", "aggregator", "query"} {
		if v := value(s.partEnv[part], part, "kafka.topicPrefix"); v != "" && part != "query" {
			p.add("pixelpipe %s: kafka.topicPrefix %q: the KafkaTopics have none", part, v)
		}
	}
	for _, h := range s.hpas {
		limit := map[string]string{"pixelpipe-processor": schemas.TopicHits, "pixelpipe-aggregator": schemas.TopicEvents}[h.Spec.ScaleTargetRef.Name]
		if limit != "" && int(h.Spec.MaxReplicas) > partitions[limit] {
			p.add("HorizontalPodAutoscaler %s: maxReplicas %d above the %d partitions of %s (the rest would sit idle)", h.Name, h.Spec.MaxReplicas, partitions[limit], limit)
		}
	}
}

func selects(sel map[string]string, lbls map[string]string) bool {
	return len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(lbls))
}

func labelSelects(sel *metav1.LabelSelector, lbls map[string]string) bool {
	if sel == nil {
		return false
	}
	ls, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !ls.Empty() && ls.Matches(labels.Set(lbls))
}

// checkServices: every Service selects pods and names their ports.
func checkServices(s *set, p *problems) {
	for _, svc := range s.services {
		var pods []*corev1.PodTemplateSpec
		for _, w := range s.workloads {
			if selects(svc.Spec.Selector, w.pod.Labels) {
				pods = append(pods, w.pod)
			}
		}
		if len(pods) == 0 {
			p.add("Service %s selects no pods", svc.Name)
			continue
		}
		for _, sp := range svc.Spec.Ports {
			for _, pod := range pods {
				ok := false
				for _, c := range pod.Spec.Containers {
					for _, cp := range c.Ports {
						if (sp.TargetPort.Type == intstr.String && cp.Name == sp.TargetPort.StrVal) ||
							(sp.TargetPort.Type == intstr.Int && (cp.ContainerPort == sp.TargetPort.IntVal || (sp.TargetPort.IntVal == 0 && cp.ContainerPort == sp.Port))) {
							ok = true
						}
					}
				}
				if !ok {
					p.add("Service %s port %s: target %s is no container port", svc.Name, sp.Name, sp.TargetPort.String())
				}
			}
		}
	}
	for _, w := range s.workloads {
		if w.kind == "StatefulSet" {
			if svc, ok := s.services[w.serviceFor]; !ok || svc.Spec.ClusterIP != corev1.ClusterIPNone {
				p.add("StatefulSet %s: serviceName %s is no headless Service", w.name, w.serviceFor)
			}
		}
	}
}

// checkScaling: every part's workload has an autoscaler and a disruption
// budget, every stateful workload a budget.
func checkScaling(s *set, p *problems) {
	for _, w := range s.workloads {
		isPart := false
		for _, c := range w.pod.Spec.Containers {
			isPart = isPart || partOf(c) != ""
		}
		hpas := 0
		for _, h := range s.hpas {
			if h.Spec.ScaleTargetRef.Kind == w.kind && h.Spec.ScaleTargetRef.Name == w.name {
				hpas++
				if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
					p.add("HorizontalPodAutoscaler %s: minReplicas must be between 1 and maxReplicas", h.Name)
				}
			}
		}
		if isPart && hpas != 1 {
			p.add("%s %s: %d HorizontalPodAutoscalers, want 1", w.kind, w.name, hpas)
		}
		if isPart && w.replicas != nil {
			p.add("%s %s: replicas is set; its autoscaler owns it (each apply would reset the scale)", w.kind, w.name)
		}
		pdbs := 0
		for _, b := range s.pdbs {
			if labelSelects(b.Spec.Selector, w.pod.Labels) {
				pdbs++
			}
		}
		if pdbs != 1 {
			p.add("%s %s: %d PodDisruptionBudgets, want 1", w.kind, w.name, pdbs)
		}
	}
	for _, h := range s.hpas {
		found := false
		for _, w := range s.workloads {
			found = found || (h.Spec.ScaleTargetRef.Kind == w.kind && h.Spec.ScaleTargetRef.Name == w.name)
		}
		if !found {
			p.add("HorizontalPodAutoscaler %s: no %s %s", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
	}
}

// checkIngress: TLS for every host (the visitor cookie is Secure), backends
// that exist.
func checkIngress(s *set, p *problems) {
	if len(s.ingresses) == 0 {
		p.add("no Ingress")
	}
	for _, ing := range s.ingresses {
		tls := map[string]bool{}
		for _, t := range ing.Spec.TLS {
			if t.SecretName == "" {
				p.add("Ingress %s: a TLS entry without secretName", ing.Name)
			}
			for _, h := range t.Hosts {
				tls[h] = true
			}
		}
		for _, r := range ing.Spec.Rules {
			if !tls[r.Host] {
				p.add("Ingress %s: host %q has no TLS", ing.Name, r.Host)
			}
			if r.HTTP == nil {
				continue
			}
			for _, path := range r.HTTP.Paths {
				b := path.Backend.Service
				if b == nil {
					continue
				}
				svc, ok := s.services[b.Name]
				if !ok {
					p.add("Ingress %s: backend Service %s is not in the overlay", ing.Name, b.Name)
					continue
				}
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
					return (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number)
				}) {
					p.add("Ingress %s: Service %s has no port %s%d", ing.Name, b.Name, b.Port.Name, b.Port.Number)
				}
			}
		}
	}
}

var (
	strimziListenerName = regexp.MustCompile(`^[a-z0-9]{1,11}$`)
	strimziSize         = regexp.MustCompile(`^[0-9]+([.][0-9]*)?([KMGTPE]i?|e[0-9]+)?$`)
)

// checkStrimzi: the constraints of Strimzi's CRD schemas the manifests
// touch, KRaft with node pools, and one KafkaTopic per topic of the code.
func checkStrimzi(s *set, p *problems) {
	if len(s.kafkas) != 1 {
		p.add("%d Kafka resources, want 1", len(s.kafkas))
		return
	}
	k := s.kafkas[0]
	if k.Annotations["strimzi.io/kraft"] != "enabled" || k.Annotations["strimzi.io/node-pools"] != "enabled" {
		p.add("Kafka %s: needs the annotations strimzi.io/kraft and strimzi.io/node-pools set to enabled", k.Name)
	}
	if k.Spec.Kafka.Version == "" {
		p.add("Kafka %s: spec.kafka.version is required", k.Name)
	}
	plainPort := 0
	for _, l := range k.Spec.Kafka.Listeners {
		if !strimziListenerName.MatchString(l.Name) {
			p.add("Kafka %s: listener name %q must match %s", k.Name, l.Name, strimziListenerName)
		}
		if !slices.Contains([]string{"internal", "route", "loadbalancer", "nodeport", "ingress", "cluster-ip"}, l.Type) {
			p.add("Kafka %s: listener %s: type %q is not a Strimzi listener type", k.Name, l.Name, l.Type)
		}
		if l.Port < 9092 || l.Port == 9404 || l.Port == 9999 {
			p.add("Kafka %s: listener %s: port %d (Strimzi takes 9092 and up, not 9404 or 9999)", k.Name, l.Name, l.Port)
		}
		if l.Type == "internal" && !l.TLS {
			plainPort = l.Port
		}
	}
	if k.Spec.EntityOperator == nil || k.Spec.EntityOperator.TopicOperator == nil {
		p.add("Kafka %s: the topic operator (entityOperator.topicOperator) manages the KafkaTopics", k.Name)
	}
	if want := fmt.Sprintf("%s-kafka-bootstrap:%d", k.Name, plainPort); value(s.partEnv["edge"], "edge", "kafka.brokers") != want {
		p.add("the edge's kafka.brokers is %q, the Kafka's plain listener is %s", value(s.partEnv["edge"], "edge", "kafka.brokers"), want)
	}
	brokers, controllers, kraftMeta := 0, 0, 0
	for _, np := range s.pools {
		what := "KafkaNodePool " + np.Name
		if np.Labels["strimzi.io/cluster"] != k.Name {
			p.add("%s: label strimzi.io/cluster must name the Kafka %s", what, k.Name)
		}
		if np.Spec.Replicas < 1 {
			p.add("%s: replicas %d", what, np.Spec.Replicas)
		}
		if len(np.Spec.Roles) == 0 {
			p.add("%s: roles are required", what)
		}
		for _, r := range np.Spec.Roles {
			switch r {
			case "broker":
				brokers += np.Spec.Replicas
			case "controller":
				controllers += np.Spec.Replicas
			default:
				p.add("%s: role %q is not controller or broker", what, r)
			}
		}
		switch np.Spec.Storage.Type {
		case "jbod":
			if len(np.Spec.Storage.Volumes) == 0 {
				p.add("%s: jbod storage needs volumes", what)
			}
			for _, v := range np.Spec.Storage.Volumes {
				if v.ID == nil {
					p.add("%s: a jbod volume needs an id", what)
				}
				if v.Type != "persistent-claim" && v.Type != "ephemeral" {
					p.add("%s: volume type %q", what, v.Type)
				}
				if v.Type == "persistent-claim" && !strimziSize.MatchString(v.Size) {
					p.add("%s: volume size %q", what, v.Size)
				}
				if v.KRaftMetadata == "shared" {
					kraftMeta++
				} else if v.KRaftMetadata != "" {
					p.add("%s: kraftMetadata %q is not shared", what, v.KRaftMetadata)
				}
			}
		case "persistent-claim", "ephemeral":
		default:
			p.add("%s: storage type %q", what, np.Spec.Storage.Type)
		}
	}
	if brokers == 0 || controllers == 0 {
		p.add("Kafka %s: node pools give %d brokers and %d controllers, want both", k.Name, brokers, controllers)
	}
	if controllers%2 == 0 {
		p.add("Kafka %s: %d KRaft controllers: an odd number keeps a quorum", k.Name, controllers)
	}
	if rf, ok := k.Spec.Kafka.Config["default.replication.factor"].(float64); ok && int(rf) > brokers {
		p.add("Kafka %s: default.replication.factor %v above its %d brokers", k.Name, rf, brokers)
	}

	byName := map[string]*strimziTopic{}
	for _, t := range s.topics {
		if t.Labels["strimzi.io/cluster"] != k.Name {
			p.add("KafkaTopic %s: label strimzi.io/cluster must name the Kafka %s", t.Name, k.Name)
		}
		if byName[t.Spec.TopicName] != nil {
			p.add("KafkaTopic %s: topic %s twice", t.Name, t.Spec.TopicName)
		}
		byName[t.Spec.TopicName] = t
	}
	for _, spec := range schemas.Topics() {
		t := byName[spec.Name]
		if t == nil {
			p.add("no KafkaTopic for %s", spec.Name)
			continue
		}
		delete(byName, spec.Name)
		what := "KafkaTopic " + t.Name
		if t.Spec.Partitions != spec.Partitions {
			p.add("%s: partitions %d, the code's %s has %d", what, t.Spec.Partitions, spec.Name, spec.Partitions)
		}
		isr, _ := t.Spec.Config["min.insync.replicas"].(float64)
		switch {
		case brokers >= 3 && (t.Spec.Replicas != 3 || isr != 2):
			p.add("%s: replicas %d, min.insync.replicas %v: want 3 and 2", what, t.Spec.Replicas, isr)
		case t.Spec.Replicas > brokers:
			p.add("%s: replicas %d above the %d brokers", what, t.Spec.Replicas, brokers)
		case t.Spec.Replicas > 1 && int(isr) >= t.Spec.Replicas, t.Spec.Replicas == 1 && isr != 1, isr < 1:
			p.add("%s: min.insync.replicas %v with %d replicas", what, isr, t.Spec.Replicas)
		}
		policy, _ := t.Spec.Config["cleanup.policy"].(string)
		if spec.Compacted != (policy == "compact") {
			p.add("%s: cleanup.policy %q, compacted in the code: %v", what, policy, spec.Compacted)
		}
		if _, ok := t.Spec.Config["retention.ms"].(float64); !ok {
			p.add("%s: retention.ms must be set (a number)", what)
		}
	}
	for name := range byName {
		p.add("KafkaTopic for %s: not a topic of the code", name)
	}
}

var (
	promDuration = regexp.MustCompile(`^(([0-9]+)(ms|s|m|h|d|w|y))+$`)
	metricName   = regexp.MustCompile(`\bpixel_[a-z_]+\b`)
	alertRow     = regexp.MustCompile("^\\| `(Pixel[A-Za-z]+)` \\|([^|]*)\\|")
	backticked   = regexp.MustCompile("`([^`]+)`")
)

// checkMonitoring: scraping reaches the parts' admin ports, the alerts are
// the README's table, and every pixel_* metric named exists in the code.
func checkMonitoring(fsys filesys.FileSystem, root string, s *set, p *problems) {
	if len(s.smons) == 0 || len(s.rules) == 0 {
		p.add("needs a ServiceMonitor and a PrometheusRule")
	}
	for _, m := range s.smons {
		for _, part := range parts {
			ok := false
			for _, svc := range s.services {
				if !labelSelects(&m.Spec.Selector, svc.Labels) || !selects(svc.Spec.Selector, map[string]string{"app": "pixelpipe-" + part}) {
					continue
				}
				for _, e := range m.Spec.Endpoints {
					for _, sp := range svc.Spec.Ports {
						if sp.Name == e.Port && sp.TargetPort.StrVal == "admin" {
							ok = true
						}
					}
				}
			}
			if !ok {
				p.add("ServiceMonitor %s: scrapes no admin port of pixelpipe %s", m.Name, part)
			}
		}
		for _, e := range m.Spec.Endpoints {
			if msg := probePathProblem("metrics", e.Path); msg != "" {
				p.add("ServiceMonitor %s: endpoint %s: %s", m.Name, e.Port, msg)
			}
			if !promDuration.MatchString(e.Interval) {
				p.add("ServiceMonitor %s: endpoint %s: interval %q", m.Name, e.Port, e.Interval)
			}
		}
	}
	for _, m := range s.pmons {
		for _, e := range m.Spec.PodMetricsEndpoints {
			if e.Port == "" || (e.Interval != "" && !promDuration.MatchString(e.Interval)) {
				p.add("PodMonitor %s: endpoint port %q interval %q", m.Name, e.Port, e.Interval)
			}
		}
	}

	var used []string
	exprs := map[string]string{}
	for _, r := range s.rules {
		for _, g := range r.Spec.Groups {
			for _, rule := range g.Rules {
				if rule.Alert == "" || rule.Expr == "" {
					p.add("PrometheusRule %s group %s: a rule without alert or expr", r.Name, g.Name)
				}
				if rule.For != "" && !promDuration.MatchString(rule.For) {
					p.add("PrometheusRule %s alert %s: for %q is no duration", r.Name, rule.Alert, rule.For)
				}
				if strings.Count(rule.Expr, "(") != strings.Count(rule.Expr, ")") {
					p.add("PrometheusRule %s alert %s: unbalanced parentheses", r.Name, rule.Alert)
				}
				exprs[rule.Alert] = rule.Expr
				used = append(used, rule.Expr)
			}
		}
	}
	// The spool alert fires at half of the edge's spool bound.
	if max, err := strconv.ParseInt(value(s.partEnv["edge"], "edge", "edge.spool.maxBytes"), 10, 64); err != nil {
		p.add("edge.spool.maxBytes: %v", err)
	} else if e := exprs["PixelEdgeSpoolFilling"]; !strings.Contains(e, "> "+strconv.FormatInt(max/2, 10)) {
		p.add("alert PixelEdgeSpoolFilling %q: want the threshold half of edge.spool.maxBytes, %d", e, max/2)
	}
	readme, err := fsys.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		p.add("README: %v", err)
	}
	table := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		m := alertRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		table[m[1]] = true
		e, ok := exprs[m[1]]
		if !ok {
			p.add("README alert %s: no such alert in the PrometheusRule", m[1])
			continue
		}
		for _, b := range backticked.FindAllStringSubmatch(m[2], -1) {
			for _, name := range metricName.FindAllString(b[1], -1) {
				if !strings.Contains(e, name) {
					p.add("alert %s: its expression does not use %s (README)", m[1], name)
				}
			}
		}
	}
	for a := range exprs {
		if !table[a] {
			p.add("alert %s: not in the README's alert table", a)
		}
	}

	// The dashboard: valid JSON with the key panels.
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	cm, ok := s.cms["pixelpipe-grafana-dashboard"]
	if !ok || cm.Labels["grafana_dashboard"] != "1" {
		p.add("no ConfigMap pixelpipe-grafana-dashboard labelled grafana_dashboard=1")
	} else if err := json.Unmarshal([]byte(cm.Data["pixelpipe-dashboard.json"]), &dash); err != nil {
		p.add("dashboard: %v", err)
	}
	var dashExprs []string
	for _, panel := range dash.Panels {
		for _, t := range panel.Targets {
			dashExprs = append(dashExprs, t.Expr)
			used = append(used, t.Expr)
		}
	}
	all := strings.Join(dashExprs, "\n")
	for _, m := range []string{"pixel_edge_hits_total", "pixel_edge_spool_bytes", `kafka_consumergroup_lag{consumergroup="` + value(s.partEnv["processor"], "processor", "processor.group"),
		"pixel_aggregator_flush_duration_seconds", "pixel_processor_event_lag_seconds", "pixel_audit_missing_hits"} {
		if !strings.Contains(all, m) {
			p.add("dashboard: no panel shows %s", m)
		}
	}
	for _, e := range used {
		for _, name := range metricName.FindAllString(e, -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if !codeMetrics[base] {
				p.add("metric %s: no metric of that name in the code", name)
			}
		}
	}
}

// codeMetrics holds the pixel_* names quoted in the module's Go code
// (TestMain).
var codeMetrics map[string]bool
