"""deploy/Dockerfile and deploy/kuberay/raycluster.yaml read together: the Ray containers of the RayCluster get the
readiness and liveness probes KubeRay's operator gives a container that sets none, and the image must provide what
those probes call, or no Ray pod becomes Ready and each is restarted forever.

The probes are reconstructed from KubeRay v1.7.0 (ray-operator/controllers/ray/common/pod.go,
initLivenessAndReadinessProbe, with the ports and commands of ray-operator/controllers/ray/utils/constant.go): for a
`spec.rayVersion` from 2.53.0 on, an HTTP GET of the dashboard agent's /api/healthz; otherwise `bash -c` running
`wget ... | grep success` against the agent's /api/local_raylet_healthz on every pod and, on the head, also the
dashboard's /api/gcs_healthz. The agent and the dashboard run only where Ray has its `default` extra. bash is the
shell of vLLM's own image build, so it is taken as there; everything else is read from the Dockerfile.
"""

import re

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
RAYCLUSTER = yaml.safe_load((ROOT / "deploy" / "kuberay" / "raycluster.yaml").read_text())
DASHBOARD_PORT, AGENT_PORT = 8265, 52365               # KubeRay's DefaultDashboardPort, DefaultDashboardAgentListenPort
UNIFIED_HEALTH_CHECK = (2, 53, 0)                     # supportsUnifiedHealthCheck
# The dashboard's own gate: Ray starts its dashboard and agent only where this imports (aiohttp_cors, opencensus, ...).
DASHBOARD_DEPENDENCIES = "import ray.dashboard.optional_deps"


def probe_needs(head: bool, container: dict, ray_start_params: dict, ray_version: str | None) -> set[str]:
    """What the probes KubeRay injects into `container` need in the image: tools and Ray's processes."""
    if container.get("livenessProbe") and container.get("readinessProbe"):
        return set()
    version = tuple(int(part) for part in re.findall(r"\d+", ray_version or "")[:3])
    agent = {f"ray agent on :{ray_start_params.get('dashboard-agent-listen-port', AGENT_PORT)}"}
    if len(version) == 3 and version >= UNIFIED_HEALTH_CHECK:
        return agent
    dashboard = {f"ray dashboard on :{ray_start_params.get('dashboard-port', DASHBOARD_PORT)}"} if head else set()
    return {"bash", "wget"} | agent | dashboard


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (keyword, arguments), continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in dockerfile.splitlines()
                                           if not line.lstrip().startswith("#")))
    split = [line.strip().partition(" ") for line in joined.splitlines() if line.strip()]
    return [(keyword.upper(), arguments) for keyword, _, arguments in split]


def image_provides(dockerfile: str, ray_start_params: dict) -> set[str]:
    """What the image gives the probes: packages its apt-get installs, and Ray's dashboard and agent when Ray's
    `default` extra is installed at the image's own Ray version into the image's Python (before yardstick's venv
    comes first on PATH) and its dependencies checked."""
    provided = {"bash"}
    venv_first = False
    for keyword, arguments in instructions(dockerfile):
        if keyword == "ENV" and "VIRTUAL_ENV/bin" in arguments and "PATH" in arguments:
            venv_first = True
        if keyword != "RUN":
            continue
        for install in re.findall(r"apt-get install ([^&|;]*)", arguments):
            provided |= {word for word in install.split() if not word.startswith("-")}
        pinned = re.search(r'(\w+)="\$\(python3 -c .import ray; print\(ray.__version__\).\)"', arguments)
        if (pinned and not venv_first and f'"ray[default]==${{{pinned.group(1)}}}"' in arguments
                and DASHBOARD_DEPENDENCIES in arguments):
            provided |= {f"ray agent on :{ray_start_params.get('dashboard-agent-listen-port', AGENT_PORT)}"}
            if str(ray_start_params.get("include-dashboard", "true")).lower() != "false":
                provided |= {f"ray dashboard on :{ray_start_params.get('dashboard-port', DASHBOARD_PORT)}"}
    return provided


def ray_containers() -> list[tuple[str, bool, dict, dict]]:
    spec = RAYCLUSTER["spec"]
    groups = [("head", True, spec["headGroupSpec"])]
    groups += [(group["groupName"], False, group) for group in spec["workerGroupSpecs"]]
    return [(name, head, group["template"]["spec"]["containers"][0], group.get("rayStartParams") or {})
            for name, head, group in groups]


@pytest.mark.parametrize(("group", "head", "container", "ray_start_params"), ray_containers(),
                         ids=[name for name, *_ in ray_containers()])
def test_the_image_provides_what_kuberays_probes_need(group, head, container, ray_start_params):
    needs = probe_needs(head, container, ray_start_params, RAYCLUSTER["spec"].get("rayVersion"))
    assert needs, f"{group}: expected KubeRay to probe this container"
    missing = needs - image_provides(DOCKERFILE.read_text(), ray_start_params)
    assert not missing, f"{group}: the image lacks {sorted(missing)} for KubeRay's probes"


def test_every_ray_pod_runs_the_image_that_was_checked():
    images = {container["image"] for _, _, container, _ in ray_containers()}
    assert images == {"REGISTRY/yardstick:TAG"}


@pytest.mark.parametrize(("drop", "lacking"), [
    ("ray[default]", {"ray agent on :52365", "ray dashboard on :8265"}),   # vLLM's image as it comes
    (" wget", {"wget"}),
])
def test_an_image_without_the_probes_needs_is_caught(drop, lacking):
    dockerfile = DOCKERFILE.read_text()
    broken = "\n".join(line for line in dockerfile.splitlines() if drop not in line) if drop.startswith("ray") \
        else dockerfile.replace(drop, "")
    _, head, container, params = ray_containers()[0]
    assert lacking <= probe_needs(head, container, params, None) - image_provides(broken, params)
