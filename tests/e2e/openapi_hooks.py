"""schemathesis hooks for tests/e2e/openapi.rs (loaded through SCHEMATHESIS_HOOKS).

`no_foreign_tenant_data` fails when an answer to a tenant token names an object of another
tenant: the names listed in RMHOST_FOREIGN_MARKERS (comma-separated) belong only to the
other tenant's seeded allocation, cache, entry and binding. A marker the request itself
carried (an echoed path or body) is not a leak.
"""

import json
import os

import schemathesis

MARKERS = [m for m in os.environ.get("RMHOST_FOREIGN_MARKERS", "").split(",") if m]


def _sent(case) -> str:
    parts = [
        case.formatted_path if hasattr(case, "formatted_path") else case.path,
        case.path_parameters,
        case.query,
        case.headers,
        case.body if not isinstance(case.body, (bytes, bytearray)) else case.body.decode("utf-8", "replace"),
    ]
    return json.dumps(parts, default=str, ensure_ascii=False)


@schemathesis.check
def no_foreign_tenant_data(ctx, response, case):
    if not MARKERS:
        return None
    text = response.text or ""
    sent = _sent(case)
    for marker in MARKERS:
        if marker in text and marker not in sent:
            raise AssertionError(
                f"a tenant token's answer names {marker!r}, an object of another tenant:\n{text[:2000]}"
            )
    return True
