"""The benchmarks, as a package so that each part shares ``bench.common``; run them as scripts
(``bench/run.py``, ``bench/alert_to_rollback.py``), as bench/README.md shows."""
