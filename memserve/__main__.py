"""memserve command line: thin wrappers that parse arguments and call the library or the SDK.

    memserve serve  [--data-dir DIR] [--port PORT] [--host HOST] [--config FILE] [--set NAME=VALUE ...]
    memserve ingest --server HOST:PORT --namespace NS FILE.jsonl [--openie FILE.json] [--batch-size N]
    memserve query  --server HOST:PORT --namespace NS [--top-k K] [--mode dense|graph|hybrid] [--json] TEXT
    memserve list | get | delete | stats | summary | prune | export | settings | health | mcp
    memserve keys hash | keys add FILE --name N --namespace GLOB --scope read|write|admin
    memserve backup  --server HOST:PORT DIR            (a consistent copy of a live server's database)
    memserve restore DIR --data-dir D [--force]        (put a backup back; the server must be stopped)
    memserve export-namespace --server HOST:PORT --namespace NS -o FILE.jsonl
    memserve import-namespace --server HOST:PORT [--namespace NS] FILE.jsonl
    memserve --version
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the SDK is imported by the commands that need it, not at start-up
    from memserve_client import Episode, MemoryClient

DEFAULT_SERVER = "127.0.0.1:50051"


def _server_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("MEMSERVE_SERVER", DEFAULT_SERVER),
                   help="HOST:PORT of a running memserve (env MEMSERVE_SERVER)")
    p.add_argument("--api-key", default=os.environ.get("MEMSERVE_API_KEY", ""),
                   help="API key, sent as 'authorization: Bearer <key>' (env MEMSERVE_API_KEY)")
    p.add_argument("--tls", action="store_true", default=bool(os.environ.get("MEMSERVE_TLS")),
                   help="connect with TLS, trusting the system's roots (env MEMSERVE_TLS)")
    p.add_argument("--tls-ca", type=Path, default=os.environ.get("MEMSERVE_TLS_CA") or None,
                   help="PEM CA bundle to trust instead (implies --tls; env MEMSERVE_TLS_CA)")
    p.add_argument("--tls-cert", type=Path, default=os.environ.get("MEMSERVE_TLS_CERT") or None,
                   help="PEM client certificate for mTLS (with --tls-key; env MEMSERVE_TLS_CERT)")
    p.add_argument("--tls-key", type=Path, default=os.environ.get("MEMSERVE_TLS_KEY") or None,
                   help="PEM private key of --tls-cert (env MEMSERVE_TLS_KEY)")
    p.add_argument("--timeout", type=float, default=None, help="deadline per call in seconds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memserve", description="memory server for LLM agents")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the gRPC server")
    p.add_argument("--data-dir", type=Path, help="where the database and indexes live (default ./memserve-data)")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="bind port (default 50051; 0 picks a free port)")
    p.add_argument("--config", type=Path, default=os.environ.get("MEMSERVE_CONFIG"), help="TOML settings file")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override any setting (see `memserve settings`)")
    p.add_argument("--port-file", type=Path, help="write the bound port here once serving (for scripts)")

    sub.add_parser("settings", help="print every setting with its env variable and default (markdown)")

    p = sub.add_parser("health", help="exit 0 when the server reports SERVING (container health checks)")
    _server_arg(p)

    p = sub.add_parser("keys", help="make entries for the scoped API keys file (see docs/SECURITY.md)")
    keys = p.add_subparsers(dest="keys_command", required=True)
    k = keys.add_parser("hash", help="print the keys-file hash of a key read from stdin (or --key)")
    k.add_argument("--key", help="the key (default: read one line from stdin, so it stays out of shell history)")
    k = keys.add_parser("add", help="draw a new random key, append its hashed entry to FILE, print the key once")
    k.add_argument("file", type=Path, help="the api_keys_file (created if missing)")
    k.add_argument("--name", required=True, help="a label for the log")
    k.add_argument("--namespace", action="append", required=True, metavar="GLOB",
                   help="namespace pattern the key may use (repeatable; '*' is every namespace)")
    k.add_argument("--scope", action="append", required=True, choices=["read", "write", "admin"],
                   help="repeatable")

    p = sub.add_parser("ingest", help="write episodes from a JSONL file")
    _server_arg(p)
    p.add_argument("--namespace", required=True)
    p.add_argument("file", type=Path, help="JSONL: {id?, text, session_id?, speaker?, time?, metadata?, ...}")
    p.add_argument("--openie", type=Path, help="HippoRAG OpenIE JSON: attach its entities and triples by passage text")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--wait-for-graph", action="store_true", help="return once the graph has caught up")

    p = sub.add_parser("query", help="ask a question")
    _server_arg(p)
    p.add_argument("--namespace", required=True)
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--mode", choices=["dense", "graph", "hybrid"])
    p.add_argument("--session", action="append", default=[], help="only these sessions (repeatable)")
    p.add_argument("--token-budget", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("text")

    p = sub.add_parser("list", help="list a namespace's episodes, or the namespaces")
    _server_arg(p)
    p.add_argument("--namespace", default="", help="whose episodes (default: list the namespaces)")
    p.add_argument("--session", default="", help="only this session's episodes")
    p.add_argument("--limit", type=int, default=100, help="at most this many (0: all)")
    p.add_argument("--json", action="store_true", help="print JSON lines, one per episode or namespace")

    p = sub.add_parser("get", help="print one episode")
    _server_arg(p)
    p.add_argument("--namespace", required=True)
    p.add_argument("id")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("delete", help="delete episodes by id")
    _server_arg(p)
    p.add_argument("--namespace", required=True)
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("stats", help="namespace and server statistics")
    _server_arg(p)
    p.add_argument("--namespace", default="")
    p.add_argument("--json", action="store_true", help="print JSON (default: a short table)")

    p = sub.add_parser("summary", help="the compact memory of a namespace or session")
    _server_arg(p)
    p.add_argument("--namespace", required=True)
    p.add_argument("--session", default="")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("prune", help="age-weighted forgetting")
    _server_arg(p)
    p.add_argument("--namespace", required=True)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--max-episodes", type=int, default=0)
    p.add_argument("--max-bytes", type=int, default=0)
    p.add_argument("--min-score", type=float)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("mcp", help="serve MCP (Model Context Protocol) tools in front of a running memserve")
    _server_arg(p)
    p.add_argument("--namespace", default=os.environ.get("MEMSERVE_NAMESPACE", "default"),
                   help="namespace of calls that name none (env MEMSERVE_NAMESPACE; default 'default')")
    p.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    p.add_argument("--host", default="127.0.0.1", help="streamable-http bind address")
    p.add_argument("--port", type=int, default=8765, help="streamable-http port (path /mcp)")

    p = sub.add_parser("export", help="write the knowledge graph as GraphML or node-link JSON")
    _server_arg(p)
    p.add_argument("--namespace", required=True)
    p.add_argument("--format", choices=["graphml", "node-link"], default="graphml")
    p.add_argument("--output", "-o", type=Path, required=True)
    p.add_argument("--directed", action="store_true", help="directed graph: fact edges run subject -> object")

    p = sub.add_parser("backup", help="copy a live server's database consistently (admin)")
    _server_arg(p)
    p.add_argument("directory", type=Path, help="new directory on the server's machine")

    p = sub.add_parser("restore", help="put a backup into a data directory (its server stopped)")
    p.add_argument("directory", type=Path, help="a directory written by `memserve backup`")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--force", action="store_true", help="replace a database already in --data-dir")

    p = sub.add_parser("export-namespace", help="write one namespace (with embeddings, extractions) as JSONL")
    _server_arg(p)
    p.add_argument("--namespace", required=True)
    p.add_argument("--output", "-o", type=Path, required=True)

    p = sub.add_parser("import-namespace", help="load a namespace export into a server")
    _server_arg(p)
    p.add_argument("--namespace", help="target namespace (default: the exported one)")
    p.add_argument("file", type=Path)
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from .config import load_settings
    from .errors import ConfigError
    from .server.app import serve

    overrides: dict = {"data_dir": args.data_dir, "host": args.host, "port": args.port}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"memserve: --set expects NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        overrides[name.strip()] = value
    try:
        settings = load_settings(config_file=args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"memserve: {exc}", file=sys.stderr)
        return 2
    from .server.observability import configure_logging

    configure_logging(settings.log_level, settings.log_format)

    try:
        return asyncio.run(serve(settings, args.port_file))
    except ConfigError as exc:
        print(f"memserve: {exc}", file=sys.stderr)
        return 2


def _client(args: argparse.Namespace) -> MemoryClient:
    from memserve_client import MemoryClient

    return MemoryClient(args.server, timeout=args.timeout, api_key=args.api_key or None, tls=args.tls,
                        root_certificates=args.tls_ca, client_cert=args.tls_cert, client_key=args.tls_key)


def cmd_ingest(args: argparse.Namespace) -> int:
    from .cli_ingest import ingest_file

    with _client(args) as client:
        return ingest_file(client, args.namespace, args.file, openie=args.openie, batch_size=args.batch_size,
                           wait_for_graph=args.wait_for_graph)


def cmd_query(args: argparse.Namespace) -> int:
    from memserve_client import QueryFilter

    flt = QueryFilter(session_ids=tuple(args.session)) if args.session else None
    with _client(args) as client:
        result = client.query(args.namespace, args.text, top_k=args.top_k, mode=args.mode, filter=flt,
                              token_budget=args.token_budget)
    if args.json:
        out = {"hits": [{"id": h.episode.id, "text": h.episode.text, "score": h.score, "rank": h.rank,
                         "session_id": h.episode.session_id,
                         "facts": [[f.subject, f.predicate, f.object] for f in h.facts]} for h in result.hits],
               "mode": result.mode, "timings_ms": result.timings_ms}
        if args.token_budget:
            out["context"] = result.context
        print(json.dumps(out, ensure_ascii=False))
    else:
        for h in result.hits:
            print(f"{h.rank:>3}  {h.score:.4f}  {h.episode.id}  {h.episode.text[:100]!r}")
        print(f"mode {result.mode}; " + ", ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items()))
    return 0


def _print_json(obj: object) -> None:
    import dataclasses
    import datetime as dt

    def default(o: object) -> object:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        if isinstance(o, dt.datetime):
            return o.isoformat()
        if isinstance(o, bytes):
            return o.decode("utf-8", "replace")
        raise TypeError(type(o))

    print(json.dumps(obj, default=default, ensure_ascii=False, indent=2))


def cmd_stats(args: argparse.Namespace) -> int:
    with _client(args) as client:
        stats = client.stats(args.namespace)
    if args.json:
        _print_json(stats)
        return 0
    print(f"{stats.episode_count} episodes in {len(stats.namespaces)} namespaces; {stats.db_bytes:,} bytes in "
          f"DuckDB, {stats.disk_bytes:,} on disk; model {stats.embedding_model} ({stats.embedding_dim}d), "
          f"extractor {stats.extractor}{', GPU' if stats.gpu else ''}")
    if stats.llm.calls:
        print(f"LLM: {stats.llm.calls} calls ({stats.llm.cached_calls} cached, {stats.llm.failed_calls} failed), "
              f"{stats.llm.prompt_tokens + stats.llm.completion_tokens:,} tokens, ${stats.llm.cost_usd:.4f}")
    if stats.namespaces:
        print(f"{'namespace':<24} {'episodes':>9} {'sessions':>8} {'index':>12} {'phrases':>8} {'facts':>8} "
              f"{'backlog':>8}")
    for ns in stats.namespaces:
        print(f"{ns.namespace:<24} {ns.episode_count:>9} {ns.session_count:>8} {ns.index_type:>12} "
              f"{ns.phrase_count:>8} {ns.fact_count:>8} {ns.extraction_backlog:>8}")
    return 0


def _episode_dict(e: Episode) -> dict[str, object]:
    return {"id": e.id, "namespace": e.namespace, "session_id": e.session_id, "speaker": e.speaker, "text": e.text,
            "event_time": e.event_time.isoformat() if e.event_time else None, "metadata": dict(e.metadata),
            "importance": e.importance, "pinned": e.pinned,
            "create_time": e.create_time.isoformat() if e.create_time else None}


def cmd_list(args: argparse.Namespace) -> int:
    import itertools

    with _client(args) as client:
        if not args.namespace:
            token = ""
            while True:
                page = client.list_namespaces(page_token=token)
                for n in page.items:
                    print(json.dumps({"namespace": n.name, "episode_count": n.episode_count}) if args.json
                          else f"{n.name}\t{n.episode_count} episodes")
                token = page.next_page_token
                if not token:
                    return 0
        episodes = client.iter_episodes(args.namespace, session_id=args.session)
        for e in itertools.islice(episodes, args.limit or None):
            print(json.dumps(_episode_dict(e), ensure_ascii=False) if args.json
                  else f"{e.id}\t{e.session_id or '-'}\t{e.text[:100]!r}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        e = client.get(args.namespace, args.id)
    if args.json:
        print(json.dumps(_episode_dict(e), ensure_ascii=False, indent=2))
    else:
        when = f", {e.event_time.isoformat()}" if e.event_time else ""
        print(f"{e.id} (session {e.session_id or '-'}{', ' + e.speaker if e.speaker else ''}{when})")
        print(e.text)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.delete(args.namespace, args.ids)
    if args.json:
        _print_json(result)
    else:
        missing = f"; not found: {', '.join(result.not_found_ids)}" if result.not_found_ids else ""
        print(f"deleted {result.deleted_count}{missing}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    with _client(args) as client:
        summary = client.summary(args.namespace, session_id=args.session)
    if args.json:
        _print_json(summary)
    else:
        print(summary.summary)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.prune(args.namespace, dry_run=args.dry_run, max_episodes=args.max_episodes,
                              max_bytes=args.max_bytes, min_score=args.min_score)
    if args.json:
        _print_json(result)
    else:
        verb = "would prune" if result.dry_run else "pruned"
        print(f"{verb} {len(result.pruned)} episodes; {result.remaining_count} remain")
        for p in result.pruned:
            print(f"  {p.id}  score {p.score:.4f}  {p.reason}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with _client(args) as client:
        export = client.export_graph(args.namespace, format=args.format, directed=args.directed)
    args.output.write_bytes(export.data)
    print(f"wrote {args.output}: {export.node_count} nodes, {export.edge_count} edges")
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    try:
        from .mcp_server import run
    except ImportError as exc:
        print(f"memserve: {exc}", file=sys.stderr)
        return 2
    # stdout is the MCP channel in stdio mode: logs go to stderr only.
    logging.basicConfig(level="WARNING", stream=sys.stderr)
    run(_client(args), args.namespace, transport=args.transport, host=args.host, port=args.port)
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from . import cli_admin

    with _client(args) as client:
        return cli_admin.backup(client, args.directory)


def cmd_restore(args: argparse.Namespace) -> int:
    from . import cli_admin

    return cli_admin.restore(args.directory, args.data_dir, force=args.force)


def cmd_export_namespace(args: argparse.Namespace) -> int:
    from . import cli_admin

    with _client(args) as client:
        return cli_admin.export_namespace(client, args.namespace, args.output)


def cmd_import_namespace(args: argparse.Namespace) -> int:
    from . import cli_admin

    with _client(args) as client:
        return cli_admin.import_namespace(client, args.file, args.namespace)


def cmd_settings(args: argparse.Namespace) -> int:
    from .config import describe_settings

    print(describe_settings())
    return 0


def _version() -> str:
    from . import __version__

    try:
        from memserve_client import __version__ as client_version
    except ImportError:  # pragma: no cover - install problem
        client_version = "not installed"
    return f"memserve {__version__} (memserve-client {client_version})"


def cmd_health(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.health(timeout=args.timeout)
    print(status)
    return 0 if status == "SERVING" else 1


def cmd_keys(args: argparse.Namespace) -> int:
    from .cli_keys import add_key, print_hash

    if args.keys_command == "hash":
        return print_hash(args.key)
    return add_key(args.file, args.name, args.namespace, args.scope)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `memserve settings | head`: the reader left; stop quietly (and keep the interpreter's final flush
        # from raising again on the closed pipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"serve": cmd_serve, "ingest": cmd_ingest, "query": cmd_query, "stats": cmd_stats,
                "summary": cmd_summary, "prune": cmd_prune, "export": cmd_export, "settings": cmd_settings,
                "list": cmd_list, "get": cmd_get, "delete": cmd_delete, "mcp": cmd_mcp,
                "keys": cmd_keys, "health": cmd_health,
                "backup": cmd_backup, "restore": cmd_restore, "export-namespace": cmd_export_namespace,
                "import-namespace": cmd_import_namespace}
    if args.command in ("serve", "keys", "restore"):
        return handlers[args.command](args)
    try:
        from memserve_client import MemserveError
    except ImportError:  # pragma: no cover - install problem
        print("memserve: the memserve-client package is not installed", file=sys.stderr)
        return 2
    try:
        code = handlers[args.command](args)
        sys.stdout.flush()  # a closed pipe raises here, inside main's BrokenPipeError handler
        return code
    except MemserveError as exc:
        print(f"memserve: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
