"""Artifact storage: the streaming pipeline, keys, and the DVC remote adapter."""
