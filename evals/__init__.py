"""Benchmarks that drive a real memserve through the Python SDK (see ``multihop_qa`` and ``conversation_recall``)."""
