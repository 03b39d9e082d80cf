"""The runtime images' facts (docker/runtime.env: UID, ports, connector name, CPython) are written
once: Dockerfile.runtime takes them as build args with no defaults, the CLI passes every one,
compose.yaml's defaults and the service's and simulator's own defaults equal them, and a
healthcheck is defined once, in the image."""
from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from cli import bases, images, versions
from tests.support import ROOT

FACTS = versions.runtime_facts()
DOCKERFILE = ROOT / "Dockerfile.runtime"
COMPOSE = ROOT / "compose.yaml"
CONNECTOR = ROOT / "connector"
# ${NAME}, ${NAME:-default} or ${NAME-default}, as compose and the Dockerfile write them.
VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")
VALUES = {FACTS[k] for k in FACTS if k != "SERVICE_PYTHON"}   # what no file may write literally


def instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    found, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        found.append((keyword.upper(), rest.strip()))
        pending = ""
    return found


def stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions, its FROM first; the global ARGs under ''."""
    found: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            current = rest.split()[-1]
            found[current] = []
        found[current].append((keyword, rest))
    return found


def joined(stage: list[tuple[str, str]], keyword: str) -> str:
    """The arguments of every `keyword` instruction of a stage, as one string."""
    return " ".join(rest for each, rest in stage if each == keyword)


def compose_strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in compose_strings(key) + compose_strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in compose_strings(item)]
    return [] if node is None or isinstance(node, bool) else [str(node)]   # 8090 is a number to YAML


@pytest.fixture(scope="module")
def dockerfile() -> dict[str, list[tuple[str, str]]]:
    return stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_facts_are_the_ones_the_images_need_and_well_formed():
    assert set(FACTS) == {"HFTLIVE_UID", "HFTLIVE_SERVICE_PORT", "HFTLIVE_SIMULATOR_PORT",
                          "HFTLIVE_SIMULATOR_CONTROL_PORT", "CONNECTOR_NAME", "CONNECTOR_CONTROL_PORT",
                          "SERVICE_PYTHON"}
    assert 1000 <= int(FACTS["HFTLIVE_UID"]) < 65536
    ports = [int(FACTS[k]) for k in ("HFTLIVE_SERVICE_PORT", "HFTLIVE_SIMULATOR_PORT", "HFTLIVE_SIMULATOR_CONTROL_PORT",
                                     "CONNECTOR_CONTROL_PORT")]
    assert all(1024 <= p < 65536 for p in ports) and len(set(ports)) == 4
    assert re.fullmatch(r"[a-z][a-z0-9_]*", FACTS["CONNECTOR_NAME"])
    assert re.fullmatch(r"3\.\d+", FACTS["SERVICE_PYTHON"])
    # Apart from the pins: editing either file must not be read as editing the other.
    assert not set(FACTS) & set(versions.load())


def test_the_dockerfile_declares_every_fact_without_a_default_where_it_uses_it(dockerfile):
    declared = set()
    for name, stage in dockerfile.items():
        args = set()
        for key, _, default in (rest.partition("=") for keyword, rest in stage if keyword == "ARG"):
            assert key not in FACTS or not default, f"ARG {key}={default} in stage {name or '(global)'}: docker/runtime.env is its one place"
            args.add(key)
        declared |= args
        # A ${FACT} outside RUN expands to nothing unless the stage itself declares the ARG.
        for keyword, rest in stage:
            used = {m.group(1) for m in VARIABLE.finditer(rest)} & set(FACTS)
            if keyword not in ("RUN", "ARG"):
                assert used <= args, f"stage {name} uses {sorted(used - args)} in {keyword} without ARG"
    assert set(FACTS) <= declared, sorted(set(FACTS) - declared)
    # The stage every image starts from refuses a build without them (and checks the CPython).
    assert all(key in joined(dockerfile["service-user"], "RUN") for key in FACTS)


def test_the_dockerfile_holds_no_copy_of_a_fact(dockerfile):
    for name, stage in dockerfile.items():
        for keyword, rest in stage:
            words = set(re.findall(r"[\w.]+", VARIABLE.sub(" ", rest)))
            assert not VALUES & words, f"stage {name}: {keyword} {rest[:80]} repeats {VALUES & words}"


def test_the_cli_passes_every_fact_and_picks_the_base_of_that_cpython(dockerfile):
    assert images.BASE in bases.BASES
    public = bases.BASES[images.BASE].public
    assert public.startswith(f"python:{FACTS['SERVICE_PYTHON']}-")
    # The Dockerfile's default base (for a plain `docker build`) is the one the CLI tries first.
    [default] = [rest.partition("=")[2] for keyword, rest in dockerfile[""] if rest.startswith("SERVICE_BASE=")]
    assert default == public
    assert images.SERVICE_TAG == "cp" + FACTS["SERVICE_PYTHON"].replace(".", "")
    manifest = {"hftbacktest_version": "2.4.4", "features": ["live"], "patches": []}
    args = images.build_args(manifest, {images.BASE: public})
    assert {k: args[k] for k in FACTS} == FACTS
    every_arg = {rest.partition("=")[0] for stage in dockerfile.values() for keyword, rest in stage if keyword == "ARG"}
    assert set(args) <= every_arg, sorted(set(args) - every_arg)


def test_the_connector_labels_come_from_cargo_and_agree_with_the_binary_s_own_words(dockerfile):
    crate = images.connector_versions()
    manifest = tomllib.loads((CONNECTOR / "Cargo.toml").read_text())
    assert crate["CONNECTOR_VERSION"] == manifest["package"]["version"]
    # Cargo.toml pins hftbacktest exactly, and Cargo.lock resolved that version.
    assert manifest["dependencies"]["hftbacktest"] in (f"={crate['HFTBACKTEST_CRATE']}",
                                                       {"version": f"={crate['HFTBACKTEST_CRATE']}"})
    # `connector --version` (which the wheelhouse's manifest records) names the same crate.
    main = (CONNECTOR / "src" / "main.rs").read_text()
    assert re.findall(r"hftbacktest (\d+\.\d+\.\d+)\)", main) == [crate["HFTBACKTEST_CRATE"]]
    labels = joined(dockerfile["connector"], "LABEL")
    assert 'io.hftlive.hftbacktest.crate="${HFTBACKTEST_CRATE}"' in labels
    assert 'io.hftlive.connector.version="${CONNECTOR_VERSION}"' in labels


def test_compose_defaults_are_the_facts_and_compose_writes_no_fact_literally(compose):
    strings = compose_strings(compose)
    defaults: dict[str, set[str]] = {}
    for text in strings:
        for match in VARIABLE.finditer(text):
            defaults.setdefault(match.group(1), set()).add(match.group(2))
    for key in ("HFTLIVE_UID", "HFTLIVE_SERVICE_PORT", "HFTLIVE_SIMULATOR_CONTROL_PORT", "CONNECTOR_NAME"):
        assert defaults.get(key) == {FACTS[key]}, (key, defaults.get(key))
    # compose needs none of these; the connector's control port in particular is never published.
    assert not {"HFTLIVE_SIMULATOR_PORT", "SERVICE_PYTHON", "CONNECTOR_CONTROL_PORT"} & set(defaults)
    for text in strings:
        literal = set(re.findall(r"[\w.]+", VARIABLE.sub(" ", text)))
        assert not VALUES & literal, f"compose.yaml writes {VALUES & literal} in {text!r}; use the variable"
    # The iceoryx2 volumes belong to the images' user; the container-side ports are the images'.
    for name in ("iceoryx2", "iceoryx2-shm"):   # tmpfs; the recordings volume takes its folder's owner
        options = compose["volumes"][name]["driver_opts"]["o"]
        assert "uid=${HFTLIVE_UID:-" in options and "gid=${HFTLIVE_UID:-" in options
    services = compose["services"]
    for name in ("service", "service-mock"):
        assert services[name]["ports"] == ["127.0.0.1:${HFTLIVE_PORT:-8000}:${HFTLIVE_SERVICE_PORT:-"
                                           + FACTS["HFTLIVE_SERVICE_PORT"] + "}"], name
    assert services["simulator"]["ports"][0].endswith(
        ":${HFTLIVE_SIMULATOR_CONTROL_PORT:-" + FACTS["HFTLIVE_SIMULATOR_CONTROL_PORT"] + "}")


def test_healthchecks_are_the_images_own_and_compose_repeats_none(dockerfile, compose):
    # compose.yaml overrides no healthcheck (none needs another): one definition, in the image.
    for name, service in compose["services"].items():
        assert "healthcheck" not in service, f"compose.yaml repeats {name}'s healthcheck; Dockerfile.runtime has it"
    assert "healthcheck" not in COMPOSE.read_text()

    def healthcheck(stage: str) -> str | None:
        while stage in dockerfile:
            found = [rest for keyword, rest in dockerfile[stage] if keyword == "HEALTHCHECK"]
            if found:
                return found[-1]
            stage = dockerfile[stage][0][1].split()[0]   # FROM's image: the parent stage
        return None

    # All but the bot: a strategy is the user's code, so running is all its image can tell.
    for target in set(images.TARGETS) - {"bot"}:
        assert healthcheck(target) and "CMD [" in healthcheck(target), target
    assert healthcheck("bot") is None
    # What compose waits for is a healthy image.
    for name, service in compose["services"].items():
        for other, condition in service.get("depends_on", {}).items():
            if condition["condition"] == "service_healthy":
                assert healthcheck(compose["services"][other]["image"].split("/")[1].split(":")[0]), (name, other)
    # The simulator's probes the port its image sets (SIM_PORT), not a number of its own.
    assert "os.environ['SIM_PORT']" in healthcheck("simulator")
    assert "service.healthcheck" in healthcheck("service") == healthcheck("service-mock")


def test_the_processes_own_defaults_are_the_facts():
    from service.config import DEFAULT_CONNECTOR_CONTROL_URL, Settings
    from simulator.config import SimSettings

    assert Settings.model_fields["port"].default == int(FACTS["HFTLIVE_SERVICE_PORT"])
    assert Settings.model_fields["connector_name"].default == FACTS["CONNECTOR_NAME"]
    assert SimSettings.model_fields["port"].default == int(FACTS["HFTLIVE_SIMULATOR_PORT"])
    assert SimSettings.model_fields["control_port"].default == int(FACTS["HFTLIVE_SIMULATOR_CONTROL_PORT"])
    # The connector's entrypoint: its fallback name, and the simulator it dials on compose's network.
    entrypoint = (ROOT / "docker" / "runtime" / "connector-entrypoint").read_text()
    assert set(re.findall(r"\$\{CONNECTOR_NAME:-([^}]*)\}", entrypoint)) == {FACTS["CONNECTOR_NAME"]}
    assert set(re.findall(r"//simulator:(\d+)", entrypoint)) == {FACTS["HFTLIVE_SIMULATOR_PORT"]}
    # The connector's control API: the image sets the port its entrypoint listens on, the service dials it.
    assert 'control_listen = \\"0.0.0.0:$control\\"' in entrypoint and "${CONNECTOR_CONTROL_PORT:-}" in entrypoint
    assert DEFAULT_CONNECTOR_CONTROL_URL == f"http://connector:{FACTS['CONNECTOR_CONTROL_PORT']}"
    example = (ROOT / ".env.example").read_text()
    assert re.search(rf"^CONNECTOR_NAME={FACTS['CONNECTOR_NAME']}$", example, re.M)
    # The bot requires the tick and lot size; compose's defaults for it are the service's and the simulator's.
    bot = yaml.safe_load(COMPOSE.read_text())["services"]["bot"]["environment"]
    assert bot["TICK_SIZE"] == "${TICK_SIZE:-%g}" % Settings.model_fields["tick_size"].default[0]
    assert bot["LOT_SIZE"] == "${LOT_SIZE:-%g}" % Settings.model_fields["lot_size"].default[0]
    assert (SimSettings.model_fields["tick_size"].default, SimSettings.model_fields["lot_size"].default) == (
        Settings.model_fields["tick_size"].default, Settings.model_fields["lot_size"].default)


def test_the_connector_and_the_bot_images_set_the_facts_they_run_with(dockerfile):
    assert "CONNECTOR_CONTROL_PORT=${CONNECTOR_CONTROL_PORT}" in joined(dockerfile["connector"], "ENV")
    assert joined(dockerfile["connector"], "EXPOSE") == "${CONNECTOR_CONTROL_PORT}"
    bot = joined(dockerfile["bot"], "ENV")
    assert "CONNECTOR_NAME=${CONNECTOR_NAME}" in bot and "HFTBACKTEST_CHANNEL_CONFIG=" in bot
    assert joined(dockerfile["bot"], "USER") == "${HFTLIVE_UID}:${HFTLIVE_UID}"


def test_a_build_without_the_cli_stops_at_the_first_step_with_what_to_do(dockerfile):
    guard = joined(dockerfile["service-user"], "RUN")
    assert "build with ./hftlive images" in guard
    assert 'os.environ["SERVICE_PYTHON"]' in guard


def test_env_example_lists_every_setting_compose_reads_and_no_fact():
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    listed = set(re.findall(r"^(\w+)=", (ROOT / ".env.example").read_text(), re.M))
    assert used - set(FACTS) == listed - {"CONNECTOR_NAME"}, (sorted(used - set(FACTS) - listed),
                                                              sorted(listed - used))


def test_the_connector_and_the_service_time_their_hops_in_the_same_buckets():
    """hftlive_connector_hop_seconds and hftlive_hop_seconds are read side by side (bench/live.py, a dashboard):
    connector/src/metrics.rs's BOUNDS_NS are service/metrics.py's HOP_BUCKETS, in nanoseconds."""
    from service.metrics import HOP_BUCKETS
    source = (CONNECTOR / "src" / "metrics.rs").read_text()
    block = re.search(r"pub const BOUNDS_NS: \[u64; (\d+)\] = \[(.*?)\];", source, re.S)
    assert block, "BOUNDS_NS not found in connector/src/metrics.rs"
    bounds = [int(n.replace("_", "")) for n in re.findall(r"[\d_]+", block.group(2))]
    assert len(bounds) == int(block.group(1))
    assert bounds == [round(b * 1e9) for b in HOP_BUCKETS]
