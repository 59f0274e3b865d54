"""Real servers for the tests, each started on loopback on its own port and stopped by PID.

One module per server (``xrootd``, ``postgres``, ``slurm``, ``smtp``...), each exposing a small
class with ``start()``/``stop()`` and a pytest fixture in a plugin module listed in
``tests/conftest.py``.  Nothing here is a mock.
"""
