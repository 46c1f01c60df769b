"""MemoryClient and AsyncMemoryClient must expose the same API, so they can never drift apart."""

from __future__ import annotations

import inspect

from memserve_client import AsyncMemoryClient, MemoryClient

# Context-manager dunders differ by nature (__enter__ vs __aenter__) and are checked separately.
_SYNC_ONLY = {"__enter__", "__exit__"}
_ASYNC_ONLY = {"__aenter__", "__aexit__"}


def _public(cls: type) -> dict[str, object]:
    return {name: member for name, member in vars(cls).items() if not name.startswith("_")}


def _methods(cls: type) -> dict[str, object]:
    """Public methods (properties such as ``admin`` are compared in test_admin_clients_match)."""
    return {name: member for name, member in _public(cls).items() if callable(member)}


def test_same_public_methods() -> None:
    assert set(_public(MemoryClient)) == set(_public(AsyncMemoryClient))
    assert set(vars(MemoryClient)) >= _SYNC_ONLY and set(vars(AsyncMemoryClient)) >= _ASYNC_ONLY


def test_same_signatures() -> None:
    assert inspect.signature(MemoryClient.__init__) == inspect.signature(AsyncMemoryClient.__init__)
    for name, sync_method in _methods(MemoryClient).items():
        async_method = getattr(AsyncMemoryClient, name)
        sync_sig, async_sig = inspect.signature(sync_method), inspect.signature(async_method)
        assert sync_sig.parameters == async_sig.parameters, name
        # Iterators differ only in being async; everything else returns the very same type.
        expected = str(sync_sig.return_annotation).replace("Iterator[", "AsyncIterator[")
        assert str(async_sig.return_annotation) == expected, name


def test_async_methods_are_coroutines_and_sync_ones_are_not() -> None:
    for name, sync_method in _methods(MemoryClient).items():
        async_method = getattr(AsyncMemoryClient, name)
        if inspect.isgeneratorfunction(sync_method):
            assert inspect.isasyncgenfunction(async_method), name
        else:
            assert inspect.iscoroutinefunction(async_method), name
            assert not inspect.iscoroutinefunction(sync_method), name


def test_every_method_is_documented_once_for_both() -> None:
    for name, sync_method in _public(MemoryClient).items():
        assert sync_method.__doc__, name
        assert getattr(AsyncMemoryClient, name).__doc__ == sync_method.__doc__, name


def test_public_surface_stays_small() -> None:
    # House style: a class past ~15 public methods is asking to be split.
    assert len([m for m in _public(MemoryClient).values() if callable(m)]) <= 15


def test_admin_clients_match() -> None:
    from memserve_client.aio import AsyncAdminClient
    from memserve_client.client import AdminClient

    sync_admin, async_admin = vars(MemoryClient)["admin"], vars(AsyncMemoryClient)["admin"]
    assert isinstance(sync_admin, property) and isinstance(async_admin, property)
    assert sync_admin.__doc__ == async_admin.__doc__
    assert set(_public(AdminClient)) == set(_public(AsyncAdminClient)) == {
        "backup", "export_namespace", "iter_export", "import_namespace"}
    for name, sync_method in _public(AdminClient).items():
        async_method = getattr(AsyncAdminClient, name)
        sync_sig, async_sig = inspect.signature(sync_method), inspect.signature(async_method)
        assert sync_sig.parameters == async_sig.parameters, name
        expected = str(sync_sig.return_annotation).replace("Iterator[", "AsyncIterator[")
        assert str(async_sig.return_annotation) == expected, name
        assert sync_method.__doc__ and async_method.__doc__ == sync_method.__doc__, name
        if inspect.isgeneratorfunction(sync_method):
            assert inspect.isasyncgenfunction(async_method), name
        else:
            assert inspect.iscoroutinefunction(async_method), name
