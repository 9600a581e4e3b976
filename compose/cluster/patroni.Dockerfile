# syntax=docker/dockerfile:1
#
# PostgreSQL 15 under Patroni, both from Debian 12, for pg1 and pg2 of
# compose/cluster/compose.yaml (which also runs db-migrate's psql in it). The
# build context is the repository root:
#   docker build -f compose/cluster/patroni.Dockerfile -t segments-patroni .
# Configuration: /etc/patroni/patroni.yml (compose mounts
# compose/cluster/patroni.yml there) and PATRONI_* environment variables.
FROM debian:12-slim

# postgresql-common first, told to make no "main" cluster when a server
# package is installed: Patroni runs initdb itself, in the volume.
# python3-etcd is what Patroni's etcd3 support imports.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-common \
 && sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
      /etc/postgresql-common/createcluster.conf \
 && grep -qx 'create_main_cluster = false' /etc/postgresql-common/createcluster.conf \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      postgresql-15 patroni python3-etcd curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/patroni \
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql \
 && install -d -m 0755 /etc/patroni

# The Debian package's postgres user. PostgreSQL refuses to run as root, and
# Patroni runs it as a child process.
USER postgres
# Mount the data volume on /var/lib/postgresql/patroni: a new volume starts
# with this folder's owner and mode (postgres, 0700).
# PostgreSQL, Patroni's REST API.
EXPOSE 5432 8008
# Patroni's REST API: /health is 200 while PostgreSQL runs (primary or
# replica); /primary and /replica tell which.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=5 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8008/health"]
ENTRYPOINT ["/usr/bin/patroni", "/etc/patroni/patroni.yml"]
