from __future__ import annotations

from pathlib import Path

import pytest

from memserve.config import Settings, describe_settings, load_settings
from memserve.errors import ConfigError


def test_defaults_are_offline_and_local():
    s = load_settings(env={})
    assert s.host == "127.0.0.1" and s.port == 50051
    assert s.embedding_model == "bundled:all-MiniLM-L6-v2" and s.llm_model == ""
    assert s.max_text_bytes == 64 * 1024 and s.token_budget == 3500


def test_precedence_file_then_env_then_overrides(tmp_path: Path):
    cfg = tmp_path / "m.toml"
    cfg.write_text('[memserve]\nport = 7000\nhost = "0.0.0.0"\nfact_top_k = 7\n')
    s = load_settings(config_file=cfg, env={"MEMSERVE_PORT": "7001"}, overrides={"fact_top_k": 9, "host": None})
    assert (s.port, s.host, s.fact_top_k) == (7001, "0.0.0.0", 9)


@pytest.mark.parametrize("env, field", [
    ({"MEMSERVE_PORT": "abc"}, "port"),
    ({"MEMSERVE_PORT": "70000"}, "port"),
    ({"MEMSERVE_INDEX_KIND": "annoy"}, "index_kind"),
    ({"MEMSERVE_PPR_DAMPING": "1.5"}, "ppr_damping"),
    ({"MEMSERVE_MAX_TEXT_BYTES": "0"}, "max_text_bytes"),
    ({"MEMSERVE_EXTRACTOR": "llm"}, "extractor"),
    ({"MEMSERVE_NO_SUCH_THING": "1"}, "no_such_thing"),
    ({"MEMSERVE_EMBEDDING_BATCH_CHARS": "-1"}, "embedding_batch_chars"),
    ({"MEMSERVE_EMBEDDING_BATCH_CHARS": "lots"}, "embedding_batch_chars"),
    ({"MEMSERVE_EMBEDDING_BATCH_SIZE": "0"}, "embedding_batch_size"),
    ({"MEMSERVE_GRAPH_VECTORS": "bogus"}, "graph_vectors"),
    ({"MEMSERVE_GRAPH_VECTORS": ""}, "graph_vectors"),
    ({"MEMSERVE_GRAPH_TOKEN_STASH_MB": "-1"}, "graph_token_stash_mb"),
    ({"MEMSERVE_GRAPH_TOKEN_STASH_MB": "1.5"}, "graph_token_stash_mb"),
    ({"MEMSERVE_DENSE_POOL": "0"}, "dense_pool"),
    ({"MEMSERVE_DENSE_POOL": "-5"}, "dense_pool"),
    ({"MEMSERVE_DENSE_POOL": "many"}, "dense_pool"),
    ({"MEMSERVE_DENSE_POOL": "2.5"}, "dense_pool"),
    ({"MEMSERVE_DENSE_POOL_HNSW": "0"}, "dense_pool_hnsw"),
])
def test_bad_settings_name_the_setting(env, field):
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    assert err.value.field == field and field in str(err.value)


def test_unknown_key_in_file(tmp_path: Path):
    cfg = tmp_path / "m.toml"
    cfg.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(config_file=cfg, env={})


def test_every_setting_is_documented():
    table = describe_settings()
    for name in Settings.__dataclass_fields__:
        assert f"`{name}`" in table and f"MEMSERVE_{name.upper()}" in table


def test_settings_doc_is_current():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "SETTINGS.md").read_text()
    assert describe_settings() in doc, "regenerate docs/SETTINGS.md with `memserve settings`"


def test_tls_settings_are_checked_together(tmp_path):
    from memserve.config import check_exposure

    pem = tmp_path / "x.pem"
    pem.write_text("-")
    with pytest.raises(ConfigError, match="together") as err:
        load_settings(env={}, overrides={"tls_cert_file": str(pem)})
    assert err.value.field == "tls_key_file"
    with pytest.raises(ConfigError, match="mTLS needs"):
        load_settings(env={}, overrides={"tls_client_ca_file": str(pem)})
    with pytest.raises(ConfigError, match="no such file") as err:
        load_settings(env={}, overrides={"api_keys_file": str(tmp_path / "missing.toml")})
    assert err.value.field == "api_keys_file"
    remote = load_settings(env={}, overrides={"host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="allow_insecure_remote"):
        check_exposure(remote)
    for ok in ({"api_key": "k"}, {"allow_insecure_remote": True}):
        check_exposure(remote.replace(**ok))
