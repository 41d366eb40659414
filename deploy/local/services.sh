#!/usr/bin/env bash
# Local test services for pixelpipe, without a container engine:
#   - Apache Kafka (KRaft, single node, broker+controller), assembled from Maven
#     Central artifacts and run with the machine's java;
#   - on request (kafka-cluster-up), a Kafka cluster of three such nodes on
#     loopback (each broker and controller: a quorum of three), for the
#     broker-failure tests;
#   - redis-server from Debian's packages, our own instance (not the system one);
#   - a Redis Cluster of six more redis-server processes on loopback (three
#     masters with a replica each), for the tests of the Redis users on a
#     cluster.
#
# Usage: deploy/local/services.sh up|down|status|kafka-up|kafka-down|cluster-up|cluster-down|
#        kafka-cluster-up|kafka-cluster-down|kafka-node-up N|strimzi-crds|help
#
# Everything downloaded or generated lives under <repo>/.cache/:
#   .cache/kafka-<version>/libs/       broker classpath (marker: libs/.complete)
#   .cache/run/kafka/                  server.properties, log4j.properties, data/
#   .cache/run/redis/                  redis working dir (AOF)
#   .cache/run/{kafka,redis}.{pid,log} pidfiles and logs
#   .cache/run/redis-cluster/<port>/   a cluster node's working dir (nodes.conf, AOF)
#   .cache/run/redis-cluster/<port>.{pid,log}  its pidfile and log
#   .cache/run/kafka-cluster/<n>/      Kafka cluster node n (1-3): server.properties, data/
#   .cache/run/kafka-cluster/<n>.{pid,log}     its pidfile and log
#   .cache/run/kafka-cluster/cluster.id        the cluster id all three are formatted with
#
# Environment:
#   PIXEL_KAFKA_VERSION   Kafka version (default below)
#   PIXEL_KAFKA_PORT      client listener on 127.0.0.1 (default 19092)
#   PIXEL_KAFKA_CONTROLLER_PORT  KRaft controller listener (default: kafka port + 1)
#   PIXEL_REDIS_PORT      redis port on 127.0.0.1 (default 16379)
#   PIXEL_REDIS_CLUSTER_PORT  first port of the Redis Cluster's six nodes on
#                         127.0.0.1 (default 17000: 17000-17005; their cluster bus
#                         ports are 10000 higher)
#   PIXEL_KAFKA_CLUSTER_PORT  first client port of the Kafka cluster's three
#                         nodes on 127.0.0.1 (default 19192: 19192-19194)
#   PIXEL_KAFKA_CLUSTER_CONTROLLER_PORT  first of their controller ports
#                         (default: cluster port + 100)
#   PIXEL_KAFKA_HEAP      JVM heap options (default "-Xms256m -Xmx768m"; the
#                         cluster's nodes: "-Xms128m -Xmx384m" each)
#   PIXEL_START_TIMEOUT   seconds to wait for each service (default 90)
#   PIXEL_RUN_DIR         run/state folder instead of .cache/run (pidfiles, logs,
#                         data); with other ports this lets a second, private
#                         broker live next to the shared one (internal/pipetest
#                         PrivateKafka starts one per fault test this way)
set -euo pipefail

readonly DEFAULT_KAFKA_VERSION=3.9.2

KAFKA_VERSION=${PIXEL_KAFKA_VERSION:-$DEFAULT_KAFKA_VERSION}
KAFKA_PORT=${PIXEL_KAFKA_PORT:-19092}
CONTROLLER_PORT=${PIXEL_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
REDIS_PORT=${PIXEL_REDIS_PORT:-16379}
CLUSTER_PORT=${PIXEL_REDIS_CLUSTER_PORT:-17000}
readonly CLUSTER_NODES=6 CLUSTER_REPLICAS=1
KAFKA_CLUSTER_PORT=${PIXEL_KAFKA_CLUSTER_PORT:-19192}
KAFKA_CLUSTER_CONTROLLER_PORT=${PIXEL_KAFKA_CLUSTER_CONTROLLER_PORT:-$((KAFKA_CLUSTER_PORT + 100))}
readonly KAFKA_CLUSTER_NODES=3
KAFKA_HEAP=${PIXEL_KAFKA_HEAP:--Xms256m -Xmx768m}
KAFKA_NODE_HEAP=${PIXEL_KAFKA_HEAP:--Xms128m -Xmx384m}
START_TIMEOUT=${PIXEL_START_TIMEOUT:-90}
STOP_TIMEOUT=30

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)
CACHE_DIR=$REPO_ROOT/.cache
RUN_DIR=${PIXEL_RUN_DIR:-$CACHE_DIR/run}

KAFKA_HOME=$CACHE_DIR/kafka-$KAFKA_VERSION
KAFKA_LIBS=$KAFKA_HOME/libs
KAFKA_RUN=$RUN_DIR/kafka
KAFKA_DATA=$KAFKA_RUN/data
KAFKA_PID=$RUN_DIR/kafka.pid
KAFKA_LOG=$RUN_DIR/kafka.log
KAFKA_VERSION_FILE=$RUN_DIR/kafka.version
KAFKA_MAIN=kafka.Kafka
# The single node's settings; kafka_node switches them to a cluster node's.
KAFKA_NAME=Kafka
NODE_ID=1
VOTERS=1@127.0.0.1:$CONTROLLER_PORT
REPLICAS=1 MIN_ISR=1
KAFKA_CLUSTER_ID=''
KAFKA_CLUSTER_RUN=$RUN_DIR/kafka-cluster

