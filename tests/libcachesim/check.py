#!/usr/bin/env python3
"""Cross-check `rmhost sim` against libCacheSim (PyPI `libcachesim`, tested with 0.3.5).

    pip install libcachesim numpy
    python3 tests/libcachesim/check.py --sim "rmhost sim"          # the CLI
    python3 tests/libcachesim/check.py --sim /path/to/rmsim        # any binary, same flags

The sim command is called as
    SIM --trace FILE --format plain|csv|oracle-general --cache-size N
        --builtin lru,fifo,sieve,s3fifo --belady --json
and must print a JSON array of {policy, requests, misses, miss_ratio, ...}.

Traces (generated here with numpy, deterministic seeds):
  - zipf:  Zipf(1.0) over 10k objects, 200k requests, unit sizes (plain text);
  - scan:  the same Zipf mix with a sequential scan of 3k never-seen ids every 20k
           requests (plain text);
  - sized: the Zipf mix with per-object sizes 1..100 bytes (CSV `id,size,time`).
Requires: identical miss counts for LRU and FIFO (native, and every --wasm policy); Belady within 0.2 percentage points
(Belady runs on the oracleGeneral conversion libCacheSim makes, which our reader also
reads). S3-FIFO, SIEVE and W-TinyLFU are printed side by side, not required to match.
Exits non-zero on any mismatch.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np
import libcachesim as lcs

BELADY_TOLERANCE_PP = 0.2


def zipf_ids(rng, objects, requests, alpha=1.0):
    weights = 1.0 / np.arange(1, objects + 1, dtype=np.float64) ** alpha
    return rng.choice(objects, size=requests, p=weights / weights.sum()) + 1


def make_traces(d):
    rng = np.random.default_rng(42)
    zipf = zipf_ids(rng, 10_000, 200_000)
    traces = {}

    path = os.path.join(d, "zipf.txt")
    np.savetxt(path, zipf, fmt="%d")
    traces["zipf"] = (path, "plain", 10_000)

    parts, nxt = [], 1_000_000
    for i in range(0, len(zipf), 20_000):
        parts.append(zipf[i : i + 20_000])
        parts.append(np.arange(nxt, nxt + 3_000))
        nxt += 3_000
    path = os.path.join(d, "scan.txt")
    np.savetxt(path, np.concatenate(parts), fmt="%d")
    traces["scan"] = (path, "plain", 10_000)

    sizes = 1 + (zipf * 2654435761 % 100)
    path = os.path.join(d, "sized.csv")
    with open(path, "w") as f:
        f.write("id,size,time\n")
        for t, (i, s) in enumerate(zip(zipf, sizes)):
            f.write(f"{i},{s},{t}\n")
    traces["sized"] = (path, "csv", int(sizes[np.unique(zipf, return_index=True)[1]].sum()))
    return traces


def reader(path, fmt):
    if fmt == "plain":
        return lcs.TraceReader(path, lcs.TraceType.PLAIN_TXT_TRACE, lcs.ReaderInitParam(ignore_obj_size=True))
    if fmt == "csv":
        p = lcs.ReaderInitParam(has_header=True, has_header_set=True, delimiter=",")
        p.obj_id_field, p.obj_size_field, p.time_field = 1, 2, 3
        return lcs.TraceReader(path, lcs.TraceType.CSV_TRACE, p)
    return lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE, lcs.ReaderInitParam())


def lcs_misses(path, fmt, policy, size):
    r = reader(path, fmt)
    n = sum(1 for _ in r)  # count requests the way the reader sees them
    r.reset()
    t0 = time.perf_counter()
    r = reader(path, fmt)  # a fresh reader: parsing counts, as in `rmhost sim`
    miss_ratio, byte_miss_ratio = getattr(lcs, policy)(cache_size=size).process_trace(r)
    SPEED.setdefault((path, size, policy), n / (time.perf_counter() - t0))
    return round(miss_ratio * n), miss_ratio, n


# Requests per second of libCacheSim's process_trace, per policy (for the speed table).
SPEED = {}


def run_ours(sim, path, fmt, size, builtins, belady, wasm=()):
    cmd = shlex.split(sim) + ["--trace", path, "--format", fmt, "--cache-size", str(size), "--json"]
    if builtins:
        cmd += ["--builtin", ",".join(builtins)]
    for file in wasm:
        cmd += ["--policy", file]
    if belady:
        cmd.append("--belady")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {r["policy"]: r for r in json.loads(out)}


def wall_speed(sim, path, fmt, size, builtin):
    """Requests per second of one whole `sim` run (process start, trace parsing and the
    replay), the same work libCacheSim's reader + process_trace does."""
    cmd = shlex.split(sim) + ["--trace", path, "--format", fmt, "--cache-size", str(size),
                              "--builtin", builtin, "--json"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    elapsed = time.perf_counter() - t0
    return json.loads(out)[0]["requests"] / elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sim", required=True, help="the sim command (e.g. 'rmhost sim' or a binary path)")
    ap.add_argument("--keep", help="write traces into this directory and keep them")
    ap.add_argument("--wasm", action="append", default=[], metavar="ALGO=FILE",
                    help="also replay a Wasm policy and require it to match libCacheSim's ALGO "
                         "(lru or fifo) exactly, e.g. --wasm lru=policies/lru.wasm (repeatable)")
    args = ap.parse_args()

    d = args.keep or tempfile.mkdtemp(prefix="rmhost-lcs-")
    os.makedirs(d, exist_ok=True)
    traces = make_traces(d)
    failures = 0
    checked = 0
    print(f"{'trace':6} {'size':>7} {'policy':16} {'libCacheSim':>12} {'rmhost':>12}  verdict")
    for name, (path, fmt, footprint) in traces.items():
        og = path + ".oracleGeneral"
        r = reader(path, fmt)
        lcs.Util.convert_to_oracleGeneral(r._reader, og)
        for frac in (0.01, 0.10):
            size = max(2, int(footprint * frac))
            wasm = [w.split("=", 1) for w in args.wasm]
            ours = run_ours(args.sim, path, fmt, size, ["lru", "fifo", "sieve", "s3fifo", "wtinylfu"], False,
                            [f for _, f in wasm])
            ours.update(run_ours(args.sim, og, "oracle-general", size, [], True))
            rows = [("LRU", "builtin:lru", "exact"), ("FIFO", "builtin:fifo", "exact"),
                    ("Belady", "belady", "pp"), ("Sieve", "builtin:sieve", None),
                    ("S3FIFO", "builtin:s3fifo", None), ("WTinyLFU", "builtin:wtinylfu", None)]
            rows += [({"lru": "LRU", "fifo": "FIFO"}[algo], os.path.basename(f), "exact") for algo, f in wasm]
            for lcs_name, ours_name, rule in rows:
                src, sfmt = (og, "oracle-general") if lcs_name == "Belady" else (path, fmt)
                m, mr, n = lcs_misses(src, sfmt, lcs_name, size)
                o = ours.get(ours_name) if ours_name else None
                verdict = "(info)"
                if rule == "exact":
                    ok = o is not None and o["misses"] == m and o["requests"] == n
                    verdict = "OK" if ok else "MISMATCH"
                elif rule == "pp":
                    ok = o is not None and abs(o["miss_ratio"] - mr) * 100 <= BELADY_TOLERANCE_PP
                    verdict = "OK" if ok else "MISMATCH"
                else:
                    ok = True
                failures += not ok
                checked += rule is not None
                ours_txt = f"{o['miss_ratio']:.4f}" if o else "-"
                label = lcs_name if ours_name is None or ours_name.startswith(("builtin:", "belady")) else ours_name
                print(f"{name:6} {size:>7} {label:16} {mr:>12.4f} {ours_txt:>12}  {verdict}"
                      + (f"  (misses {m} vs {o['misses'] if o else '-'})" if verdict == "MISMATCH" else ""))
    print("traces in", d)
    # Speed on the same traces, whole runs on both sides (reading and replaying):
    # libCacheSim's C simulator through Python vs `rmhost sim` (the production cache
    # code; a debug build is much slower than a release one).
    print(f"speed, whole runs ({args.sim!r}; a debug build is several times slower than --release):")
    for (path, size, policy), theirs in sorted(SPEED.items()):
        if policy not in ("LRU", "FIFO") or path.endswith(".oracleGeneral"):
            continue
        fmt = "csv" if path.endswith(".csv") else "plain"
        mine = wall_speed(args.sim, path, fmt, size, policy.lower())
        print(f"speed {os.path.basename(path):10} {size:>6} {policy:5} libCacheSim {theirs / 1e6:6.2f} M req/s"
              f"   rmhost sim {mine / 1e6:6.2f} M req/s   ({mine / theirs:.2f}x)")
    if failures:
        print(f"{failures} mismatch(es)", file=sys.stderr)
    else:
        print("all required checks match")
    print(f"libcachesim: {checked - failures} passed, {failures} failed")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
