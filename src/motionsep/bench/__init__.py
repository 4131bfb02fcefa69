"""Benchmarks that choose our defaults: leakage.py (every method on the shapes world), cost.py
(parameters, file size, step time, memory, generation time), report.py (tables, plots, machine line)."""
