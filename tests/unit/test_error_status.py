"""memserve.errors is transport-free; memserve.server.status gives every class the code it always had."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import grpc
import pytest

from memserve import errors
from memserve.server.status import STATUS_CODES, status_code

# Every class of the tree with the gRPC code it carried as ``code`` before the mapping moved to server/.
EXPECTED = {
    "MemserveError": "INTERNAL",
    "InvalidArgument": "INVALID_ARGUMENT",
    "NotFound": "NOT_FOUND",
    "NamespaceNotFound": "NOT_FOUND",
    "EpisodeNotFound": "NOT_FOUND",
    "FailedPrecondition": "FAILED_PRECONDITION",
    "ExtractionFailed": "FAILED_PRECONDITION",
    "ResourceExhausted": "RESOURCE_EXHAUSTED",
    "DiskFull": "RESOURCE_EXHAUSTED",
    "Unauthenticated": "UNAUTHENTICATED",
    "PermissionDenied": "PERMISSION_DENIED",
    "Unavailable": "UNAVAILABLE",
    "StorageFailed": "UNAVAILABLE",
    "DeadlineExceeded": "DEADLINE_EXCEEDED",
    "ConfigError": "INTERNAL",
    "StorageCorrupt": "INTERNAL",
    "LLMError": "UNAVAILABLE",
    "Internal": "INTERNAL",
}


def _tree() -> dict[str, type[errors.MemserveError]]:
    return {name: cls for name, cls in inspect.getmembers(errors, inspect.isclass)
            if issubclass(cls, errors.MemserveError)}


def test_every_error_class_keeps_its_status_code() -> None:
    tree = _tree()
    assert set(tree) == set(EXPECTED), "a new error class: add it to EXPECTED (and to STATUS_CODES if its code differs)"
    got = {name: status_code(cls("x")).name for name, cls in tree.items()}
    assert got == EXPECTED


def test_a_reason_override_does_not_change_the_code() -> None:
    assert status_code(errors.InvalidArgument("bad", field="x", reason="MALFORMED_REQUEST")) is (
        grpc.StatusCode.INVALID_ARGUMENT)


@pytest.mark.parametrize("cls", list(STATUS_CODES))
def test_the_table_only_names_classes_of_the_tree(cls: type[errors.MemserveError]) -> None:
    assert cls.__module__ == "memserve.errors"


def test_the_error_tree_does_not_import_the_transport() -> None:
    tree = ast.parse(Path(errors.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"grpc", "google"}
    assert not hasattr(errors.MemserveError, "code")
