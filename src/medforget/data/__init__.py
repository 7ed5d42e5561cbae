"""Benchmark rows to model inputs (``formatting``) and batches (``collate``), shared by every stage."""
