"""cProfile of the graph turn (template model, a seeded person): where a turn's time goes.

    .venv/bin/python scripts/profile_turn.py [--interventions 10000] [--turns 100] [--top 40]

Runs 20 warm-up turns, then profiles ``--turns`` more on a throwaway Redis and prints the
functions with the most time of their own and the most cumulative time. The profiler itself
slows the turn by about 1.8x; read the shares, not the milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time

from app.eval.bench.graph import ANSWERS, SITUATIONS
from app.eval.bench.seeded import seeded_companion
from app.settings import Settings


async def profile(interventions: int, turns: int) -> tuple[cProfile.Profile, float]:
    async with seeded_companion(Settings(), prefix="prof", user="u", interventions=interventions,
                                say=print) as (companion, _):
        session = companion.session("u", seed="bench")
        await session.open()

        def text(i: int) -> str:
            return SITUATIONS[i % len(SITUATIONS)] if i % 2 == 0 else ANSWERS[(i // 2) % 2]

        for i in range(20):
            await session.send(text(i))
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        for i in range(turns):
            await session.send(text(i))
        profiler.disable()
        return profiler, (time.perf_counter() - start) * 1000 / turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interventions", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    profiler, per_turn = asyncio.run(profile(args.interventions, args.turns))
    print(f"{per_turn:.1f} ms a turn under the profiler")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
