// Package integration holds end-to-end tests of the whole pipeline against
// real Kafka and Redis (build tag "integration"; `make test` starts the
// services and runs them). The parts run in-process through their Run
// methods; hits arrive over real HTTP and counts are read from the query API.
package integration
