"""The domain's records: plain values every layer may import, which import nothing of memserve.

The store persists them and the packages above compute them, so neither has to import the other: ``clock`` (time
as a dependency), ``extraction`` (what an extractor produces), ``graph`` (graph deltas and persisted columns),
``hema`` (summary state, pruning candidates and decisions), ``llm`` (a cached completion), ``ranking`` (the
best-first, ties-by-seq order every ranked list shares). docs/ARCHITECTURE.md.
"""
