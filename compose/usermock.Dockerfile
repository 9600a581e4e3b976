# syntax=docker/dockerfile:1
#
# segments-usermock, the user-service mock (Go). The build context is the
# repository root:
#   docker build -f compose/usermock.Dockerfile -t segments-usermock .
# (compose/compose.yaml does this). Configure it with USERMOCK_* environment
# variables: USERMOCK_GRPC_LISTEN, USERMOCK_KAFKA_BROKERS, USERMOCK_TOPIC,
# USERMOCK_STORE, USERMOCK_RANDOM_RATE, USERMOCK_RANDOM_SEED.

# --- build --------------------------------------------------------------------
FROM golang:1.26-bookworm AS build
# The protoc plugins, pinned: keep equal to scripts/install-deps.sh
# (compose/check.sh compares them).
ARG PROTOBUF_GO_VERSION=v1.36.12
ARG PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

# protoc (Debian 12's, as on the host) and the well-known types
# (google/protobuf/*.proto ship in libprotobuf-dev).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      protobuf-compiler libprotobuf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# usermock/generate.sh takes the plugins from .tools/bin, as
# scripts/install-deps.sh leaves them.
RUN export GOBIN=/src/.tools/bin \
 && go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOBUF_GO_VERSION}" \
 && go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"

COPY compose/healthprobe/ compose/healthprobe/
RUN cd compose/healthprobe \
 && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/healthprobe .

COPY usermock/go.mod usermock/go.sum usermock/
RUN cd usermock && go mod download
COPY scripts/lib.sh scripts/
COPY proto/userservice/ proto/userservice/
COPY proto/usermock/ proto/usermock/
COPY usermock/ usermock/
# generate.sh replaces usermock/gen with what it makes from proto/.
RUN bash usermock/generate.sh \
 && cd usermock \
 && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/segments-usermock ./cmd/segments-usermock \
 && mkdir -p /out/data

# --- runtime: static binaries only --------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/segments-usermock /out/healthprobe /usr/local/bin/
# The store's directory, owned by the runtime user: the store rewrites its
# file through a temporary file next to it. A named volume mounted here starts
# with this ownership.
COPY --from=build --chown=65532:65532 /out/data /var/lib/usermock
USER 65532:65532
ENV USERMOCK_GRPC_LISTEN=0.0.0.0:50061 \
    USERMOCK_STORE=/var/lib/usermock/users.jsonl
EXPOSE 50061
# grpc.health.v1.Health/Check of usermock.v1.UserMockAdmin: SERVING while the
# mock serves gRPC. (userservice.v1.UserService is left out on purpose: it
# goes NOT_SERVING while a test simulates an outage with SetOutage, which is
# not a reason to call the container unhealthy.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/healthprobe", "-timeout", "4s", "grpc", "127.0.0.1:50061", "usermock.v1.UserMockAdmin"]
ENTRYPOINT ["/usr/local/bin/segments-usermock"]
