#!/usr/bin/env bash
# A development / CI Apache Kafka: 1 or 3 KRaft nodes (each broker and controller, no ZooKeeper) on free
# 127.0.0.1 ports. The broker jars are resolved once with Maven (scripts/kafka/pom.xml) into a cache
# outside the repository.
#
#   scripts/kafka.sh start [--nodes 1|3] [--dir DIR]   prints the bootstrap address (host:port,…) on stdout
#   scripts/kafka.sh stop  [--dir DIR] [--clean]        stops the nodes started in DIR (--clean: removes DIR)
#   scripts/kafka.sh jars                               resolves the jars only; prints their folder
#
# DIR (default $K2_KAFKA_CACHE/run) holds node-N/{server.properties,data/,kafka.log,pid} and `bootstrap`.
# Broker logs go to node-N/kafka.log (SLF4J simple binding), never to the terminal. With 3 nodes, topics
# default to replication factor 3 and min.insync.replicas=2. Needs java (17+) and mvn on PATH.
# Environment: K2_KAFKA_CACHE (default ~/.cache/k2-kafka), K2_KAFKA_HEAP (default 512m per node).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
POM="$HERE/kafka/pom.xml"
CACHE="${K2_KAFKA_CACHE:-$HOME/.cache/k2-kafka}"
HEAP="${K2_KAFKA_HEAP:-512m}"

say() { echo "kafka.sh: $*" >&2; }
die() {
  say "$*"
  exit 1
}

# Resolves the jars into $CACHE/lib-<hash of the pom> (once; concurrent callers wait on a lock).
jars() {
  command -v java >/dev/null || die "java not found (Kafka needs Java 17+)"
  local hash lib
  hash="$(sha256sum "$POM" | cut -c1-12)"
  lib="$CACHE/lib-$hash"
  mkdir -p "$CACHE"
  if [[ ! -f "$lib/.complete" ]]; then
    command -v mvn >/dev/null || die "mvn not found (needed once, to resolve the Kafka jars)"
    exec 9>"$CACHE/.lock"
    flock 9
    if [[ ! -f "$lib/.complete" ]]; then
      local t0=$SECONDS
      say "resolving the Kafka jars with Maven into $lib (once)"
      rm -rf "$lib.tmp"
      mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib.tmp" >&2 ||
        die "mvn could not resolve the Kafka jars (see above)"
      rm -rf "$lib"
      mv "$lib.tmp" "$lib"
      touch "$lib/.complete"
      say "jars resolved in $((SECONDS - t0)) s"
    fi
    flock -u 9
  fi
  echo "$lib"
}

free_ports() { # N free 127.0.0.1 TCP ports
  node -e '
    const net = require("node:net");
    (async () => {
      const servers = [];
      for (let i = 0; i < Number(process.argv[1]); i++) {
        servers.push(await new Promise((ok) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => ok(s)); }));
      }
      console.log(servers.map((s) => s.address().port).join(" "));
      for (const s of servers) s.close();
    })();' "$1"
}

