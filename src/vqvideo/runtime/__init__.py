"""The lowest layer: process-level helpers every other package may import and that import none of them.

``distributed`` (process group, collectives that are no-ops in one process), ``checkpoint`` (atomic,
``weights_only`` checkpoints and RNG state) and ``files`` (durable renames). Models, data, encoding,
sampling and training sit above it.
"""
