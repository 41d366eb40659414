package validate

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Strimzi (kafka.strimzi.io/v1beta2) and Prometheus operator
// (monitoring.coreos.com/v1) resources the manifests use, as strict structs:
// only the fields the manifests set, so a misspelt or misplaced field fails
// to decode. Enumerations and bounds of the CRDs' schemas that matter here
// are checked in checkStrimzi and checkMonitoring.

type strimziKafka struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Kafka struct {
			Version         string `json:"version"`
			MetadataVersion string `json:"metadataVersion,omitempty"`
			Listeners       []struct {
				Name string `json:"name"`
				Port int    `json:"port"`
				Type string `json:"type"`
				TLS  bool   `json:"tls"`
			} `json:"listeners"`
			Config map[string]any `json:"config,omitempty"`
		} `json:"kafka"`
		EntityOperator *struct {
			TopicOperator *struct{} `json:"topicOperator,omitempty"`
			UserOperator  *struct{} `json:"userOperator,omitempty"`
		} `json:"entityOperator,omitempty"`
		KafkaExporter *struct {
			TopicRegex string `json:"topicRegex,omitempty"`
			GroupRegex string `json:"groupRegex,omitempty"`
		} `json:"kafkaExporter,omitempty"`
	} `json:"spec"`
}

type strimziVolume struct {
	ID            *int   `json:"id"`
	Type          string `json:"type"`
	Size          string `json:"size,omitempty"`
	Class         string `json:"class,omitempty"`
	DeleteClaim   bool   `json:"deleteClaim,omitempty"`
	KRaftMetadata string `json:"kraftMetadata,omitempty"`
}

type strimziNodePool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Replicas int      `json:"replicas"`
		Roles    []string `json:"roles"`
		Storage  struct {
			Type    string          `json:"type"`
			Volumes []strimziVolume `json:"volumes,omitempty"`
		} `json:"storage"`
		Resources *struct {
			Requests map[string]string `json:"requests,omitempty"`
			Limits   map[string]string `json:"limits,omitempty"`
		} `json:"resources,omitempty"`
	} `json:"spec"`
}

type strimziTopic struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		TopicName  string         `json:"topicName"`
		Partitions int            `json:"partitions"`
		Replicas   int            `json:"replicas"`
		Config     map[string]any `json:"config,omitempty"`
	} `json:"spec"`
}

type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path,omitempty"`
			Interval string `json:"interval,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type podMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path,omitempty"`
			Interval string `json:"interval,omitempty"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert,omitempty"`
				Record      string            `json:"record,omitempty"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}
