#!/usr/bin/env python3
"""Measures built policies the same way for every guest language, with the host's own
`rmhost policy check --json`, and prints the markdown table of policies/README.md.

    python3 policies/tools/measure.py --rmhost target/release/rmhost \\
        Rust=policies/lru.wasm C=policies/lru-c.wasm JavaScript=policies/lru-js.wasm ...

Per file: the component's size; Cranelift's compile time in that host (run with an empty
artifact cache, so it really compiles), then the load time from the artifact cache it
just filled (a second run); the first instantiation; and the median call of the
policy's kind (`policy check`'s 200 timing calls, here under a 1 s deadline: for eviction, one
`observe` with 16 inserts, 16 hits, the removes of the last victims and a request for
room). Times are also printed as ratios against the first file, measured in the same run,
since absolute numbers move with the machine's load.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile


def check(rmhost, path, cache_home):
    env = dict(os.environ, XDG_CACHE_HOME=cache_home, RMHOST_LOG="error")
    env.pop("RMHOST_CONFIG", None)
    out = subprocess.run(
        # A deadline far above any call, so a descheduled call on a loaded machine is
        # measured rather than cut off (and does not fail the check).
        [rmhost, "policy", "check", "--json", "--set", "policies.deadline_ms=1000", path],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.exit(f"measure.py: rmhost policy check {path} failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rmhost", required=True, help="the rmhost binary (a release build)")
    ap.add_argument("policies", nargs="+", metavar="LANGUAGE=FILE.wasm")
    args = ap.parse_args()
    rows = []
    for spec in args.policies:
        lang, sep, path = spec.partition("=")
        if not sep or not path:
            sys.exit(f"measure.py: expected LANGUAGE=FILE.wasm, got {spec!r}")
        if not os.path.isfile(path):
            sys.exit(f"measure.py: {path} does not exist (build it with policies/build)")
        with tempfile.TemporaryDirectory() as cache:
            first = check(args.rmhost, path, cache)
            second = check(args.rmhost, path, cache)
        if first["from_cache"] or not second["from_cache"]:
            sys.exit(f"measure.py: {path}: expected a compile, then a cache load")
        timing = first["timing"][0]
        rows.append(
            dict(
                lang=lang,
                name=os.path.basename(path),
                kind=timing["kind"],
                size=first["size_bytes"],
                compile_ms=first["compile_ms"],
                load_ms=second["compile_ms"],
                inst_us=first["instantiate_us"],
                call_us=timing["p50_us"],
                wasi=first["wasi"],
            )
        )
    base = rows[0]
    ratio = lambda r, k: f"{r[k] / base[k]:.1f}x" if base[k] > 0 else "-"
    print(
        "| language | policy | kind | size | compile in the host | load from the artifact cache "
        "| first instantiation | one call (median) | imports WASI |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['lang']} | `{r['name']}` | {r['kind']} | {r['size'] / 1024:,.1f} KiB "
            f"| {r['compile_ms']:,.1f} ms ({ratio(r, 'compile_ms')}) "
            f"| {r['load_ms']:,.2f} ms ({ratio(r, 'load_ms')}) "
            f"| {r['inst_us']:,.1f} µs ({ratio(r, 'inst_us')}) "
            f"| {r['call_us']:,.2f} µs ({ratio(r, 'call_us')}) "
            f"| {'yes (granted nothing)' if r['wasi'] else 'no'} |"
        )
    print(f"\nratios against {base['name']}, measured in the same run")


if __name__ == "__main__":
    main()
