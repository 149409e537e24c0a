"""trio_primitives' benchmark suite: ``python -m benchmarks [--quick] [--json PATH] [--plot PATH]``.

See benchmarks/README.md for how to run it and how to read the table.
"""
