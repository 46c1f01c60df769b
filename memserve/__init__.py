"""memserve: a retrieval-augmented memory server for LLM agents."""

__version__ = "0.1.0"
