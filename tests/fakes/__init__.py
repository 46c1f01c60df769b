"""Deterministic fakes at the model boundary (never for the library under test)."""
