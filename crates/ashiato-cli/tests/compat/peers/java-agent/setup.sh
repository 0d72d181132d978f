#!/usr/bin/env bash
# Builds the Java peer into $1: the OpenTelemetry Java agent jar from Maven
# Central and the shop app (plain javac, the JDK's own HTTP server and
# client, no dependencies). Needs a JDK >= 17 and Maven.
#
# Upgrading the agent is this one line:
agent_version=2.31.1
set -euo pipefail

out="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# the dependency plugin is pinned too: Maven's default for a bare
# `dependency:copy` differs between Maven versions
mvn --batch-mode --quiet \
    org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
    -Dartifact="io.opentelemetry.javaagent:opentelemetry-javaagent:$agent_version" \
    -DoutputDirectory="$out" \
    -Dmdep.stripVersion=true
test -f "$out/opentelemetry-javaagent.jar"

mkdir -p "$out/classes"
javac --release 17 -Xlint:all -d "$out/classes" "$here"/src/shop/*.java

cat >"$out/env" <<ENV
export ASHIATO_COMPAT_JAVA_AGENT_JAR=@OUT@/opentelemetry-javaagent.jar
export ASHIATO_COMPAT_JAVA_AGENT_CLASSES=@OUT@/classes
export ASHIATO_COMPAT_JAVA_AGENT_VERSION=$agent_version
ENV
