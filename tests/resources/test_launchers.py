"""The engine launchers (resources/launchers/): one per engine kind in the registry, the `transformers serve`
command line and environment, the external endpoint and the readiness checks, through the thin EngineResource.
vLLM's command line has its own golden tests (tests/resources/launchers/test_vllm.py); the servers' lives,
tests/resources/test_engines.py."""

from pathlib import Path

import pytest

from assets.matrix import ENGINE_SETTINGS, EngineSpec
from resources.engines import EngineResource
from resources.launchers import LAUNCHERS, DeployRequest, EngineError, transformers
from resources.launchers.readiness import confirm_served_model

pytestmark = pytest.mark.unit


def test_every_engine_kind_has_a_launcher():
    assert set(LAUNCHERS) == set(ENGINE_SETTINGS)


SERVE = ["transformers", "serve", "/m", "--host", "127.0.0.1", "--port", "8000"]

BATCHING = ["--continuous-batching", "--cb-num-blocks", "512", "--cb-block-size", "32", "--cb-max-batch-tokens", "2048"]


@pytest.mark.parametrize(("options", "trust_remote_code", "expected"), [
    ({}, False, [*SERVE, "--device", "cpu", "--dtype", "auto", *BATCHING]),
    ({"device": "cuda", "dtype": "bfloat16", "seed": 7}, False,
     [*SERVE, "--device", "cuda", "--dtype", "bfloat16", *BATCHING, "--default-seed", "7"]),
    ({"seed": 0}, True, [*SERVE, "--device", "cpu", "--dtype", "auto", *BATCHING, "--default-seed", "0",
                         "--trust-remote-code"]),
    ({"continuous_batching": False, "cb_num_blocks": 64}, False, [*SERVE, "--device", "cpu", "--dtype", "auto"]),
    ({"cb_num_blocks": 64, "cb_block_size": 16, "cb_max_batch_tokens": 256}, False,
     [*SERVE, "--device", "cpu", "--dtype", "auto", "--continuous-batching", "--cb-num-blocks", "64",
      "--cb-block-size", "16", "--cb-max-batch-tokens", "256"]),
])
def test_transformers_serve_command_line(options, trust_remote_code, expected):
    settings = EngineSpec("transformers", options).settings
    assert transformers.argv("transformers", "/m", settings, "127.0.0.1", 8000, trust_remote_code) == expected


def test_transformers_runs_offline_on_the_machines_threads_with_the_variants_env_last(tmp_path):
    engine = EngineResource(log_dir=str(tmp_path), transformers_command="/t/transformers", cpu_threads=3)
    settings = EngineSpec("transformers", {"env": {"OMP_NUM_THREADS": 5, "X": "y"}}).settings
    request = DeployRequest(model_path="/m", served_name="ignored", log_path=tmp_path / "t.log",
                            trust_remote_code=True)
    launch = transformers.launch(engine, settings, request, 8123)
    assert launch.argv[:2] == ["/t/transformers", "serve"] and launch.argv[-1] == "--trust-remote-code"
    assert launch.env == {"OMP_NUM_THREADS": "5", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
                          "X": "y"}
    assert launch.served_model == "/m" and launch.ready_paths == ("/health",) and launch.model_list_path is None
    default = transformers.launch(EngineResource(log_dir=str(tmp_path), cpu_threads=3),
                                  EngineSpec("transformers", {}).settings, request, 8123)
    assert default.env["OMP_NUM_THREADS"] == "3"


def _external(tmp_path: Path, options: dict):
    """What the engine resource hands back for an external engine with these settings."""
    spec = EngineSpec("external", {"model": "deepseek-reasoner", **options})
    with EngineResource(log_dir=str(tmp_path)).deploy(spec, "", "variant-name", "external") as deployment:
        return deployment


def test_an_external_endpoint_is_handed_back_as_the_settings_give_it(tmp_path, monkeypatch):
    deployment = _external(tmp_path, {"base_url": "https://api.example/v1/"})
    assert (deployment.engine, deployment.base_url, deployment.served_model, deployment.api_key, deployment.pid) == \
        ("external", "https://api.example/v1", "deepseek-reasoner", "not-needed", None)
    monkeypatch.setenv("YARDSTICK_TEST_URL", "https://cluster.example/v1")
    monkeypatch.setenv("YARDSTICK_TEST_KEY", "sk-test")
    from_env = _external(tmp_path, {"base_url_env": "YARDSTICK_TEST_URL", "api_key_env": "YARDSTICK_TEST_KEY"})
    assert (from_env.base_url, from_env.api_key) == ("https://cluster.example/v1", "sk-test")


