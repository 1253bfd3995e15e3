"""Data: video decoding, HDF5 shards, demo videos, Datasets."""
