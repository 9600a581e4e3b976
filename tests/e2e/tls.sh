#!/usr/bin/env bash
# TLS and mTLS with real processes and certificates made here with openssl:
# the server serves TLS (plaintext refused), a rotated certificate is served
# without a restart, a server that requires client certificates refuses a
# client without one and serves one with one, and the gateway reaches it over
# mTLS (and not without its certificate). Tokens as everywhere else.
# Usage: tls.sh SERVER_BIN GATEWAY_BIN   (needs SEGMENTS_TEST_DATABASE_URL)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

server_bin=${1:?server binary}
gateway_bin=${2:?gateway binary}
db_url=${SEGMENTS_TEST_DATABASE_URL:?set by scripts/test.sh}
[[ -x $GRPCURL ]] || die "$GRPCURL is missing: run scripts/install-deps.sh"
work="$(mktemp -d)"
on_exit rm -rf "$work"
TOKENS_DIR="$work/tokens"
local_tokens "$(dirname "$server_bin")/segments-token"
certs="$work/certs"
mkdir -p "$certs"

# --- certificates: a CA, two server certificates for 127.0.0.1 (the second
# one replaces the first), a client certificate, all ECDSA P-256.
ca() {
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 -subj "/CN=$1" \
    -keyout "$certs/$1.key" -out "$certs/$1.pem" 2>/dev/null
}
# signed NAME CN EXTENSION: a key and a certificate NAME signed by test-ca.
signed() {
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "/CN=$2" \
    -keyout "$certs/$1.key" -out "$certs/$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$certs/$1.ext"
  openssl x509 -req -in "$certs/$1.csr" -CA "$certs/test-ca.pem" -CAkey "$certs/test-ca.key" -CAcreateserial \
    -days 2 -extfile "$certs/$1.ext" -out "$certs/$1.pem" 2>/dev/null
}
ca test-ca
ca other-ca
SERVER_EXT='subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth'
signed server-1 segments-1 "$SERVER_EXT"
signed server-2 segments-2 "$SERVER_EXT"
signed client gateway "extendedKeyUsage=clientAuth"
# The served files, replaced by renaming (as a certificate manager does).
cp "$certs/server-1.pem" "$certs/served.pem"
cp "$certs/server-1.key" "$certs/served.key"

# start_tls_server NAME [FLAG...]: a server on a free port with TLS from the
# served files; its address in ADDR.
start_tls_server() {
  local name=$1 port
  shift
  port="$(free_port)"
  ADDR="127.0.0.1:$port"
  on_exit bg_stop "$name" "$work/$name.pid" "$server_bin" 5
  log "starting $name on $ADDR"
  SEGMENTS_DATABASE_URL="$db_url" bg_start "$work/$name.pid" "$work/$name.log" "$server_bin" \
    --grpc-listen="$ADDR" --auth-jwks-file="$TOKENS_DIR/jwks.json" --auth-issuer="$LOCAL_ISSUER" \
    --tls-cert-file="$certs/served.pem" --tls-key-file="$certs/served.key" --tls-reload-period=1s "$@"
}
# health ADDR GRPCURL_FLAG...: the health check's output.
health() {
  local addr=$1
  shift
  "$GRPCURL" -max-time 3 "$@" "$addr" grpc.health.v1.Health/Check 2>&1 || true
}
serving() { [[ $(health "$@") == *'"SERVING"'* ]]; }
# served_cn ADDR: the CN of the certificate the server presents.
served_cn() {
  openssl s_client -connect "$1" -servername localhost </dev/null 2>/dev/null |
    openssl x509 -noout -subject 2>/dev/null | sed -n 's/.*CN *= *//p'
}

# --- a key that is not the certificate's stops the server at start, naming it
rc=0
SEGMENTS_DATABASE_URL="$db_url" timeout 10 "$server_bin" --grpc-listen=127.0.0.1:0 --auth=off \
  --tls-cert-file="$certs/server-1.pem" --tls-key-file="$certs/server-2.key" >"$work/mismatch.log" 2>&1 || rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || die "a mismatched key: expected the server to exit non-zero, got $rc"
grep -q "is not the key of the certificate" "$work/mismatch.log" || die "a mismatched key: $(cat "$work/mismatch.log")"
log "a key that is not the certificate's: refused at start"

# --- TLS: served with the CA, refused in plaintext and with another CA
start_tls_server tls-server
tls_addr=$ADDR
wait_until 20s serving "$tls_addr" -cacert "$certs/test-ca.pem" ||
  die "TLS server not SERVING: $(health "$tls_addr" -cacert "$certs/test-ca.pem"); log: $(tail -n 5 "$work/tls-server.log")"
