// Package validate holds the tests of the Kubernetes manifests of
// deploy/k8s: every overlay rendered with kustomize, every object decoded
// strictly into its API type, and the manifests checked against the code
// (flags and their environment variables, ports, probes, drain times,
// topics, alerts). It has no code of its own.
package validate
