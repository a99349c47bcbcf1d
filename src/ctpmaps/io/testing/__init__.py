"""Tools to test the readers: small studies in every layout and a seeded fuzzer.

Not used by the pipeline: the tests (``tests/io``) and ``benchmarks/fuzz_readers.py``
import them.
"""
