"""What an unauthenticated oversized request costs the server: time to the refusal and server memory.

    python evals/bench_auth_reject.py --label after            # this checkout's server
    PYTHONPATH=/path/to/old/checkout python evals/bench_auth_reject.py --label before

Starts a real `memserve serve` (api_key set, hash embedder) with the memserve found on PYTHONPATH, sends
``--requests`` WriteEpisodes calls of ``--mb`` MB with no key through plain grpc, and records per call the
status, the seconds until it came back (client serialisation included; measured apart too) and the server's RSS
(VmRSS from /proc) before, after, and its peak
(VmHWM). A 1-episode unauthenticated call in the same run is the floor the big ones are compared with.
Results merge into evals/results/auth_reject.json under the label.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import grpc
from memserve_client._proto import memory_pb2 as pb

from memserve.testing import ServerProcess

OUT = Path(__file__).resolve().parent / "results" / "auth_reject.json"


def _proc_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _timed(call, request) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        call(request, timeout=120)
        code = "OK"
    except grpc.RpcError as exc:
        code = exc.code().name
    return code, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", required=True)
    parser.add_argument("--mb", type=float, default=62.0)
    parser.add_argument("--requests", type=int, default=3)
    args = parser.parse_args()

    text = "x" * 60_000
    n = int(args.mb * 1e6 / (len(text) + 8))
    big = pb.WriteEpisodesRequest(namespace="bench", episodes=[pb.EpisodeInput(text=f"{i} {text}")
                                                               for i in range(n)])
    small = pb.WriteEpisodesRequest(namespace="bench", episodes=[pb.EpisodeInput(text="tiny")])
    size = big.ByteSize()
    started = time.perf_counter()
    big.SerializeToString()
    serialize_s = time.perf_counter() - started  # client-side part of every big call's time
    settings = {"embedding_model": "hash:64", "snapshot_interval_s": "0", "api_key": "bench-secret",
                "extractor": "none", "summarizer": "none"}
    with ServerProcess(settings=settings) as server:
        pid = server.proc.pid  # type: ignore[union-attr]
        opts = [("grpc.max_send_message_length", 256 << 20), ("grpc.max_receive_message_length", 256 << 20)]
        with grpc.insecure_channel(server.target, opts) as channel:
            call = channel.unary_unary("/memserve.v1.MemoryService/WriteEpisodes",
                                       request_serializer=pb.WriteEpisodesRequest.SerializeToString,
                                       response_deserializer=pb.WriteEpisodesResponse.FromString)
            floor = [_timed(call, small)[1] for _ in range(5)]
            rss_start = _proc_kb(pid, "VmRSS")
            rows = []
            for _ in range(args.requests):
                before = _proc_kb(pid, "VmRSS")
                code, seconds = _timed(call, big)
                rows.append({"code": code, "seconds": seconds, "rss_before_kb": before,
                             "rss_after_kb": _proc_kb(pid, "VmRSS")})
            peak = _proc_kb(pid, "VmHWM")
    result = {
        "request_bytes": size, "client_serialize_seconds": serialize_s, "requests": rows, "floor_seconds_median": statistics.median(floor),
        "seconds_median": statistics.median(r["seconds"] for r in rows),
        "rss_start_mb": rss_start / 1024, "rss_growth_mb": (rows[-1]["rss_after_kb"] - rss_start) / 1024,
        "rss_peak_over_start_mb": (peak - rss_start) / 1024,
    }
    result["ratio_to_floor"] = result["seconds_median"] / result["floor_seconds_median"]
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    data[args.label] = result
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps({args.label: {k: v for k, v in result.items() if k != "requests"}}, indent=2))
    print("codes:", [r["code"] for r in rows])


if __name__ == "__main__":
    main()
