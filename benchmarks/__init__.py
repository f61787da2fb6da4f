"""Benchmarks of minidl against minimal hand-written NumPy steps (and PyTorch, when installed).

Run ``python benchmarks/train_step.py`` (``--quick`` for a smoke run); see ``docs/performance.md``.
"""
