"""Schemathesis hooks for tracestore (loaded by .ci/schemathesis.sh through SCHEMATHESIS_HOOKS).

Random ids and random cursors almost never name a real trace or a valid position, so without
help the fuzzer would only ever see 404s on /api/v1/traces/{id} and 400s for `cursor`, and
the 200 responses of those paths (TraceDetail, a continued Page) would go unchecked. These
hooks let Hypothesis mix real values of the demo project into the generated requests:

- path parameters: sometimes the `id` of an existing demo trace (GET and DELETE then hit a real
  trace; a DELETE removes it, and later GETs of it must be 404s);
- query parameters of GET /api/v1/traces: sometimes a real `nextCursor`, alone or with a
  generated `limit`, and sometimes a real cursor with the generated filters (a 400 unless the
  filters equal the cursor's).

The choices go through Hypothesis strategies (flatmap), so runs stay reproducible by seed.
The real values are fetched once, when this module is loaded, from TRACESTORE_URL with the
key in TRACESTORE_KEY; without those two variables the hooks change nothing.
"""

import json
import os
import urllib.request

import schemathesis
from hypothesis import strategies as st

BASE = os.environ.get("TRACESTORE_URL", "").rstrip("/")
KEY = os.environ.get("TRACESTORE_KEY", "")

IDS: list = []
CURSORS: list = []


def _get(path_and_query: str) -> dict:
    req = urllib.request.Request(
        BASE + path_and_query, headers={"Authorization": "Bearer " + KEY}
    )
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.load(res)["data"]


if BASE and KEY:
    for query in (
        "limit=100",
        "limit=5&status=ERROR",
        "limit=3&name=support&tags=production",
        "limit=2&startDate=2026-03-01&endDate=2026-03-15",
    ):
        page = _get("/api/v1/traces?" + query)
        IDS.extend(t["id"] for t in page["traces"])
        if page["nextCursor"]:
            CURSORS.append(page["nextCursor"])


@schemathesis.hook
def flatmap_path_parameters(context, path_parameters):
    if not IDS or not isinstance(path_parameters, dict) or "id" not in path_parameters:
        return st.just(path_parameters)
    real = st.sampled_from(IDS).map(lambda i: {**path_parameters, "id": i})
    return st.one_of(st.just(path_parameters), real)


@schemathesis.hook
def flatmap_query(context, query):
    if not CURSORS:
        return st.just(query)
    given = query if isinstance(query, dict) else {}
    limit = {"limit": given["limit"]} if "limit" in given else {}
    cursor = st.sampled_from(CURSORS)
    alone = cursor.map(lambda c: {"cursor": c, **limit})
    with_filters = cursor.map(lambda c: {**given, "cursor": c})
    return st.one_of(st.just(query), alone, with_filters)
