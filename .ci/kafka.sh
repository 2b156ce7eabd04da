#!/usr/bin/env bash
# Installs (once, cached) and starts a single-node Apache Kafka broker in KRaft mode on 127.0.0.1.
# The jars come from Maven Central. Usage: .ci/kafka.sh start|stop|status
# Env: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), LOGBERT_KAFKA_CACHE, KAFKA_DATA_DIR.
set -euo pipefail
KAFKA_VERSION=3.9.1  # pinned; Scala 2.13 build
port="${KAFKA_PORT:-9092}"
controller_port="${KAFKA_CONTROLLER_PORT:-9093}"
cache="${LOGBERT_KAFKA_CACHE:-$HOME/.cache/logbert-stream/kafka-$KAFKA_VERSION}"
data="${KAFKA_DATA_DIR:-/tmp/logbert-kafka-$port}"

install() {
  [ -f "$cache/.complete" ] && return
  echo "[kafka] fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $cache" >&2
  rm -rf "$cache" && mkdir -p "$cache"
  cat > "$cache/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.logbert</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
POM
  (cd "$cache" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=libs -DincludeScope=runtime)
  cat > "$cache/log4j.properties" <<'LOG'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
LOG
  touch "$cache/.complete"
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

start() {
  install
  if listening; then echo "[kafka] already listening on 127.0.0.1:$port" >&2; return; fi
  rm -rf "$data" && mkdir -p "$data"
  cat > "$data/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data/logs
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
  local cp="$cache/libs/*"
  local java_opts=(-Xmx512m "-Dlog4j.configuration=file:$cache/log4j.properties")
  java "${java_opts[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$(cat /proc/sys/kernel/random/uuid | tr -d '-' | cut -c1-22)" \
    -c "$data/server.properties" --ignore-formatted >/dev/null
  nohup java "${java_opts[@]}" -cp "$cp" kafka.Kafka "$data/server.properties" >"$data/broker.log" 2>&1 &
  echo $! >"$data/broker.pid"
  for _ in $(seq 1 120); do
    if listening; then echo "[kafka] Apache Kafka $KAFKA_VERSION (KRaft) on 127.0.0.1:$port" >&2; return; fi
    sleep 0.5
  done
  echo "[kafka] broker did not start; its log:" >&2; tail -50 "$data/broker.log" >&2; exit 1
}

stop() {
  if [ -f "$data/broker.pid" ]; then kill "$(cat "$data/broker.pid")" 2>/dev/null || true; rm -f "$data/broker.pid"; fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) if listening; then echo up; else echo down; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
