"""Checks app.py against the same expectations as the Rust pressure-default tests.

Run with the generated bindings on the path:
  componentize-py -d ../../wit -w pressure-policy bindings /tmp/pybind
  PYTHONPATH=/tmp/pybind python3 -m unittest test_app
"""

import unittest

from app import Pressure
from wit_world.exports.pressure import (
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


def usage(rss: int) -> Usage:
    return Usage(
        cpu_percent=50.0,
        memory_used_bytes=0,
        memory_total_bytes=0,
        process_rss_bytes=rss,
        connections_active=0,
        requests_per_minute=0,
        load_average_1m=0.0,
        pressure=PressureLevel.CRITICAL,
    )


class FollowsTheNativeTwin(unittest.TestCase):
    caches = [CacheStat("a", 1000, 10, 0.5), CacheStat("empty", 0, 10, 0.5), CacheStat("b", 55, 10, 0.5)]
    pools = [PoolStat("pg", 8, 3, 0), PoolStat("busy", 8, 0, 0), PoolStat("redis", 8, 1, 0)]

    def test_levels(self) -> None:
        p = Pressure()
        s = usage(300 << 20)
        self.assertEqual(p.respond(PressureLevel.NORMAL, s, self.caches, self.pools), [])
        self.assertEqual(
            p.respond(PressureLevel.WARNING, s, self.caches, self.pools),
            [Action_TrimCache(Trim("a", 100)), Action_TrimCache(Trim("b", 5))],
        )
        self.assertEqual(
            p.respond(PressureLevel.CRITICAL, s, self.caches, self.pools),
            [
                Action_TrimCache(Trim("a", 300)),
                Action_TrimCache(Trim("b", 16)),
                Action_ShrinkPool(Shrink("pg", 3)),
                Action_ShrinkPool(Shrink("redis", 1)),
                Action_ShedBelow(2),
                Action_PurgeAllocator(),
                Action_Alert("critical memory pressure: process RSS 300 MiB"),
            ],
        )
        self.assertEqual(len(p.respond(PressureLevel.CRITICAL, usage(0), [], [])), 3)

    def test_wraps_like_u64(self) -> None:
        big = (1 << 64) - 1
        out = Pressure().respond(PressureLevel.WARNING, usage(0), [CacheStat("x", big, 1, 0.0)], [])
        self.assertEqual(out, [Action_TrimCache(Trim("x", ((big * 10) & big) // 100))])


if __name__ == "__main__":
    unittest.main()
