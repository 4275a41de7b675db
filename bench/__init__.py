"""Benchmarks (`make bench`). Each `bench/bench_*.py` module has a `main(argv)`; results also go to build/bench/."""
