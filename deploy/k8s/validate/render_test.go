package validate

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// object is one rendered resource, decoded into its type.
type object struct {
	apiVersion, kind, name string
	typed                  any
}

// newTyped returns an empty value of the type of apiVersion and kind, or nil
// for a kind the manifests are not expected to hold.
func newTyped(apiVersion, kind string) any {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 Secret":
		return &corev1.Secret{}
	case "v1 Service":
		return &corev1.Service{}
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1 Ingress":
		return &networkingv1.Ingress{}
	case "batch/v1 Job":
		return &batchv1.Job{}
	case "kafka.strimzi.io/v1beta2 Kafka":
		return &strimziKafka{}
	case "kafka.strimzi.io/v1beta2 KafkaNodePool":
		return &strimziNodePool{}
	case "kafka.strimzi.io/v1beta2 KafkaTopic":
		return &strimziTopic{}
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &serviceMonitor{}
	case "monitoring.coreos.com/v1 PodMonitor":
		return &podMonitor{}
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &prometheusRule{}
	}
	return nil
}

// render runs kustomize on dir and decodes every resource strictly: a field
// the type does not have (a typo, a wrong indentation) is a problem.
func render(fsys filesys.FileSystem, dir string, p *problems) []object {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
	if err != nil {
		p.add("kustomize %s: %v", dir, err)
		return nil
	}
	var objs []object
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			p.add("%s: %v", r.CurId(), err)
			continue
		}
		o := object{apiVersion: r.GetApiVersion(), kind: r.GetKind(), name: r.GetName()}
		o.typed = newTyped(o.apiVersion, o.kind)
		if o.typed == nil {
			p.add("%s %s %s: a kind the validation does not know; add its type", o.apiVersion, o.kind, o.name)
			continue
		}
		if err := yaml.UnmarshalStrict(y, o.typed); err != nil {
			p.add("%s %s: %v", o.kind, o.name, err)
			continue
		}
		if strings.HasPrefix(o.apiVersion, "kafka.strimzi.io/") {
			checkAgainstCRD(o.kind, o.name, y, p)
		}
		objs = append(objs, o)
	}
	return objs
}

// memCopy copies the folder root of the disk into an in-memory file system
// under the same path, with edit applied to each file's content.
func memCopy(root string, edit func(rel string, b []byte) []byte) (filesys.FileSystem, error) {
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return mem.MkdirAll(path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		return mem.WriteFile(path, edit(rel, b))
	})
	return mem, err
}

// problems collects what the checks find, so a test can report them all or
// look for the one it planted.
type problems []string

func (p *problems) add(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

func (p problems) String() string { return strings.Join(p, "\n") }
