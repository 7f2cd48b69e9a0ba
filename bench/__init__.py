"""Benchmarks (`make bench`): each figure measured beside its upper bound, in the same run.

Never part of `make test`. ``python -m bench --help`` lists the benchmarks and the scales.
"""
