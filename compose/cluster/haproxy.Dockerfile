# syntax=docker/dockerfile:1
#
# HAProxy 2.6 from Debian 12 (the version scripts/cluster.sh runs), with
# healthprobe for the gRPC health check of the servers, for
# compose/cluster/compose.yaml. The build context is the repository root:
#   docker build -f compose/cluster/haproxy.Dockerfile -t segments-haproxy .
# Configuration: /etc/haproxy/haproxy.cfg (compose mounts
# compose/cluster/haproxy.cfg there).

# --- healthprobe: static gRPC/HTTP health checker (compose/healthprobe) -------
FROM golang:1.26-bookworm AS healthprobe
WORKDIR /src/compose/healthprobe
COPY compose/healthprobe/go.mod compose/healthprobe/go.sum ./
RUN go mod download
COPY compose/healthprobe/*.go ./
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/healthprobe .

# --- runtime ------------------------------------------------------------------
FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/*
COPY --from=healthprobe /out/healthprobe /usr/local/bin/healthprobe
# What haproxy.cfg's external-check command runs for each server check
# (executable whatever the checkout made of the file's mode).
COPY compose/cluster/grpc-health-check /usr/local/bin/grpc-health-check
RUN chmod 0755 /usr/local/bin/grpc-health-check

# The Debian package's haproxy user; every port is above 1024.
USER haproxy
# HTTP (gateways), gRPC (servers), the stats page.
EXPOSE 8080 50051 8404
# monitor-uri on the stats port: 200 while HAProxy runs.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/healthprobe", "-timeout", "4s", "http", "http://127.0.0.1:8404/healthz"]
# Master-worker in the foreground: SIGUSR2 reloads the configuration
# (docker compose kill -s USR2 haproxy).
ENTRYPOINT ["/usr/sbin/haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
