"""Benchmarks behind ``sam2voice bench`` (figures are recorded in docs/benchmarks.md)."""

from app.eval.bench.memory import run_memory_bench

__all__ = ["run_memory_bench"]
