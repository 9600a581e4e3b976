# syntax=docker/dockerfile:1
#
# segments-gateway, the REST gateway (Go, grpc-gateway). The build context is
# the repository root:
#   docker build -f compose/gateway.Dockerfile -t segments-gateway .
# (compose/compose.yaml does this). Configure it with GATEWAY_* environment
# variables (each flag of cmd/segments-gateway has one): GATEWAY_UPSTREAM,
# GATEWAY_HTTP_LISTEN, GATEWAY_UPSTREAM_TIMEOUT, ...

# --- build --------------------------------------------------------------------
FROM golang:1.26-bookworm AS build
# The protoc plugins, pinned: keep equal to scripts/install-deps.sh
# (compose/check.sh compares them).
ARG PROTOBUF_GO_VERSION=v1.36.12
ARG PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
ARG GRPC_GATEWAY_VERSION=v2.33.0

# protoc (Debian 12's, as on the host), the well-known types it imports
# (google/protobuf/*.proto ship in libprotobuf-dev), google/api protos, npm
# for the Swagger UI package that gateway/generate.sh fetches with `npm pack`,
# and jq, which finishes the OpenAPI document (gateway/openapi-finish.jq).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      protobuf-compiler libprotobuf-dev golang-github-gogo-googleapis-dev npm jq \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# generate.sh takes the plugins from .tools/bin, as scripts/install-deps.sh
# leaves them.
RUN export GOBIN=/src/.tools/bin \
 && go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOBUF_GO_VERSION}" \
 && go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}" \
 && go install "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@${GRPC_GATEWAY_VERSION}" \
 && go install "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@${GRPC_GATEWAY_VERSION}"

COPY compose/healthprobe/ compose/healthprobe/
RUN cd compose/healthprobe \
 && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/healthprobe .

COPY gateway/go.mod gateway/go.sum gateway/
RUN cd gateway && go mod download
COPY scripts/lib.sh scripts/
COPY proto/ proto/
COPY gateway/ gateway/
# Generated files that a developer's checkout may hold are removed, so the
# image has what generate.sh makes from proto/ and nothing else (it skips the
# npm download when a Swagger UI of its version is already there).
RUN rm -rf gateway/gen gateway/bin gateway/internal/swagger/ui gateway/internal/swagger/doc.json \
 && bash gateway/generate.sh \
 && cd gateway \
 && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/segments-gateway ./cmd/segments-gateway

# --- runtime: static binaries only --------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/segments-gateway /out/healthprobe /usr/local/bin/
USER 65532:65532
ENV GATEWAY_HTTP_LISTEN=:8080
EXPOSE 8080
# GET /healthz: 200 only when the gateway serves HTTP *and* its upstream
# segments-server answers grpc.health.v1.Health/Check with SERVING
# (grpc-gateway's health endpoint asks the upstream).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/healthprobe", "-timeout", "4s", "http", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/segments-gateway"]
