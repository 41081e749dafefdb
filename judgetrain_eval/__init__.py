"""Benchmarks: one module per benchmark, each registered by name as an entry point of the
``judgetrain.benchmarks`` group (judgetrain's pyproject.toml; see :mod:`judgetrain.plugins`).

Each module defines ``BENCHMARK`` (an :class:`judgetrain_eval.base.Benchmark`): where its data lives, the
``data_prep`` reader that reads it, the gold label, its groups, the metrics that apply and the judge
format it runs with by default. ``judgetrain eval --benchmark NAME`` finds the module through that registry;
the judgetrain library never imports this package.
"""