start() {
  local nodes=1 dir="$CACHE/run"
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --nodes) nodes="$2"; shift 2 ;;
      --dir) dir="$2"; shift 2 ;;
      *) die "start: unknown option $1" ;;
    esac
  done
  [[ "$nodes" == 1 || "$nodes" == 3 ]] || die "--nodes must be 1 or 3"
  mkdir -p "$(dirname "$dir")"
  exec 8>"$dir.lock" # one start at a time per DIR (test files may ask for the shared node together)
  flock 8
  if [[ -f "$dir/bootstrap" ]] && running "$dir"; then
    say "already running in $dir"
    cat "$dir/bootstrap"
    return 0
  fi
  local lib
  lib="$(jars)"
  rm -rf "$dir"
  mkdir -p "$dir"
  local ports
  local -a formats=()
  read -r -a ports <<<"$(free_ports $((2 * nodes)))"
  local cluster voters="" bootstrap="" i rf isr
  cluster="$(node -e 'console.log(require("node:crypto").randomBytes(16).toString("base64url"))')"
  rf=$([[ $nodes == 3 ]] && echo 3 || echo 1)
  isr=$([[ $nodes == 3 ]] && echo 2 || echo 1)
  for ((i = 1; i <= nodes; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:${ports[$((2 * i - 1))]}"
    bootstrap+="${bootstrap:+,}127.0.0.1:${ports[$((2 * i - 2))]}"
  done
  for ((i = 1; i <= nodes; i++)); do
    local nd="$dir/node-$i" port="${ports[$((2 * i - 2))]}" cport="${ports[$((2 * i - 1))]}"
    mkdir -p "$nd/data"
    cat >"$nd/server.properties" <<EOF
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$nd/data
num.partitions=3
default.replication.factor=$rf
min.insync.replicas=$isr
auto.create.topics.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
    java -Xmx256m -cp "$lib/*" kafka.tools.StorageTool format -t "$cluster" -c "$nd/server.properties" >"$nd/kafka.log" 2>&1 &
    formats[i]=$!
  done
  # each format by its pid: `wait -n` can miss a child that ended before it was called (seen once in a
  # loaded CI run as "formatting a node failed" with no cause); the log's tail goes with the error, since
  # callers may remove the directory
  for ((i = 1; i <= nodes; i++)); do
    wait "${formats[i]}" || die "formatting node $i failed (exit $?): $(tail -5 "$dir/node-$i/kafka.log" 2>/dev/null)"
  done
  local t0=$SECONDS
  for ((i = 1; i <= nodes; i++)); do
    local nd="$dir/node-$i"
    # setsid: the node outlives this script and the terminal it ran in
    setsid java "-Xms128m" "-Xmx$HEAP" -XX:+UseSerialGC -Djava.awt.headless=true \
      -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat="yyyy-MM-dd'T'HH:mm:ss.SSS" \
      -Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients=warn \
      -cp "$lib/*" kafka.Kafka "$nd/server.properties" >>"$nd/kafka.log" 2>&1 </dev/null 8>&- 9>&- &
    echo $! >"$nd/pid"
  done
  for ((i = 1; i <= nodes; i++)); do
    local nd="$dir/node-$i"
    until grep -q "Kafka Server started" "$nd/kafka.log" 2>/dev/null; do
      if ! kill -0 "$(cat "$nd/pid")" 2>/dev/null; then
        stop --dir "$dir"
        die "node $i exited while starting: see $nd/kafka.log"
      fi
      if ((SECONDS - t0 > 120)); then
        stop --dir "$dir"
        die "node $i not started after 120 s: see $nd/kafka.log"
      fi
      sleep 0.2
    done
  done
  echo "$bootstrap" >"$dir/bootstrap"
  say "$nodes node(s) started in $((SECONDS - t0)) s; logs in $dir/node-*/kafka.log"
  echo "$bootstrap"
}

running() { # true when every node of DIR is alive
  local f any=0
  for f in "$1"/node-*/pid; do
    [[ -f "$f" ]] || return 1
    kill -0 "$(cat "$f")" 2>/dev/null || return 1
    any=1
  done
  ((any == 1))
}

stop() {
  local dir="$CACHE/run" clean=0
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --dir) dir="$2"; shift 2 ;;
      --clean) clean=1; shift ;;
      *) die "stop: unknown option $1" ;;
    esac
  done
  local f pids=()
  for f in "$dir"/node-*/pid; do
    [[ -f "$f" ]] || continue
    pids+=("$(cat "$f")")
    rm -f "$f"
  done
  if ((${#pids[@]} > 0)); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local t0=$SECONDS p
    for p in "${pids[@]}"; do
      while kill -0 "$p" 2>/dev/null && ((SECONDS - t0 < 20)); do sleep 0.2; done
      kill -KILL "$p" 2>/dev/null || true
    done
    say "stopped ${#pids[@]} node(s) in $dir"
  fi
  rm -f "$dir/bootstrap"
  if ((clean == 1)); then rm -rf "$dir" "$dir.lock"; fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
  start) start "$@" ;;
  stop) stop "$@" ;;
  jars) jars ;;
  *) die "usage: scripts/kafka.sh start [--nodes 1|3] [--dir DIR] | stop [--dir DIR] [--clean] | jars" ;;
esac
