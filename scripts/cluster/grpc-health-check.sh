#!/usr/bin/env bash
# HAProxy's check of a segments-server (external-check, see scripts/cluster.sh):
# the standard gRPC health check of the whole server answers SERVING. HAProxy
# passes: proxy address, proxy port, server address, server port. Exit 0 =
# healthy.
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
grpc_serving "$3:$4"