@pytest.mark.parametrize(("options", "refusal"), [
    ({}, "engine kind 'external' needs its endpoint's base URL; set 'base_url' in the variant's engine settings"),
    ({"base_url_env": "YARDSTICK_TEST_UNSET_URL"},
     "needs its endpoint's base URL; set environment variable YARDSTICK_TEST_UNSET_URL"),
    ({"base_url": "https://api.example/v1", "api_key_env": "YARDSTICK_TEST_UNSET_KEY"},
     "environment variable YARDSTICK_TEST_UNSET_KEY (the API key for https://api.example/v1) is not set"),
    ({"base_url": "https://user:secret@api.example/v1", "api_key_env": "YARDSTICK_TEST_UNSET_KEY"},
     "carries credentials in its URL and the engine settings name a key too"),
])
def test_an_external_endpoint_without_what_it_needs_is_refused(tmp_path, monkeypatch, options, refusal):
    monkeypatch.delenv("YARDSTICK_TEST_UNSET_URL", raising=False)
    monkeypatch.delenv("YARDSTICK_TEST_UNSET_KEY", raising=False)
    with pytest.raises(EngineError) as raised:
        _external(tmp_path, options)
    assert refusal in str(raised.value) and "secret" not in str(raised.value)


def test_a_missing_model_is_refused_before_anything_starts(tmp_path):
    engine = EngineResource(log_dir=str(tmp_path / "logs"), transformers_command="/no/such/command")
    with pytest.raises(EngineError, match=f"model path {tmp_path}/absent does not exist"), \
            engine.deploy(EngineSpec("transformers", {}), str(tmp_path / "absent"), "m", "absent"):
        pass
    assert not (tmp_path / "logs").exists()


URL = "http://127.0.0.1:8000/v1/models"


@pytest.mark.parametrize(("listing", "refusal"), [
    ({"object": "list", "data": [{"id": "my-variant", "object": "model"}]}, None),
    ({"object": "list", "data": [{"id": "base"}, {"id": "my-variant"}]}, None),   # a LoRA server lists several
    ({"object": "list", "data": [{"id": "someone-else"}]},
     f"the server at {URL} serves ['someone-else'], not 'my-variant'"),
    ({"object": "list", "data": []}, f"the server at {URL} serves [], not 'my-variant'"),
    ({"detail": "Not Found"}, f"the server at {URL} did not answer with a model list"),
    (["my-variant"], f"the server at {URL} did not answer with a model list"),
])
def test_a_server_must_list_the_model_it_was_started_for(listing, refusal):
    if refusal is None:
        confirm_served_model(listing, "my-variant", URL)
    else:
        with pytest.raises(EngineError) as raised:
            confirm_served_model(listing, "my-variant", URL)
        assert str(raised.value).startswith(refusal)


def test_external_engine_needs_its_key(monkeypatch, tmp_path):
    monkeypatch.delenv("YARDSTICK_TEST_KEY", raising=False)
    spec = EngineSpec(kind="external", options={"base_url": "http://127.0.0.1:9/v1", "model": "m",
                                                "api_key_env": "YARDSTICK_TEST_KEY"})
    with pytest.raises(EngineError, match="YARDSTICK_TEST_KEY"):
        with EngineResource(log_dir=str(tmp_path)).deploy(spec, "", "x", "x"):
            pass


def test_an_endpoint_with_credentials_in_its_url_and_a_key_is_refused_naming_both(monkeypatch, tmp_path):
    """The OpenAI client sends the URL's credentials and drops the key: one of them would silently not reach the
    endpoint, so the combination is refused before any request, with the password hidden."""
    monkeypatch.setenv("YARDSTICK_TEST_URL", "https://user:hunter2@api.example/v1")
    monkeypatch.setenv("YARDSTICK_TEST_KEY", "sk-test")
    spec = EngineSpec(kind="external", options={"base_url_env": "YARDSTICK_TEST_URL", "model": "m",
                                                "api_key_env": "YARDSTICK_TEST_KEY"})
    with pytest.raises(EngineError, match="carries credentials in its URL and the engine settings name a key too") as \
            refused, EngineResource(log_dir=str(tmp_path)).deploy(spec, "", "x", "x"):
        pass
    assert "hunter2" not in str(refused.value) and "api_key_env: YARDSTICK_TEST_KEY" in str(refused.value)
