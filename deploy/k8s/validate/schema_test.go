package validate

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// crdSchema is the part of a CustomResourceDefinition's OpenAPI v3 schema
// that Strimzi's CRDs use.
type crdSchema struct {
	Type                 string                `json:"type"`
	Properties           map[string]*crdSchema `json:"properties"`
	AdditionalProperties *crdSchema            `json:"additionalProperties"`
	Items                *crdSchema            `json:"items"`
	Required             []string              `json:"required"`
	Enum                 []any                 `json:"enum"`
	Minimum              *float64              `json:"minimum"`
	Maximum              *float64              `json:"maximum"`
	MinItems             *int                  `json:"minItems"`
	MaxItems             *int                  `json:"maxItems"`
	Pattern              string                `json:"pattern"`
	OneOf                []*crdSchema          `json:"oneOf"`
	AnyOf                []*crdSchema          `json:"anyOf"`
	IntOrString          bool                  `json:"x-kubernetes-int-or-string"`
	PreserveUnknown      bool                  `json:"x-kubernetes-preserve-unknown-fields"`
}

// strimziCRDs maps a Strimzi kind to the schema of its v1beta2 version, as
// Strimzi's CRD generator writes it (deploy/local/services.sh strimzi-crds).
var strimziCRDs map[string]*crdSchema

// loadStrimziCRDs reads the CRDs of dir: kafka.yaml, kafkanodepool.yaml and
// kafkatopic.yaml.
func loadStrimziCRDs(dir string) (map[string]*crdSchema, error) {
	out := map[string]*crdSchema{}
	for _, f := range []string{"kafka.yaml", "kafkanodepool.yaml", "kafkatopic.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, fmt.Errorf("Strimzi CRD: %w (deploy/local/services.sh strimzi-crds writes them; make check-k8s runs it)", err)
		}
		var crd struct {
			Spec struct {
				Names    struct{ Kind string }
				Versions []struct {
					Name   string
					Schema struct {
						OpenAPIV3Schema *crdSchema `json:"openAPIV3Schema"`
					}
				}
			}
		}
		if err := yaml.Unmarshal(b, &crd); err != nil {
			return nil, fmt.Errorf("Strimzi CRD %s: %w", f, err)
		}
		for _, v := range crd.Spec.Versions {
			if v.Name == "v1beta2" && v.Schema.OpenAPIV3Schema != nil {
				out[crd.Spec.Names.Kind] = v.Schema.OpenAPIV3Schema
			}
		}
		if out[crd.Spec.Names.Kind] == nil {
			return nil, fmt.Errorf("Strimzi CRD %s: no v1beta2 schema", f)
		}
	}
	return out, nil
}

// validate returns what in v (a decoded YAML or JSON value at path) the
// schema refuses, as the API server with strict field validation would: a
// field the schema does not name, a wrong type, a value outside an
// enumeration, a bound or a pattern, a missing required field, and a
// choice of exactly one of a oneOf's alternatives.
func (s *crdSchema) validate(path string, v any) []string {
	if s == nil || s.PreserveUnknown && s.Properties == nil {
		return nil
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	if !s.typeOK(v) {
		bad("%s, want %s", typeName(v), s.Type)
		return errs
	}
	if len(s.Enum) > 0 && !slices.ContainsFunc(s.Enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		bad("%v is not one of %v", v, s.Enum)
	}
	switch x := v.(type) {
	case map[string]any:
		for _, r := range s.Required {
			if _, ok := x[r]; !ok {
				bad("required field %q missing", r)
			}
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch sub := s.Properties[k]; {
			case sub != nil:
				errs = append(errs, sub.validate(path+"."+k, x[k])...)
			case s.AdditionalProperties != nil:
				errs = append(errs, s.AdditionalProperties.validate(path+"."+k, x[k])...)
			case s.Properties != nil && !s.PreserveUnknown:
				bad("unknown field %q", k)
			}
		}
		errs = append(errs, s.choices(path, x)...)
	case []any:
		if s.MinItems != nil && len(x) < *s.MinItems {
			bad("%d items, at least %d", len(x), *s.MinItems)
		}
		if s.MaxItems != nil && len(x) > *s.MaxItems {
			bad("%d items, at most %d", len(x), *s.MaxItems)
		}
		for i, e := range x {
			errs = append(errs, s.Items.validate(fmt.Sprintf("%s[%d]", path, i), e)...)
		}
	case float64:
		if s.Minimum != nil && x < *s.Minimum {
			bad("%v is below the minimum %v", x, *s.Minimum)
		}
		if s.Maximum != nil && x > *s.Maximum {
			bad("%v is above the maximum %v", x, *s.Maximum)
		}
	case string:
		if s.Pattern != "" {
			re, err := regexp.Compile(s.Pattern)
			if err != nil {
				bad("the schema's pattern %q does not compile: %v", s.Pattern, err)
			} else if !re.MatchString(x) {
				bad("%q does not match %s", x, s.Pattern)
			}
		}
	}
	return errs
}

// choices checks the oneOf and anyOf of an object's schema. Strimzi's name
// the fields of each alternative and require some of them: an alternative is
// chosen when its required fields are all set.
func (s *crdSchema) choices(path string, x map[string]any) []string {
	count := func(alts []*crdSchema) (chosen int, decisive bool) {
		for _, a := range alts {
			if len(a.Required) == 0 {
				continue
			}
			decisive = true
			all := true
			for _, r := range a.Required {
				_, ok := x[r]
				all = all && ok
			}
			if all {
				chosen++
			}
		}
		return chosen, decisive
	}
	var errs []string
	if n, decisive := count(s.OneOf); decisive && n != 1 {
		errs = append(errs, fmt.Sprintf("%s: %d of the exclusive alternatives set, want exactly one", path, n))
	}
	if n, decisive := count(s.AnyOf); decisive && n == 0 {
		errs = append(errs, path+": none of the alternatives set")
	}
	return errs
}

func (s *crdSchema) typeOK(v any) bool {
	if s.IntOrString {
		_, isNum := v.(float64)
		_, isStr := v.(string)
		return isNum || isStr
	}
	switch s.Type {
	case "":
		return true
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	}
	return false
}

func typeName(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// checkAgainstCRD validates a rendered Strimzi resource (its YAML) against
// its kind's CRD schema.
func checkAgainstCRD(kind, name string, y []byte, p *problems) {
	s := strimziCRDs[kind]
	if s == nil {
		return
	}
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		p.add("%s %s: %v", kind, name, err)
		return
	}
	for _, e := range s.validate(strings.ToLower(kind), v) {
		p.add("%s %s: Strimzi CRD schema: %s", kind, name, e)
	}
}
