#!/usr/bin/env bash
# Installs (once, cached) and starts a single-node Apache Kafka broker in KRaft mode on 127.0.0.1.
# The jars come from Maven Central. Usage: .ci/kafka.sh start|stop|restart|status
#   start    a fresh broker (its data directory emptied)     restart  stop, then start on the same data
# Env: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), LOGBERT_KAFKA_CACHE, KAFKA_DATA_DIR,
#      KAFKA_SASL=1: the client listener requires SASL (PLAIN and SCRAM-SHA-256/512) for the
#      users in KAFKA_SASL_USERS ("name:password ...", default "logbert:logbert-secret").
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

write_config() {
  local listener=PLAINTEXT extra=""
  if [ "${KAFKA_SASL:-0}" = 1 ]; then
    listener=SASL_PLAINTEXT
    local users="${KAFKA_SASL_USERS:-logbert:logbert-secret}" plain_users=""
    for pair in $users; do plain_users+=" user_${pair%%:*}=\"${pair#*:}\""; done
    extra="sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" password=\"broker-secret\" user_broker=\"broker-secret\"$plain_users;
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
  fi
  cat > "$data/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=$listener://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=$listener://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=$listener:$listener,CONTROLLER:PLAINTEXT
inter.broker.listener.name=$listener
log.dirs=$data/logs
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
$extra
PROPS
}

start() {
  local fresh="${1:-1}"
  install
  if listening; then echo "[kafka] already listening on 127.0.0.1:$port" >&2; return; fi
  local cp="$cache/libs/*"
  local java_opts=(-Xmx512m "-Dlog4j.configuration=file:$cache/log4j.properties")
  if [ "$fresh" = 1 ] || [ ! -f "$data/server.properties" ]; then
    rm -rf "$data" && mkdir -p "$data"
    write_config
    local scram=()
    if [ "${KAFKA_SASL:-0}" = 1 ]; then
      for pair in ${KAFKA_SASL_USERS:-logbert:logbert-secret}; do
        for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
          scram+=(--add-scram "$mechanism=[name=${pair%%:*},password=${pair#*:}]")
        done
      done
    fi
    java "${java_opts[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$(cat /proc/sys/kernel/random/uuid | tr -d '-' | cut -c1-22)" \
      -c "$data/server.properties" --ignore-formatted "${scram[@]}" >/dev/null
  fi
  nohup java "${java_opts[@]}" -cp "$cp" kafka.Kafka "$data/server.properties" >>"$data/broker.log" 2>&1 &
  echo $! >"$data/broker.pid"
  for _ in $(seq 1 120); do
    if listening; then echo "[kafka] Apache Kafka $KAFKA_VERSION (KRaft) on 127.0.0.1:$port" >&2; return; fi
    sleep 0.5
  done
  echo "[kafka] broker did not start; its log:" >&2; tail -50 "$data/broker.log" >&2; exit 1
}

stop() {
  [ -f "$data/broker.pid" ] || return 0
  local pid
  pid="$(cat "$data/broker.pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  rm -f "$data/broker.pid"
}

case "${1:-start}" in
  start) start 1 ;;
  stop) stop ;;
  restart) stop; start 0 ;;
  status) if listening; then echo up; else echo down; exit 1; fi ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