REDIS_RUN=$RUN_DIR/redis
REDIS_PID=$RUN_DIR/redis.pid
REDIS_LOG=$RUN_DIR/redis.log
CLUSTER_RUN=$RUN_DIR/redis-cluster

export DEBIAN_FRONTEND=noninteractive

log() { printf '[services] %s\n' "$*" >&2; }
die() {
  printf '[services] ERROR: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<EOF
Usage: $0 up|down|status|kafka-up|kafka-down|cluster-up|cluster-down

  up      install (first time) and start Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT,
          redis on 127.0.0.1:$REDIS_PORT and the Redis Cluster on 127.0.0.1:$CLUSTER_PORT-$((CLUSTER_PORT + CLUSTER_NODES - 1));
          does nothing for what already runs
  down    stop the processes recorded in .cache/run/*.pid and .cache/run/redis-cluster/*.pid
  status  print what runs; exit status 1 if a service is down
  kafka-up, kafka-down      the same for Kafka alone (no redis)
  cluster-up, cluster-down  the same for the Redis Cluster alone
  kafka-cluster-up          a Kafka cluster of three nodes on 127.0.0.1:$KAFKA_CLUSTER_PORT-$((KAFKA_CLUSTER_PORT + KAFKA_CLUSTER_NODES - 1))
                            (replication factor 3, min.insync.replicas 2); not part of up
  kafka-cluster-down        stop it
  kafka-node-up N           start node N (1-3) of the Kafka cluster again, on its data
  strimzi-crds              write Strimzi's CustomResourceDefinitions (Kafka, KafkaNodePool,
                            KafkaTopic) with Strimzi's CRD generator from Maven Central into
                            .cache/strimzi-crds-VERSION/ (once) and print that folder
EOF
}

# ---------------------------------------------------------------- helpers

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    as_root apt-get update -q </dev/null >&2
    APT_UPDATED=1
  fi
  log "apt-get install -y $*"
  as_root apt-get install -y -q --no-install-recommends "$@" </dev/null >&2
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# read_pid FILE: prints the pid stored in FILE, if it is a number.
read_pid() {
  local pid=''
  if [[ -f $1 ]]; then
    read -r pid <"$1" 2>/dev/null || true
  fi
  [[ $pid =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
}

# pid_matches PID PATTERN: the process is alive and its command line contains PATTERN
# (guards against a recycled pid after a crash).
pid_matches() {
  local pid=$1 pattern=$2 cmdline
  kill -0 "$pid" 2>/dev/null || return 1
  [[ -r /proc/$pid/cmdline ]] || return 0
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$pattern"* ]]
}

# live_pid PIDFILE PATTERN: prints the pid if the pidfile names a live matching process.
live_pid() {
  local pid
  pid=$(read_pid "$1") || return 1
  pid_matches "$pid" "$2" || return 1
  printf '%s\n' "$pid"
}

# stop_pid NAME PID PATTERN: SIGTERM, wait up to STOP_TIMEOUT s, then SIGKILL.
stop_pid() {
  local name=$1 pid=$2 pattern=$3 i
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    pid_matches "$pid" "$pattern" || return 0
    sleep 0.1
  done
  log "$name (pid $pid) still alive after ${STOP_TIMEOUT}s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_matches "$pid" "$pattern" || return 0
    sleep 0.1
  done
  die "could not stop $name (pid $pid)"
}

# ---------------------------------------------------------------- kafka

ensure_java() {
  local java_bin
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    java_bin=$JAVA_HOME/bin/java
  elif command -v java >/dev/null 2>&1; then
    java_bin=$(command -v java)
  else
    apt_install openjdk-17-jre-headless
    java_bin=$(command -v java)
  fi
  JAVA=$java_bin
}

ensure_maven() {
  command -v mvn >/dev/null 2>&1 || apt_install maven
}

# Downloads the broker classpath once per (version, pom) into .cache/kafka-<v>/libs.
ensure_kafka_libs() {
  local pom=$SCRIPT_DIR/kafka/pom.xml stamp tmp
  stamp="kafka=$KAFKA_VERSION pom=$(cksum <"$pom" | cut -d' ' -f1)"
  if [[ -f $KAFKA_LIBS/.complete && $(<"$KAFKA_LIBS/.complete") == "$stamp" ]]; then
    return 0
  fi
  ensure_maven
  log "downloading Kafka $KAFKA_VERSION from Maven Central into ${KAFKA_LIBS#"$REPO_ROOT"/}"
  mkdir -p "$KAFKA_HOME"
  # Maven runs on a copy of the pom so that no target/ appears in the source tree.
  cp "$pom" "$KAFKA_HOME/pom.xml"
  tmp=$KAFKA_HOME/libs.tmp.$$
  rm -rf "$tmp"
  if ! mvn -B -q -f "$KAFKA_HOME/pom.xml" \
    -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies \
    -DincludeScope=runtime \
    -DoutputDirectory="$tmp" </dev/null >"$KAFKA_HOME/mvn.log" 2>&1; then
    tail -n 30 "$KAFKA_HOME/mvn.log" >&2 || true
    rm -rf "$tmp"
    die "mvn could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (is it on Maven Central?); see $KAFKA_HOME/mvn.log"
  fi
  [[ -n $(compgen -G "$tmp/kafka_2.13-$KAFKA_VERSION.jar") ]] ||
    die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn copy-dependencies"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  printf '%s\n' "$stamp" >"$KAFKA_LIBS/.complete"
  log "Kafka $KAFKA_VERSION: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars"
}

# kafka_cmd MAINCLASS ARGS...: sets KAFKA_CMD to the java command line.
kafka_cmd() {
  local heap
  read -r -a heap <<<"$KAFKA_HEAP"
  KAFKA_CMD=("$JAVA" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$KAFKA_RUN/log4j.properties"
    "-Dlog4j2.configurationFile=$KAFKA_RUN/log4j2.properties"
    "-Dkafka.logs.dir=$KAFKA_RUN"
    -cp "$KAFKA_LIBS/*" "$@")
}

kafka_java() {
  kafka_cmd "$@"
  "${KAFKA_CMD[@]}"
}

# render_kafka_config FILE: server.properties for the current ports and data dir.
render_kafka_config() {
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
    -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
    -e "s|@NODE_ID@|$NODE_ID|g" \
    -e "s|@VOTERS@|$VOTERS|g" \
    -e "s|@REPLICAS@|$REPLICAS|g" \
    -e "s|@MIN_ISR@|$MIN_ISR|g" \
    -e "s|@DATA_DIR@|$KAFKA_DATA|g" \
    "$SCRIPT_DIR/kafka/server.properties.in" >"$1"
}

write_kafka_config() {
  mkdir -p "$KAFKA_RUN"
  render_kafka_config "$KAFKA_RUN/server.properties"
  cp "$SCRIPT_DIR/kafka/log4j.properties" "$SCRIPT_DIR/kafka/log4j2.properties" "$KAFKA_RUN/"
}

# kafka_config_changed: the running broker was started with another server.properties
# (template edited, or other ports asked for).
kafka_config_changed() {
  local tmp rc=1
  tmp=$(mktemp "$RUN_DIR/server.properties.XXXXXX")
  render_kafka_config "$tmp"
  cmp -s "$tmp" "$KAFKA_RUN/server.properties" || rc=0
  rm -f "$tmp"
  return "$rc"
}

wipe_kafka_data() {
  log "wiping Kafka data dir ${KAFKA_DATA#"$REPO_ROOT"/}"
  rm -rf "$KAFKA_DATA"
}

new_cluster_id() {
  local id
  id=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$KAFKA_LOG" | tail -n1)
  [[ $id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "could not generate a cluster id; see $KAFKA_LOG"
  printf '%s\n' "$id"
}

# Formats the KRaft storage unless it is already formatted by this Kafka
# version (and, for a cluster node, with the cluster's id).
format_kafka_storage() {
  local cluster_id=$KAFKA_CLUSTER_ID stamp_file=$KAFKA_DATA/.pixelpipe-kafka-version stamp
  stamp="$KAFKA_VERSION${cluster_id:+ $cluster_id}"
  if [[ -f $KAFKA_DATA/meta.properties ]]; then
    if [[ -f $stamp_file && $(<"$stamp_file") == "$stamp" ]]; then
      return 0
    fi
    log "$KAFKA_NAME data dir was written by another Kafka version or for another cluster"
    wipe_kafka_data
  fi
  rm -rf "$KAFKA_DATA"
  mkdir -p "$KAFKA_DATA"
  [[ -n $cluster_id ]] || cluster_id=$(new_cluster_id)
  log "formatting $KAFKA_NAME's KRaft storage (cluster id $cluster_id)"
  kafka_java kafka.tools.StorageTool format -t "$cluster_id" \
    -c "$KAFKA_RUN/server.properties" </dev/null >>"$KAFKA_LOG" 2>&1 ||
    die "kafka.tools.StorageTool format failed; see $KAFKA_LOG"
  printf '%s\n' "$stamp" >"$stamp_file"
}

# wait_exec PID PATTERN: a child just started with `cmd &` runs as a copy of
# this shell until it execs; until then its command line is this script's,
# and pid_matches would call it gone. Waits (10 s at most) until the command
# line shows PATTERN or the process ended.
wait_exec() {
  local pid=$1 pattern=$2 i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    pid_matches "$pid" "$pattern" && return 0
    sleep 0.1
  done
}

# wait_kafka PID: 0 when ready, 1 when the process died or the timeout passed.
wait_kafka() {
  local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! pid_matches "$pid" "$KAFKA_MAIN"; then
      log "$KAFKA_NAME (pid $pid) exited during startup"
      return 1
    fi
    if port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$KAFKA_LOG" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  log "$KAFKA_NAME (pid $pid) not ready after ${START_TIMEOUT}s"
  return 1
}

# launch_kafka: formats the storage when needed and starts the node in the
# background, recording its pid; prints the pid.
launch_kafka() {
  local pid
  [[ -f $KAFKA_LOG ]] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.prev"
  : >"$KAFKA_LOG"
  format_kafka_storage
  log "starting $KAFKA_NAME $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller 127.0.0.1:$CONTROLLER_PORT)"
  # setsid: the broker is not tied to the caller's session or process group.
  kafka_cmd "$KAFKA_MAIN" "$KAFKA_RUN/server.properties"
  # 9>&-: the broker must not inherit (and so keep) the services.lock lock.
  setsid "${KAFKA_CMD[@]}" </dev/null >>"$KAFKA_LOG" 2>&1 9>&- &
  pid=$!
  wait_exec "$pid" "$KAFKA_MAIN"
  printf '%s\n' "$pid" >"$KAFKA_PID"
  printf '%s\n' "$KAFKA_VERSION" >"$KAFKA_VERSION_FILE"
  printf '%s\n' "$pid"
}

start_kafka_once() {
  local pid
  pid=$(launch_kafka)
  if wait_kafka "$pid"; then
    return 0
  fi
  pid_matches "$pid" "$KAFKA_MAIN" && stop_pid kafka "$pid" "$KAFKA_MAIN"
  rm -f "$KAFKA_PID"
  return 1
}

kafka_up() {
  local pid running_version=''
  if pid=$(live_pid "$KAFKA_PID" "$KAFKA_MAIN"); then
    [[ -f $KAFKA_VERSION_FILE ]] && running_version=$(<"$KAFKA_VERSION_FILE")
    if [[ $running_version != "$KAFKA_VERSION" ]]; then
      log "$KAFKA_NAME ${running_version:-?} runs (pid $pid) but $KAFKA_VERSION was asked for: restarting"
      stop_pid kafka "$pid" "$KAFKA_MAIN"
    elif kafka_config_changed; then
      log "$KAFKA_NAME config changed (template or ports) since pid $pid started: restarting"
      stop_pid kafka "$pid" "$KAFKA_MAIN"
    elif port_open "$KAFKA_PORT"; then
      log "$KAFKA_NAME $KAFKA_VERSION already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
      return 0
    elif wait_kafka "$pid"; then
      log "$KAFKA_NAME $KAFKA_VERSION running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
      return 0
    else
      stop_pid kafka "$pid" "$KAFKA_MAIN"
    fi
  elif [[ -f $KAFKA_PID ]]; then
    log "removing stale Kafka pidfile"
  fi
  rm -f "$KAFKA_PID"

  local p
  for p in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "port 127.0.0.1:$p is taken by another process (not ours); set PIXEL_KAFKA_PORT or free it"
    fi
  done

  ensure_java
  ensure_kafka_libs
  write_kafka_config

  if start_kafka_once; then
    log "$KAFKA_NAME $KAFKA_VERSION ready (pid $(read_pid "$KAFKA_PID")) on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  log "last lines of $KAFKA_LOG:"
  tail -n 15 "$KAFKA_LOG" >&2 || true
  log "retrying once with a fresh data dir (stale or broken metadata)"
  wipe_kafka_data
  if start_kafka_once; then
    log "$KAFKA_NAME $KAFKA_VERSION ready (pid $(read_pid "$KAFKA_PID")) on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  tail -n 30 "$KAFKA_LOG" >&2 || true
  die "$KAFKA_NAME $KAFKA_VERSION did not start; full log: $KAFKA_LOG (previous run: $KAFKA_LOG.prev)"
}

# ---------------------------------------------------------------- kafka cluster
#
# Three Kafka nodes on 127.0.0.1:KAFKA_CLUSTER_PORT.., each broker and
# controller (a controller quorum of three: any one node may die), formatted
# with one cluster id, topics with three replicas of which two must have a
# write before it is acknowledged. Each node keeps its own folder, pidfile and
# log under KAFKA_CLUSTER_RUN; kafka_node points the Kafka variables above at
# one of them, so the single node's functions start, wait for and stop it.

kafka_cluster_nodes() { seq 1 "$KAFKA_CLUSTER_NODES"; }

kafka_node() {
  local n=$1 i voters=()
  [[ $n =~ ^[1-9]$ ]] && ((n <= KAFKA_CLUSTER_NODES)) || die "no Kafka cluster node $n (1-$KAFKA_CLUSTER_NODES)"
  for i in $(kafka_cluster_nodes); do
    voters+=("$i@127.0.0.1:$((KAFKA_CLUSTER_CONTROLLER_PORT + i - 1))")
  done
  KAFKA_NAME="Kafka node $n"
  NODE_ID=$n
  VOTERS=$(
    IFS=,
    printf '%s' "${voters[*]}"
  )
  REPLICAS=3 MIN_ISR=2
  KAFKA_PORT=$((KAFKA_CLUSTER_PORT + n - 1))
  CONTROLLER_PORT=$((KAFKA_CLUSTER_CONTROLLER_PORT + n - 1))
  KAFKA_RUN=$KAFKA_CLUSTER_RUN/$n
  KAFKA_DATA=$KAFKA_RUN/data
  KAFKA_PID=$KAFKA_CLUSTER_RUN/$n.pid
  KAFKA_LOG=$KAFKA_CLUSTER_RUN/$n.log
  KAFKA_VERSION_FILE=$KAFKA_CLUSTER_RUN/$n.version
  KAFKA_HEAP=$KAFKA_NODE_HEAP
}

# kafka_cluster_id: the id the cluster's nodes are formatted with, made once.
kafka_cluster_id() {
  local file=$KAFKA_CLUSTER_RUN/cluster.id
  mkdir -p "$KAFKA_CLUSTER_RUN"
  if [[ ! -s $file ]]; then
    new_cluster_id >"$file"
  fi
  KAFKA_CLUSTER_ID=$(<"$file")
}

kafka_cluster_addrs() {
  local n out=()
  for n in $(kafka_cluster_nodes); do
    out+=("127.0.0.1:$((KAFKA_CLUSTER_PORT + n - 1))")
  done
  (
    IFS=,
    printf '%s\n' "${out[*]}"
  )
}

# kafka_cluster_up starts the nodes that do not run, all at once (a node's
# startup waits for a quorum of controllers, so one at a time would never
# finish), then waits for each.
kafka_cluster_up() {
  local n pid pids=() started=()
  ensure_java
  ensure_kafka_libs
  for n in $(kafka_cluster_nodes); do
    kafka_node "$n"
    pid=''
    if pid=$(live_pid "$KAFKA_PID" "$KAFKA_MAIN") && ! kafka_config_changed; then
      continue
    elif [[ -n ${pid:-} ]]; then
      log "$KAFKA_NAME config changed since pid $pid started: restarting"
      stop_pid "$KAFKA_NAME" "$pid" "$KAFKA_MAIN"
    fi
    rm -f "$KAFKA_PID"
    local p
    for p in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
      port_open "$p" &&
        die "port 127.0.0.1:$p is taken by another process (not ours); set PIXEL_KAFKA_CLUSTER_PORT or free it"
    done
    write_kafka_config
    kafka_cluster_id
    launch_kafka >/dev/null
    started+=("$n")
  done
  for n in $(kafka_cluster_nodes); do
    kafka_node "$n"
    pid=$(read_pid "$KAFKA_PID") || die "$KAFKA_NAME has no pidfile"
    if ! wait_kafka "$pid"; then
      tail -n 30 "$KAFKA_LOG" >&2 || true
      die "$KAFKA_NAME did not start; full log: $KAFKA_LOG"
    fi
    pids+=("$pid")
  done
  log "Kafka cluster ready (pids ${pids[*]}${started[*]:+, started nodes ${started[*]}}) on $(kafka_cluster_addrs)"
}

# kafka_cluster_stop stops the nodes together: stopped one after the other,
# the last would wait for a quorum of controllers that is gone.
kafka_cluster_stop() {
  local n pid
  for n in $(kafka_cluster_nodes); do
    kafka_node "$n"
    if pid=$(live_pid "$KAFKA_PID" "$KAFKA_MAIN"); then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for n in $(kafka_cluster_nodes); do
    kafka_node "$n"
    if pid=$(live_pid "$KAFKA_PID" "$KAFKA_MAIN"); then
      stop_pid "$KAFKA_NAME" "$pid" "$KAFKA_MAIN"
    fi
    rm -f "$KAFKA_PID"
  done
}

# ---------------------------------------------------------------- strimzi CRDs
#
# The deploy/k8s validation checks the Strimzi resources against Strimzi's
# CustomResourceDefinitions. Strimzi generates them from its API model with
# its CRD generator, both on Maven Central: the same run here gives the
# schemas of that release.

STRIMZI_POM=$REPO_ROOT/deploy/k8s/validate/strimzi/pom.xml

strimzi_crds() {
  local version dir tmp out
  version=$(sed -n 's|.*<strimzi.version>\(.*\)</strimzi.version>.*|\1|p' "$STRIMZI_POM")
  [[ -n $version ]] || die "no strimzi.version in $STRIMZI_POM"
  dir=$CACHE_DIR/strimzi-crds-$version
  if [[ -f $dir/.complete ]]; then
    printf '%s\n' "$dir"
    return 0
  fi
  ensure_java
  ensure_maven
  log "generating Strimzi $version CRDs with its CRD generator (Maven Central) into ${dir#"$REPO_ROOT"/}"
  tmp=$dir.tmp.$$
  rm -rf "$tmp" && mkdir -p "$tmp/libs"
  cp "$STRIMZI_POM" "$tmp/pom.xml"
  if ! mvn -B -q -f "$tmp/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$tmp/libs" </dev/null >"$tmp/mvn.log" 2>&1; then
    tail -n 20 "$tmp/mvn.log" >&2 || true
    die "mvn could not fetch io.strimzi:api and io.strimzi:crd-generator $version; see $tmp/mvn.log"
  fi
  if ! out=$("$JAVA" -cp "$tmp/libs/*" io.strimzi.crdgenerator.CrdGenerator \
    --target-kube 1.16+ --crd-api-version v1 --api-versions v1beta2 --storage-version v1beta2 --yaml \
    "io.strimzi.api.kafka.model.kafka.Kafka=$tmp/kafka.yaml" \
    "io.strimzi.api.kafka.model.nodepool.KafkaNodePool=$tmp/kafkanodepool.yaml" \
    "io.strimzi.api.kafka.model.topic.KafkaTopic=$tmp/kafkatopic.yaml" </dev/null 2>&1); then
    printf '%s\n' "$out" >&2
    die "Strimzi's CRD generator failed"
  fi
  rm -rf "$tmp/libs" "$tmp/pom.xml"
  printf '%s\n' "$version" >"$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  printf '%s\n' "$dir"
}

# ---------------------------------------------------------------- redis

redis_pattern() { printf 'redis-server 127.0.0.1:%s\n' "$REDIS_PORT"; }

ensure_redis() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server redis-tools
  fi
}

# ensure_test_tools: the downstream-contract test reads a real topic with
# kcat and decodes it with protoc --decode (integration/contract_test.go).
ensure_test_tools() {
  if ! command -v kcat >/dev/null 2>&1 || ! command -v protoc >/dev/null 2>&1; then
    apt_install kcat protobuf-compiler
  fi
}

redis_ping() {
  [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

redis_up() {
  local pid pattern
  pattern=$(redis_pattern)
  if pid=$(live_pid "$REDIS_PID" "$pattern"); then
    if redis_ping; then
      log "redis already running (pid $pid) on 127.0.0.1:$REDIS_PORT"
      return 0
    fi
    stop_pid redis "$pid" "$pattern"
  elif [[ -f $REDIS_PID ]]; then
    log "removing stale redis pidfile"
  fi
  rm -f "$REDIS_PID"
  port_open "$REDIS_PORT" &&
    die "port 127.0.0.1:$REDIS_PORT is taken by another process (not ours); set PIXEL_REDIS_PORT or free it"

  ensure_redis
  mkdir -p "$REDIS_RUN"
  log "starting redis on 127.0.0.1:$REDIS_PORT"
  local out
  if ! out=$(redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
    --daemonize yes --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" \
    --dir "$REDIS_RUN" --appendonly yes --appendfsync everysec --save '' \
    </dev/null 2>&1 9>&-); then
    printf '%s\n' "$out" >&2
    die "redis-server failed to start; see $REDIS_LOG"
  fi

  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if redis_ping; then
      log "redis ready (pid $(read_pid "$REDIS_PID")) on 127.0.0.1:$REDIS_PORT"
      return 0
    fi
    sleep 0.1
  done
  tail -n 20 "$REDIS_LOG" >&2 || true
  die "redis did not answer PING on 127.0.0.1:$REDIS_PORT; see $REDIS_LOG"
}

# ---------------------------------------------------------------- redis cluster
#
# Six redis-server processes on 127.0.0.1:CLUSTER_PORT.. (three masters, a
# replica each), each with its own working dir (nodes.conf, AOF), pidfile and
# log under CLUSTER_RUN. redis-cli --cluster create joins them once; after a
# restart the nodes find each other again from their nodes.conf.

cluster_ports() { seq "$CLUSTER_PORT" $((CLUSTER_PORT + CLUSTER_NODES - 1)); }
cluster_pid_file() { printf '%s/%s.pid\n' "$CLUSTER_RUN" "$1"; }
cluster_pattern() { printf 'redis-server 127.0.0.1:%s\n' "$1"; }

# cluster_info PORT: the node's CLUSTER INFO (empty when it does not answer).
cluster_info() {
  redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | tr -d '\r' || true
}

# cluster_field INFO NAME: the value of NAME in a CLUSTER INFO text.
cluster_field() {
  sed -n "s/^$2:\(.*\)$/\1/p" <<<"$1"
}

# cluster_node_ok PORT: the node answers, sees the cluster as ok, every slot
# served, and knows every node.
cluster_node_ok() {
  local info
  info=$(cluster_info "$1")
  [[ $(cluster_field "$info" cluster_state) == ok &&
    $(cluster_field "$info" cluster_slots_ok) == 16384 &&
    $(cluster_field "$info" cluster_known_nodes) == "$CLUSTER_NODES" ]]
}

cluster_ok() {
  local port
  for port in $(cluster_ports); do
    cluster_node_ok "$port" || return 1
  done
}

# cluster_roles_ok: every node sees CLUSTER_NODES / (1 + CLUSTER_REPLICAS)
# masters and the rest as replicas, none failed (a restarted node that was
# failed over takes a moment to learn it is a replica now).
cluster_roles_ok() {
  local port flags want=$((CLUSTER_NODES / (1 + CLUSTER_REPLICAS)))
  for port in $(cluster_ports); do
    # CLUSTER NODES: "<id> <addr> <flags> ...", flags such as "myself,master".
    flags=$(redis-cli -h 127.0.0.1 -p "$port" cluster nodes 2>/dev/null | tr -d '\r' | awk '{print $3}') || return 1
    grep -qE '(^|,)fail' <<<"$flags" && return 1
    [[ $(grep -cE '(^|,)master(,|$)' <<<"$flags" || true) == "$want" ]] || return 1
    [[ $(grep -cE '(^|,)slave(,|$)' <<<"$flags" || true) == $((CLUSTER_NODES - want)) ]] || return 1
  done
}

# cluster_ready: the cluster serves every slot and every node agrees on who
# is master.
cluster_ready() { cluster_ok && cluster_roles_ok; }

cluster_addrs() {
  local port out=()
  for port in $(cluster_ports); do
    out+=("127.0.0.1:$port")
  done
  printf '%s\n' "${out[*]}"
}

# cluster_start_node PORT: starts the node unless its pidfile names a live one.
cluster_start_node() {
  local port=$1 pid pidfile pattern out
  pidfile=$(cluster_pid_file "$port")
  pattern=$(cluster_pattern "$port")
  if pid=$(live_pid "$pidfile" "$pattern"); then
    return 0
  fi
  rm -f "$pidfile"
  port_open "$port" &&
    die "port 127.0.0.1:$port is taken by another process (not ours); set PIXEL_REDIS_CLUSTER_PORT or free it"
  port_open $((port + 10000)) &&
    die "cluster bus port 127.0.0.1:$((port + 10000)) is taken by another process (not ours); set PIXEL_REDIS_CLUSTER_PORT or free it"
  mkdir -p "$CLUSTER_RUN/$port"
  if ! out=$(redis-server --port "$port" --bind 127.0.0.1 \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --daemonize yes --pidfile "$pidfile" --logfile "$CLUSTER_RUN/$port.log" \
    --dir "$CLUSTER_RUN/$port" --appendonly yes --appendfsync everysec --save '' \
    </dev/null 2>&1 9>&-); then
    printf '%s\n' "$out" >&2
    die "redis-server (cluster node $port) failed to start; see $CLUSTER_RUN/$port.log"
  fi
}

cluster_stop() {
  local port pid pidfile pattern
  for port in $(cluster_ports); do
    pidfile=$(cluster_pid_file "$port")
    pattern=$(cluster_pattern "$port")
    if pid=$(live_pid "$pidfile" "$pattern"); then
      stop_pid "redis cluster node $port" "$pid" "$pattern"
    fi
    rm -f "$pidfile"
  done
}

# cluster_wait CHECK: 0 once CHECK succeeds, 1 after START_TIMEOUT seconds.
cluster_wait() {
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    "$@" && return 0
    sleep 0.2
  done
  return 1
}

cluster_all_ping() {
  local port
  for port in $(cluster_ports); do
    [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]] || return 1
  done
}

# cluster_fresh: no node has a slot or knows another node (never joined).
cluster_fresh() {
  local port info
  for port in $(cluster_ports); do
    info=$(cluster_info "$port")
    [[ $(cluster_field "$info" cluster_slots_assigned) == 0 &&
      $(cluster_field "$info" cluster_known_nodes) == 1 ]] || return 1
  done
}

# cluster_start_once: starts the nodes (with whatever state their dirs hold),
# joins them when they never were, and waits for the cluster to be ok.
cluster_start_once() {
  local port
  for port in $(cluster_ports); do
    cluster_start_node "$port"
  done
  if ! cluster_wait cluster_all_ping; then
    log "redis cluster nodes did not all answer PING within ${START_TIMEOUT}s"
    return 1
  fi
  if cluster_fresh; then
    log "creating the redis cluster: $(cluster_addrs) ($CLUSTER_REPLICAS replica per master)"
    # shellcheck disable=SC2046
    if ! redis-cli --cluster create $(cluster_addrs) --cluster-replicas "$CLUSTER_REPLICAS" \
      --cluster-yes </dev/null >"$CLUSTER_RUN/create.log" 2>&1; then
      tail -n 20 "$CLUSTER_RUN/create.log" >&2 || true
      log "redis-cli --cluster create failed; see $CLUSTER_RUN/create.log"
      return 1
    fi
  fi
  if cluster_wait cluster_ready; then
    return 0
  fi
  log "redis cluster not ok after ${START_TIMEOUT}s:"
  cluster_info "$CLUSTER_PORT" | head -n 8 >&2
  return 1
}

cluster_up() {
  local port pid
  ensure_redis
  if cluster_ready; then
    local pids=()
    for port in $(cluster_ports); do
      pid=$(live_pid "$(cluster_pid_file "$port")" "$(cluster_pattern "$port")") ||
        die "127.0.0.1:$port answers as a cluster node but is not ours (no live pidfile); set PIXEL_REDIS_CLUSTER_PORT or stop it"
      pids+=("$pid")
    done
    log "redis cluster already running (pids ${pids[*]}) on 127.0.0.1:$CLUSTER_PORT-$((CLUSTER_PORT + CLUSTER_NODES - 1))"
    return 0
  fi
  mkdir -p "$CLUSTER_RUN"
  log "starting the redis cluster on 127.0.0.1:$CLUSTER_PORT-$((CLUSTER_PORT + CLUSTER_NODES - 1))"
  if cluster_start_once; then
    log "redis cluster ready on 127.0.0.1:$CLUSTER_PORT-$((CLUSTER_PORT + CLUSTER_NODES - 1))"
    return 0
  fi
  log "retrying once with fresh cluster nodes (stale or broken nodes.conf)"
  cluster_stop
  for port in $(cluster_ports); do
    rm -rf "${CLUSTER_RUN:?}/$port"
  done
  if cluster_start_once; then
    log "redis cluster ready on 127.0.0.1:$CLUSTER_PORT-$((CLUSTER_PORT + CLUSTER_NODES - 1))"
    return 0
  fi
  for port in $(cluster_ports); do
    tail -n 5 "$CLUSTER_RUN/$port.log" >&2 2>/dev/null || true
  done
  die "the redis cluster did not come up; logs: $CLUSTER_RUN/*.log"
}

cluster_status() {
  local port pid live=() info
  for port in $(cluster_ports); do
    if pid=$(live_pid "$(cluster_pid_file "$port")" "$(cluster_pattern "$port")"); then
      live+=("$port:$pid")
    fi
  done
  info=$(cluster_info "$CLUSTER_PORT")
  if ((${#live[@]} == CLUSTER_NODES)) && cluster_ready; then
    echo "redis cluster: running, ${#live[@]} nodes (port:pid ${live[*]}), $(cluster_field "$info" cluster_size) masters, logs $CLUSTER_RUN/*.log"
    return 0
  fi
  if ((${#live[@]} == 0)); then
    echo "redis cluster: not running"
  else
    echo "redis cluster: unhealthy, ${#live[@]} of $CLUSTER_NODES nodes (port:pid ${live[*]}), state ${info:+$(cluster_field "$info" cluster_state)}, logs $CLUSTER_RUN/*.log"
  fi
  return 1
}

# ---------------------------------------------------------------- commands

with_lock() {
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/services.lock"
  if command -v flock >/dev/null 2>&1; then
    if ! flock -n 9; then
      log "waiting for another services.sh run (lock $RUN_DIR/services.lock)"
      flock -w 300 9 || die "another services.sh still holds $RUN_DIR/services.lock after 300s"
    fi
  fi
}

cmd_up() {
  local t0=$SECONDS
  with_lock
  ensure_test_tools
  redis_up
  cluster_up
  kafka_up
  log "up in $((SECONDS - t0))s: kafka 127.0.0.1:$KAFKA_PORT, redis 127.0.0.1:$REDIS_PORT, redis cluster $(cluster_addrs | tr ' ' ,)"
}

cmd_down() {
  local pid
  with_lock
  if pid=$(live_pid "$KAFKA_PID" "$KAFKA_MAIN"); then
    stop_pid kafka "$pid" "$KAFKA_MAIN"
  else
    log "kafka not running"
  fi
  rm -f "$KAFKA_PID"
  if pid=$(live_pid "$REDIS_PID" redis-server); then
    stop_pid redis "$pid" redis-server
  else
    log "redis not running"
  fi
  rm -f "$REDIS_PID"
  cluster_stop
  kafka_cluster_stop
}

cmd_kafka_up() {
  with_lock
  kafka_up
}

cmd_kafka_down() {
  local pid
  with_lock
  if pid=$(live_pid "$KAFKA_PID" "$KAFKA_MAIN"); then
    stop_pid kafka "$pid" "$KAFKA_MAIN"
  else
    log "kafka not running"
  fi
  rm -f "$KAFKA_PID"
}

cmd_cluster_up() {
  with_lock
  cluster_up
}

cmd_kafka_cluster_up() {
  with_lock
  kafka_cluster_up
}

cmd_kafka_cluster_down() {
  with_lock
  kafka_cluster_stop
}

# cmd_kafka_node_up N: node N of the cluster again (after a kill), on its data,
# while the others run.
cmd_kafka_node_up() {
  with_lock
  [[ -s $KAFKA_CLUSTER_RUN/cluster.id ]] || die "no Kafka cluster in $KAFKA_CLUSTER_RUN: run kafka-cluster-up first"
  KAFKA_CLUSTER_ID=$(<"$KAFKA_CLUSTER_RUN/cluster.id")
  kafka_node "${1:-}"
  kafka_up
}

cmd_cluster_down() {
  with_lock
  cluster_stop
}

cmd_status() {
  local pid rc=0 version='?'
  [[ -f $RUN_DIR/kafka.version ]] && version=$(<"$RUN_DIR/kafka.version")
  if pid=$(live_pid "$KAFKA_PID" "$KAFKA_MAIN") && port_open "$KAFKA_PORT"; then
    echo "kafka: running, Kafka $version, pid $pid, 127.0.0.1:$KAFKA_PORT, log $KAFKA_LOG"
  elif [[ -n ${pid:-} ]]; then
    echo "kafka: starting or unhealthy (pid $pid, port $KAFKA_PORT closed), log $KAFKA_LOG"
    rc=1
  else
    echo "kafka: not running"
    rc=1
  fi
  pid=''
  if pid=$(live_pid "$REDIS_PID" redis-server) && redis_ping; then
    echo "redis: running, pid $pid, 127.0.0.1:$REDIS_PORT, log $REDIS_LOG"
  elif [[ -n ${pid:-} ]]; then
    echo "redis: unhealthy (pid $pid, no PONG on $REDIS_PORT), log $REDIS_LOG"
    rc=1
  else
    echo "redis: not running"
    rc=1
  fi
  cluster_status || rc=1
  return "$rc"
}

main() {
  case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kafka-up) cmd_kafka_up ;;
  kafka-down) cmd_kafka_down ;;
  cluster-up) cmd_cluster_up ;;
  cluster-down) cmd_cluster_down ;;
  kafka-cluster-up) cmd_kafka_cluster_up ;;
  kafka-cluster-down) cmd_kafka_cluster_down ;;
  kafka-node-up) cmd_kafka_node_up "${2:-}" ;;
  strimzi-crds) strimzi_crds ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
  esac
}

main "$@"
