# syntax=docker/dockerfile:1
#
# segments-server, the C++ gRPC server. The build context is the repository
# root:
#   docker build -f compose/server.Dockerfile -t segments-server .
# (compose/compose.yaml does this). Configure it with SEGMENTS_* environment
# variables; `docker run --rm segments-server --help` lists them with their
# defaults.

# --- healthprobe: static gRPC/HTTP health checker (compose/healthprobe) -------
FROM golang:1.26-bookworm AS healthprobe
WORKDIR /src/compose/healthprobe
COPY compose/healthprobe/go.mod compose/healthprobe/go.sum ./
RUN go mod download
COPY compose/healthprobe/*.go ./
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/healthprobe .

# --- build: Debian 12's compiler and libraries, as scripts/install-deps.sh ---
FROM debian:bookworm AS build
# The C++ part of PACKAGES in scripts/install-deps.sh (plus libssl-dev, which
# find_package(OpenSSL) needs and the host gets through other packages).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake ninja-build g++ pkg-config \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libabsl-dev libfmt-dev libpq-dev librdkafka-dev catch2 libssl-dev \
      libcjose-dev libjansson-dev \
      golang-github-gogo-googleapis-dev grpc-proto \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# What the root CMakeLists.txt reads when configuring. tests/ and bench/ are
# configured but not built; of gateway/ and usermock/ only their
# CMakeLists.txt are read (their Go builds are build-time custom targets, so
# configuring needs no Go). A new add_subdirectory() in the root needs a line
# here too.
COPY CMakeLists.txt ./
COPY proto/ proto/
COPY server/ server/
COPY tests/ tests/
COPY bench/ bench/
RUN cmake -G Ninja -S . -B build -DCMAKE_BUILD_TYPE=Release -DSEGMENTS_BUILD_GO=OFF \
 && cmake --build build --target segments-server segments-token \
 && install -D -m 0755 build/server/segments-server /out/segments-server \
 && install -D -m 0755 build/server/segments-token /out/segments-token

# --- runtime ------------------------------------------------------------------
FROM debian:bookworm-slim
# The shared libraries segments-server links (Debian 12 package names);
# ca-certificates for TLS to PostgreSQL or Kafka when configured.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libfmt9 libpq5 \
      librdkafka++1 librdkafka1 libssl3 libcjose0 libjansson4 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 segments \
 && useradd --uid 10001 --gid segments --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin segments
COPY --from=build /out/segments-server /usr/local/bin/segments-server
# Signing keys and tokens (compose.yaml's one-shot "tokens" service uses it).
COPY --from=build /out/segments-token /usr/local/bin/segments-token
COPY --from=healthprobe /out/healthprobe /usr/local/bin/healthprobe
# Fail the image build, not the first start, if the list above misses a
# library the binary needs.
RUN if ldd /usr/local/bin/segments-server /usr/local/bin/segments-token | grep 'not found'; then \
      echo 'segments-server: shared libraries missing from the runtime stage' >&2; exit 1; \
    fi

USER 10001:10001
# segments-server listens on 0.0.0.0:50051 unless SEGMENTS_GRPC_LISTEN says
# otherwise (then change the health check's address too).
EXPOSE 50051
# grpc.health.v1.Health/Check for the whole server: SERVING only while the
# server is up and its last database ping succeeded (it reports NOT_SERVING
# during a database outage and until the first ping).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/healthprobe", "-timeout", "4s", "grpc", "127.0.0.1:50051"]
ENTRYPOINT ["/usr/local/bin/segments-server"]
