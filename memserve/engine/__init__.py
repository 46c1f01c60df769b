"""Orchestration: write and query paths, retrieval fusion, summaries, pruning."""
