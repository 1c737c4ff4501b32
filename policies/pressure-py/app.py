"""The default pressure response in Python: decision for decision the Rust
`pressure-default` policy and the host's `NativePressure` (host/core/src/policy/native.rs).

- normal: nothing;
- warning: trim every non-empty cache by 10% of its bytes;
- critical: trim every non-empty cache by 30%, shrink every pool by its idle
  connections, shed work below priority 2, purge the allocator, alert with the RSS.

Built by `policies/build` with `componentize-py -d wit -w pressure-policy componentize app`.
"""

from typing import List

from wit_world import exports
from wit_world.exports.pressure import (
    Action,
    Action_Alert,
    Action_PurgeAllocator,
    Action_ShedBelow,
    Action_ShrinkPool,
    Action_TrimCache,
    CacheStat,
    PoolStat,
    Shrink,
    Trim,
)
from wit_world.imports.types import PressureLevel, Usage

# u64 arithmetic as the Rust twins do it (release builds wrap); Python ints never overflow.
U64 = (1 << 64) - 1


class Pressure(exports.Pressure):
    def respond(
        self,
        level: PressureLevel,
        system: Usage,
        caches: List[CacheStat],
        pools: List[PoolStat],
    ) -> List[Action]:
        if level == PressureLevel.WARNING:
            pct = 10
        elif level == PressureLevel.CRITICAL:
            pct = 30
        else:
            return []
        out: List[Action] = [
            Action_TrimCache(Trim(cache=c.name, bytes=((c.bytes * pct) & U64) // 100))
            for c in caches
            if c.bytes > 0
        ]
        if level == PressureLevel.CRITICAL:
            out.extend(
                Action_ShrinkPool(Shrink(pool=p.name, idle=p.idle)) for p in pools if p.idle > 0
            )
            out.append(Action_ShedBelow(2))
            out.append(Action_PurgeAllocator())
            out.append(
                Action_Alert(
                    f"critical memory pressure: process RSS {system.process_rss_bytes >> 20} MiB"
                )
            )
        return out