[[ $(health "$tls_addr" -plaintext) != *'"SERVING"'* ]] || die "a plaintext client was served"
[[ $(health "$tls_addr" -cacert "$certs/other-ca.pem") != *'"SERVING"'* ]] || die "a client trusting another CA was served"
out="$("$GRPCURL" -max-time 3 -cacert "$certs/test-ca.pem" -H "$(bearer_of service)" -d '{"userID":"1"}' "$tls_addr" \
  segmentation.v1.SegmentService/GetUserSegments 2>&1)" || die "GetUserSegments over TLS: $out"
log "TLS: served with the CA; plaintext and another CA refused; tokens work over it"

# --- rotation: the renamed-in certificate is served without a restart
[[ $(served_cn "$tls_addr") == segments-1 ]] || die "first certificate not served: $(served_cn "$tls_addr")"
cp "$certs/server-2.key" "$certs/served.key.new" && cp "$certs/server-2.pem" "$certs/served.pem.new"
mv "$certs/served.key.new" "$certs/served.key" && mv "$certs/served.pem.new" "$certs/served.pem"
rotated() { [[ $(served_cn "$tls_addr") == segments-2 ]]; }
wait_until 20s rotated || die "the rotated certificate is not served after 20 s: $(served_cn "$tls_addr")"
serving "$tls_addr" -cacert "$certs/test-ca.pem" || die "not SERVING after the rotation"
log "rotation: the new certificate is served, no restart"

# --- mTLS: a client certificate signed by the client CA is required
start_tls_server mtls-server --tls-client-ca-file="$certs/test-ca.pem"
mtls_addr=$ADDR
wait_until 20s serving "$mtls_addr" -cacert "$certs/test-ca.pem" -cert "$certs/client.pem" -key "$certs/client.key" ||
  die "mTLS server not SERVING with a client certificate: $(tail -n 5 "$work/mtls-server.log")"
[[ $(health "$mtls_addr" -cacert "$certs/test-ca.pem") != *'"SERVING"'* ]] ||
  die "a client without a certificate was served"
signed stranger stranger "extendedKeyUsage=clientAuth"
openssl x509 -req -in "$certs/stranger.csr" -CA "$certs/other-ca.pem" -CAkey "$certs/other-ca.key" -CAcreateserial \
  -days 2 -extfile "$certs/stranger.ext" -out "$certs/stranger.pem" 2>/dev/null
[[ $(health "$mtls_addr" -cacert "$certs/test-ca.pem" -cert "$certs/stranger.pem" -key "$certs/stranger.key") != *'"SERVING"'* ]] ||
  die "a client certificate of another CA was accepted"
log "mTLS: no certificate and another CA's certificate refused, the right one served"

# --- the gateway over mTLS, and without its certificate
read -r http_port bad_port < <(free_ports 2)
on_exit bg_stop segments-gateway "$work/gateway.pid" "$gateway_bin" 5
start_gateway "127.0.0.1:$http_port" "$mtls_addr" "$work/gateway.pid" "$work/gateway.log" "$gateway_bin" \
  --upstream-ca-file="$certs/test-ca.pem" --upstream-cert-file="$certs/client.pem" \
  --upstream-key-file="$certs/client.key" --upstream-server-name=localhost
answer="$(curl -s -w ' %{http_code}' -H "$(bearer_of service)" "http://127.0.0.1:$http_port/segments/get-for-user?userID=1")"
[[ $answer == '{"segments":[]} 200' ]] || die "get-for-user through the mTLS gateway: $answer"
on_exit bg_stop segments-gateway "$work/gateway-bad.pid" "$gateway_bin" 5
bg_start "$work/gateway-bad.pid" "$work/gateway-bad.log" "$gateway_bin" \
  --http-listen="127.0.0.1:$bad_port" --upstream="$mtls_addr" --upstream-ca-file="$certs/test-ca.pem" \
  --upstream-server-name=localhost
listening() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$bad_port/swagger/doc.json") == 200 ]]; }
wait_until 10s listening || die "the gateway without a client certificate did not start"
answer="$(curl -s -o /dev/null -w '%{http_code}' -H "$(bearer_of service)" \
  "http://127.0.0.1:$bad_port/segments/get-for-user?userID=1")"
[[ $answer == 503 ]] || die "a gateway without a client certificate got $answer, want 503"
log "gateway: served over mTLS; without its certificate: 503"
log "PASS"
