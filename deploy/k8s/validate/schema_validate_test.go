package validate

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestSchemaValidator: the checks of crdSchema.validate, on a schema shaped
// like Strimzi's.
func TestSchemaValidator(t *testing.T) {
	var s crdSchema
	if err := yaml.Unmarshal([]byte(`
type: object
required: [spec]
properties:
  metadata: {type: object}
  spec:
    type: object
    properties:
      replicas: {type: integer, minimum: 1, maximum: 5}
      size: {x-kubernetes-int-or-string: true}
      kind: {type: string, enum: [a, b]}
      name: {type: string, pattern: "^[a-z]{1,4}$"}
      labels: {type: object, additionalProperties: {type: string}}
      config: {type: object, x-kubernetes-preserve-unknown-fields: true}
      items: {type: array, minItems: 1, items: {type: boolean}}
      value: {type: object, properties: {secretRef: {type: string}, configRef: {type: string}},
        oneOf: [{properties: {secretRef: {}}, required: [secretRef]}, {properties: {configRef: {}}, required: [configRef]}]}
`), &s); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ doc, want string }{
		{`{metadata: {anything: 1}, spec: {replicas: 3, size: 10Gi, kind: a, name: abc, labels: {x: z}, config: {any: [1]}, items: [true], value: {secretRef: s}}}`, ""},
		{`{spec: {size: 3}}`, ""},
		{`{}`, `x: required field "spec" missing`},
		{`{spec: {replica: 3}}`, `x.spec: unknown field "replica"`},
		{`{spec: {replicas: 0}}`, "x.spec.replicas: 0 is below the minimum 1"},
		{`{spec: {replicas: 9}}`, "x.spec.replicas: 9 is above the maximum 5"},
		{`{spec: {replicas: 2.5}}`, "x.spec.replicas: a number, want integer"},
		{`{spec: {replicas: "3"}}`, "x.spec.replicas: a string, want integer"},
		{`{spec: {size: true}}`, "x.spec.size: a boolean, want "},
		{`{spec: {kind: c}}`, "x.spec.kind: c is not one of [a b]"},
		{`{spec: {name: abcde}}`, `x.spec.name: "abcde" does not match ^[a-z]{1,4}$`},
		{`{spec: {labels: {x: 1}}}`, "x.spec.labels.x: a number, want string"},
		{`{spec: {items: []}}`, "x.spec.items: 0 items, at least 1"},
		{`{spec: {items: [1]}}`, "x.spec.items[0]: a number, want boolean"},
		{`{spec: {value: {}}}`, "x.spec.value: 0 of the exclusive alternatives set, want exactly one"},
		{`{spec: {value: {secretRef: a, configRef: b}}}`, "x.spec.value: 2 of the exclusive alternatives set, want exactly one"},
	} {
		var v any
		if err := yaml.Unmarshal([]byte(c.doc), &v); err != nil {
			t.Fatal(err)
		}
		errs := s.validate("x", v)
		switch {
		case c.want == "" && len(errs) > 0:
			t.Errorf("%s: %v, want no error", c.doc, errs)
		case c.want != "" && (len(errs) != 1 || !strings.HasPrefix(errs[0], c.want)):
			t.Errorf("%s: %v, want one error %q", c.doc, errs, c.want)
		}
	}
}
