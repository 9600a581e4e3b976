# The last touches on the OpenAPI document that protoc-gen-openapiv2 writes
# from proto/ and openapi.yaml: what its options cannot express. generate.sh
# runs it; each step fails the build if what it changes has gone away.

# A minimum or maximum of 0 is dropped by the generator (it omits zero
# values); query parameters get no ranges at all from it.
def property($definition; $name; $fields):
  if .definitions[$definition].properties[$name] == null then
    error("openapi-finish.jq: no property \($definition).\($name)")
  else .definitions[$definition].properties[$name] += $fields end;

def query_parameter($path; $method; $name; $fields):
  if [.paths[$path][$method].parameters[]? | select(.in == "query" and .name == $name)] | length != 1 then
    error("openapi-finish.jq: no query parameter \($name) of \($method) \($path)")
  else .paths[$path][$method].parameters |= map(if .in == "query" and .name == $name then . + $fields else . end) end;

# Every $ref below a value.
def refs: [.. | objects | .["$ref"]? | strings | ltrimstr("#/definitions/")];

# The definitions that `roots` name, directly or through others.
def closure($definitions; roots):
  reduce range(0; 20) as $_ (roots | unique; (. + ([.[] | $definitions[.] | refs] | add // [])) | unique);

property("v1CreateSegmentRequest"; "percentToFill"; {minimum: 0})
| property("v1UpdateSegmentPercentRequest"; "percentToFill"; {minimum: 0})
# TTLs in seconds: 0 means "not given" (Go clients of the original send it).
| property("UpdateUserSegmentsRequestSegmentToAdd"; "secondsToBeInSegment"; {minimum: 0})
| property("v1AddSegmentToUsersRequest"; "secondsToBeInSegment"; {minimum: 0})
| property("v1CreateSegmentRequest"; "autoSecondsToBeInSegment"; {minimum: 0})
| query_parameter("/segments/get-history-report-link"; "get"; "month"; {minimum: 1, maximum: 12})
| query_parameter("/segments/get-history-report-link"; "get"; "year"; {minimum: 1970, maximum: 9999})
| query_parameter("/segments/list"; "get"; "pageSize"; {minimum: 0, maximum: 1000, default: 100})
| query_parameter("/segments/list-members"; "get"; "pageSize"; {minimum: 0, maximum: 10000, default: 1000})
| query_parameter("/segments/get-user-history"; "get"; "pageSize"; {minimum: 0, maximum: 1000, default: 100})
| query_parameter("/segments/list-members-at"; "get"; "pageSize"; {minimum: 0, maximum: 10000, default: 1000})

# The Idempotency-Key header of mutations: what the gateway accepts (HTTP drops
# spaces around a header's value, so the key neither starts nor ends with one).
| if [.paths[][].parameters[]? | select(.in == "header" and .name == "Idempotency-Key")] | length == 0 then
    error("openapi-finish.jq: no Idempotency-Key header")
  else .paths[][].parameters |= map(
    if .in == "header" and .name == "Idempotency-Key" then
      . + {minLength: 1, maxLength: 128, pattern: "^[!-~]([ -~]*[!-~])?$"}
    else . end) end

# Bearer tokens (docs/auth.md): declared once and required by every operation
# but the report download (its signed link is the proof), which gets 401 and
# 403 answers like every other error, in the envelope.
| .securityDefinitions = {bearer: {
    type: "apiKey", in: "header", name: "Authorization",
    description: "A JWT from your identity provider (locally: .state/tokens/<role>.jwt), sent as \"Bearer <token>\". Roles: service (get-for-user only), support (every read), analyst (reads, segments and memberships), admin (everything, the user replica too)."}}
| .security = [{bearer: []}]
| if [.paths[][] | select(.operationId == "HistoryService_DownloadHistoryReport")] | length != 1 then
    error("openapi-finish.jq: no HistoryService_DownloadHistoryReport operation")
  else . end
| .paths[][] |= (
    if .operationId == "HistoryService_DownloadHistoryReport" then .security = []
    else .responses += {
      "401": {description: "unauthenticated: no bearer token, or it is expired, not yet valid, for another issuer or audience, or its signature does not verify. The answer carries WWW-Authenticate: Bearer.",
              schema: {"$ref": "#/definitions/v1RestErrorResponse"}},
      "403": {description: "permission_denied: the token's roles do not cover this call (the role each call needs is in its description).",
              schema: {"$ref": "#/definitions/v1RestErrorResponse"}}}
    end)

# A 204 has no body, so no schema (the generator always writes one, empty).
| .paths[][].responses |= with_entries(if .key == "204" then .value |= del(.schema) else . end)

# Only the definitions that the operations use (the responses of mutations,
# all 204, are not).
| closure(.definitions; .paths | refs) as $used
| .definitions |= with_entries(select(.key as $k | $used | index($k)))

# In a request body null is the same as leaving the field out (protojson, and
# encoding/json for the original's clients): every optional property of what
# a body holds says so.
| closure(.definitions; [.paths[][].parameters[]? | select(.in == "body") | .schema] | refs) as $bodies
| .definitions |= with_entries(
    if (.key as $k | $bodies | index($k)) then
      .value.required as $required
      | .value.properties |= with_entries(if (.key as $p | $required // [] | index($p)) then . else .value["x-nullable"] = true end)
    else . end)
