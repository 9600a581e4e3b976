#!/usr/bin/env bash
# HAProxy's check of a segments-server (external-check, see scripts/cluster.sh):
# the standard gRPC health check of the whole server answers SERVING. HAProxy
# passes: proxy address, proxy port, server address, server port. Exit 0 =
# healthy.
grpcurl="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.tools/bin/grpcurl"
out="$("$grpcurl" -plaintext -max-time 1 -d '{"service":""}' "$3:$4" grpc.health.v1.Health/Check 2>&1)" || exit 1
[[ $out == *'"SERVING"'* ]]
