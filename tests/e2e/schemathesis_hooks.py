"""Schemathesis hooks of tests/e2e/schemathesis.sh.

Two kinds, each with its reason:

- map_case: rules of the API that JSON Schema (Swagger 2.0) cannot state, because they relate two
  fields or depend on the clock or on what the server issued. The document says each one in words;
  here the requests that schemathesis generates as valid ("positive") are made to follow them, so
  that the 400 the server rightly answers when one is broken is not reported as "valid data
  rejected". Requests generated as invalid are left as they are.
- filter_failure: the failures that are false positives of a check, each with why. Nothing else
  is dropped: every other check runs on every response.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import schemathesis
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import TestPhase
from schemathesis.generation.modes import GenerationMode
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.openapi.checks import MissingContentType

# The zero instant: a Go client's "not given" (docs/openapi.md).
ZERO_DEADLINE = "0001-01-01T00:00:00Z"

# The next-page tokens the service has issued; any other token is refused.
issued_page_tokens: set[str] = set()
# Those of list-members-at, with the slug each was issued for: a token names
# its segment and instant, so it goes with that slug and no other `at`.
issued_members_at_tokens: dict[str, str] = {}


def _is_positive(case) -> bool:
    return case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE


def _parse_time(text) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None


def _future_deadline(value) -> str:
    """`value` moved into the window the server accepts: after now, at most 10 years ahead.

    The generated instant picks the offset (1 minute to about 9 years), so different values stay
    different.
    """
    parsed = _parse_time(value)
    seed = parsed.toordinal() * 86400 + parsed.hour * 3600 + parsed.minute * 60 + parsed.second if parsed else 0
    offset = timedelta(minutes=1) + timedelta(seconds=seed % (9 * 365 * 86400))
    return (datetime.now(timezone.utc) + offset).strftime("%Y-%m-%dT%H:%M:%SZ")


def _one_ttl(item: dict) -> None:
    """A TTL is secondsToBeInSegment or deadlineForStayingInSegment, never both; a deadline is
    in the future and at most 10 years ahead. 0 and the zero instant mean "not given"."""
    deadline = item.get("deadlineForStayingInSegment")
    if deadline is None or deadline == ZERO_DEADLINE:
        return
    if item.get("secondsToBeInSegment", 0) != 0:
        del item["deadlineForStayingInSegment"]
    else:
        item["deadlineForStayingInSegment"] = _future_deadline(deadline)


def _user_key(user_id: str) -> str:
    # UUIDs compare in any letter case; a decimal id has none.
    return user_id.lower()


def _distinct(values, key):
    seen, out = set(), []
    for value in values:
        k = key(value)
        if k not in seen:
            seen.add(k)
            out.append(value)
    return out


def _change_for_user(body: dict) -> None:
    # No slug twice in segmentsToAdd, none in both lists (duplicates in segmentsToRemove count once).
    adds = body.get("segmentsToAdd")
    if isinstance(adds, list):
        adds[:] = _distinct(adds, lambda item: item.get("segmentSlug"))
        for item in adds:
            _one_ttl(item)
        added = {item.get("segmentSlug") for item in adds}
        removes = body.get("segmentsToRemove")
        if isinstance(removes, list):
            removes[:] = [item for item in removes if item.get("segmentSlug") not in added]


def _create_segment(body: dict) -> None:
    # A slug may be in includeSegments or in excludeSegments, not in both.
    include = set(body.get("includeSegments") or [])
    if isinstance(body.get("excludeSegments"), list):
        body["excludeSegments"] = [slug for slug in body["excludeSegments"] if slug not in include]


def _bulk(body: dict) -> None:
    # No user twice, comparing ids as the server does; the TTL rules of change-for-user.
    if isinstance(body.get("userIDs"), list):
        body["userIDs"] = _distinct(body["userIDs"], _user_key)
    _one_ttl(body)


def _user_history(query: dict) -> None:
    # `to` must be later than `from`.
    start, end = _parse_time(query.get("from")), _parse_time(query.get("to"))
    if start is not None and end is not None and start >= end:
        del query["to"]


def _past_instant(query: dict) -> None:
    # Time travel looks back: `at` may not be in the future (absent means now).
    at = _parse_time(query.get("at"))
    if at is not None and at.tzinfo is not None and at >= datetime.now(timezone.utc):
        del query["at"]


def _members_at(query: dict) -> None:
    _past_instant(query)
    token = query.get("pageToken")
    if token in (None, ""):
        return
    if issued_members_at_tokens.get(token) == query.get("slug"):
        query.pop("at", None)
    else:
        del query["pageToken"]


def _size_history(query: dict) -> None:
    # `from` before now and before `to`; at most 10,000 steps between them.
    now = datetime.now(timezone.utc)
    start, end = _parse_time(query.get("from")), _parse_time(query.get("to"))
    if start is None or start.tzinfo is None:
        return
    if start >= now - timedelta(hours=2):
        start = now - timedelta(days=1)
    if end is not None and (end.tzinfo is None or end <= start + timedelta(days=1)):
        del query["to"]
        end = None
    step = timedelta(hours=1) if query.get("step") == "hour" else timedelta(days=1)
    last = min(end, now) if end is not None else now
    if last - start > step * 9990:
        start = last - step * 9990
    query["from"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")


BODY_RULES = {
    ("POST", "/segments/change-for-user"): _change_for_user,
    ("POST", "/segments/create"): _create_segment,
    ("POST", "/segments/bulk-add"): _bulk,
    ("POST", "/segments/bulk-remove"): _bulk,
}
QUERY_RULES = {
    ("GET", "/segments/get-user-history"): _user_history,
    ("GET", "/segments/get-for-user-at"): _past_instant,
    ("GET", "/segments/count-members-at"): _past_instant,
    ("GET", "/segments/stream-members-at"): _past_instant,
    ("GET", "/segments/list-members-at"): _members_at,
    ("GET", "/segments/size-history"): _size_history,
}
PAGED = {"/segments/list", "/segments/list-members", "/segments/get-user-history"}


@schemathesis.hook
def map_case(context, case):
    if not _is_positive(case):
        return case
    key = (case.method.upper(), case.path)
    if key in BODY_RULES and isinstance(case.body, dict):
        BODY_RULES[key](case.body)
    if isinstance(case.query, dict):
        if key in QUERY_RULES:
            QUERY_RULES[key](case.query)
        # A page token is opaque: only one the service issued is valid (the stateful phase passes
        # them on through the document's links, after this hook).
        if case.path in PAGED and case.query.get("pageToken") not in issued_page_tokens | {None, ""}:
            del case.query["pageToken"]
    return case


@schemathesis.hook
def after_call(context, case, response):
    if case.path == "/segments/list-members-at" and response.status_code == 200:
        try:
            token = json.loads(response.content).get("nextPageToken")
        except (ValueError, AttributeError):
            return
        if token and isinstance(case.query, dict):
            issued_members_at_tokens[token] = case.query.get("slug")
    if case.path in PAGED and response.status_code == 200:
        try:
            token = json.loads(response.content).get("nextPageToken")
        except (ValueError, AttributeError):
            return
        if token:
            issued_page_tokens.add(token)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    # content_type_conformance: Swagger 2.0 has one `produces` list per operation, so the check
    # expects application/json on every response of a mutation; a 204 has no body and so no
    # Content-Type (RFC 9110, 8.3), which the check reports as missing.
    if isinstance(failure, MissingContentType) and response.status_code == 204:
        return False
    # negative_data_rejection, when all that makes a request invalid is a query parameter the
    # operation does not declare: the gateway ignores such parameters (as grpc-gateway does).
    # schemathesis itself passes these requests, after checking that the rest of the query is
    # valid; in the stateful phase that check fails on values a link takes out of a text with a
    # regex (the month, year and expires of a report link are strings there, declared integers),
    # so the request is reported as invalid data accepted.
    if isinstance(failure, AcceptedNegativeData) and _only_unknown_query_parameters(case):
        return False
    return True


def _only_unknown_query_parameters(case) -> bool:
    """A stateful case whose only mutations add query parameters the operation does not declare."""
    if case.meta is None or case.meta.phase.name != TestPhase.STATEFUL:
        return False
    mutations = getattr(case.meta.phase.data, "mutations", ())
    return bool(mutations) and all(
        m.parameter_location == ParameterLocation.QUERY and set(m.keywords) == {"additionalProperties"}
        for m in mutations
    )
