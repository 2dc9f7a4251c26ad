"""Benchmarks are not tests: keep pytest from collecting anything in this folder.

Run them with ``python tests/bench/run.py`` (``--quick`` for a short pass).
"""

collect_ignore_glob = ["*.py"]
