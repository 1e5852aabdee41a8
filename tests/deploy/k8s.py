"""Offline Helm and Tilt for the deploy checks: render the chart, run the Tiltfile.

`render` goes through helm-python-sdk (Helm's own Go engine, no helm binary); its public
`Chart.render` has no way to say which Kubernetes version and API groups the "cluster"
serves, so the call passes Helm's render options (`kube_version`, `api_versions`, the
same as `helm template --kube-version --api-versions`) to the library directly.

`run_tiltfile` executes the Tiltfile under starlark-pyo3 with stand-ins for Tilt's
builtins that record every call; `helm()` renders through `render`, so the resources the
Tiltfile declares can be checked against the objects the chart really produces.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from chassis.testing.overrides import deep_merge

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "chassis"
TILTFILE = ROOT / "Tiltfile"
RELEASE = "chassis"
NAMESPACE = "chassis"
#: The values sets: the chart's defaults alone, then each file beside values.yaml.
VALUES_SETS = ("default", "dev", "staging", "prod")
#: The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a recent one.
KUBE_VERSIONS = ("1.29.0", "1.33.0")
MONITORING_APIS = (
    "monitoring.coreos.com/v1",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
)
SERVICES = ("users", "orders", "gateway", "worker")
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"})


def values_of(values_set: str) -> dict[str, Any]:
    """The values a values set passes with -f (none for the defaults)."""
    if values_set == "default":
        return {}
    loaded: dict[str, Any] = yaml.safe_load((CHART / f"values-{values_set}.yaml").read_text())
    return loaded


#: libyaml's parser when PyYAML has it: the rendered charts are parsed many times over.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def parse_stream(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc]


@dataclass(frozen=True)
class Rendered:
    """One rendering of the chart: the files by template path, and their objects parsed."""

    files: Mapping[str, str]
    parsed: tuple[dict[str, Any], ...]

    @property
    def notes(self) -> str:
        return next((text for path, text in self.files.items() if path.endswith("NOTES.txt")), "")

    @property
    def objects(self) -> list[dict[str, Any]]:
        # A deep copy per call: tests may not change what other tests read from the cache.
        return copy.deepcopy(list(self.parsed))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        matches = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
        return matches[0]

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for obj in self.objects:
            counts[obj["kind"]] = counts.get(obj["kind"], 0) + 1
        return dict(sorted(counts.items()))


def render(
    values: Mapping[str, Any] | None = None,
    *,
    api_versions: tuple[str, ...] = (),
    kube_version: str = KUBE_VERSIONS[0],
    name: str = RELEASE,
    namespace: str = NAMESPACE,
) -> Rendered:
    """`helm template` of the chart with these values, for a cluster of this version and APIs."""
    return _render(json.dumps(values or {}), api_versions, kube_version, name, namespace)


@cache
def _render(
    values_json: str, api_versions: tuple[str, ...], kube_version: str, name: str, namespace: str
) -> Rendered:
    import helm_python
    from helm_python import _native

    options = {
        "name": name,
        "namespace": namespace,
        "is_install": True,
        "kube_version": f"v{kube_version}",
        "api_versions": list(api_versions),
    }
    with helm_python.Chart.load(CHART) as chart:
        rendered: dict[str, str] = json.loads(
            _native.call_string("helm_render", chart._raw(), values_json, json.dumps(options))
        )
    objects: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if not path.endswith(".txt"):
            objects.extend(parse_stream(text))
    return Rendered(rendered, tuple(objects))


def render_set(values_set: str, *, monitoring: bool = False) -> Rendered:
    return render(values_of(values_set), api_versions=MONITORING_APIS if monitoring else ())


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The pod spec inside a workload object."""
    kind = obj["kind"]
    if kind == "Pod":
        spec: dict[str, Any] = obj["spec"]
    elif kind == "CronJob":
        spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    else:
        spec = obj["spec"]["template"]["spec"]
    return spec


def containers(obj: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(obj)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def workloads(rendered: Rendered) -> list[dict[str, Any]]:
    return [obj for obj in rendered.objects if obj["kind"] in WORKLOAD_KINDS]


def name(component: str) -> str:
    return f"{RELEASE}-{component}"


def deployment(rendered: Rendered, service: str) -> dict[str, Any]:
    return rendered.get("Deployment", name(service))


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


# --- the Tiltfile under Starlark ---------------------------------------------------------


class Blob:
    """Tilt's Blob: YAML (or other text) held in memory, not a path."""

    def __init__(self, text: str) -> None:
        self.text = text


@dataclass
class TiltRun:
    """What the Tiltfile declared, call by call."""

    context: str
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    #: Every object passed to k8s_yaml, parsed.
    objects: list[dict[str, Any]] = field(default_factory=list)
    #: Every path the Tiltfile read or pointed Tilt at, relative to the repository.
    paths: list[str] = field(default_factory=list)
    helm_calls: list[dict[str, Any]] = field(default_factory=list)
    loads: list[str] = field(default_factory=list)

    def named(self, builtin: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(args, kwargs) for name, args, kwargs in self.calls if name == builtin]

    @property
    def allowed_contexts(self) -> list[str]:
        allowed: list[str] = []
        for args, _ in self.named("allow_k8s_contexts"):
            value = args[0]
            allowed.extend(value if isinstance(value, list) else [value])
        return allowed


def _text(value: Any) -> str:
    if isinstance(value, Blob):
        return value.text
    if isinstance(value, str):
        return value
    raise TypeError(f"expected YAML text, got {type(value).__name__}")


def run_tiltfile(context: str = "kind-chassis") -> TiltRun:
    """Execute the Tiltfile against recorded stand-ins for Tilt's builtins."""
    import starlark as sl

    run = TiltRun(context=context)

    def rel(path: str) -> str:
        resolved = (ROOT / path).resolve()
        run.paths.append(str(resolved.relative_to(ROOT)))
        return str(resolved)

    def record(name: str, result: Callable[..., Any] | None = None) -> Callable[..., Any]:
        def builtin(*args: Any, **kwargs: Any) -> Any:
            run.calls.append((name, args, kwargs))
            return result(*args, **kwargs) if result is not None else None

        return builtin

    def step(kind: str) -> Callable[..., Any]:
        # Live-update steps are data Tilt reads back; a dict keeps them inspectable.
        return lambda *args, **kwargs: {"step": kind, "args": list(args), **kwargs}

    def k8s_yaml(value: Any, **_: Any) -> None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            # Tilt reads a plain string as a file path, a Blob as YAML.
            text = Path(rel(item)).read_text() if isinstance(item, str) else _text(item)
            run.objects.extend(parse_stream(text))

    def helm(chart: str, **kwargs: Any) -> Any:
        run.helm_calls.append({"chart": chart, **kwargs})
        assert Path(rel(chart)) == CHART, f"helm() of an unknown chart {chart}"
        values: dict[str, Any] = {}
        for path in kwargs.get("values", []):
            values = deep_merge(values, yaml.safe_load(Path(rel(path)).read_text()) or {})
        assert not kwargs.get("set"), "--set is not supported by this stand-in"
        rendered = render(
            values, name=kwargs.get("name", RELEASE), namespace=kwargs.get("namespace", "default")
        )
        # `helm template` output: every manifest, NOTES.txt excluded.
        text = "\n---\n".join(
            body for path, body in sorted(rendered.files.items()) if not path.endswith(".txt")
        )
        return sl.OpaquePythonObject(Blob(text))

    def read_file(path: str, default: str | None = None) -> str:
        # Tilt returns a Blob; a str behaves the same for str() and the YAML decoders.
        return Path(rel(path)).read_text()

    def listdir(directory: str, recursive: bool = False) -> list[str]:
        base = Path(rel(directory))
        pattern = "**/*" if recursive else "*"
        # Tilt answers absolute paths.
        return sorted(str(p) for p in base.glob(pattern) if p.is_file())

    def encode_yaml(obj: Any) -> Any:
        return sl.OpaquePythonObject(Blob(yaml.dump(obj, Dumper=_Dumper, sort_keys=False)))

    def encode_yaml_stream(objs: list[Any]) -> Any:
        return sl.OpaquePythonObject(Blob(yaml.dump_all(objs, Dumper=_Dumper, sort_keys=False)))

    def decode_yaml_stream(value: Any) -> list[Any]:
        return parse_stream(_text(value))

    def decode_yaml(value: Any) -> Any:
        return yaml.load(_text(value), Loader=_Loader)  # noqa: S506 - a safe loader

    def docker_build(ref: str, context_dir: str, **kwargs: Any) -> None:
        run.calls.append(("docker_build", (ref, context_dir), kwargs))

    def docker_build_with_restart(
        ref: str, context_dir: str, entrypoint: Any, live_update: list[Any], **kwargs: Any
    ) -> None:
        # The extension's contract (tilt-extensions/restart_process): a base image plus a
        # child image whose entrypoint the restart wrapper re-runs; needs live_update steps.
        assert live_update, "docker_build_with_restart needs at least one live_update step"
        assert isinstance(entrypoint, list | str), "entrypoint must be a string or a list"
        run.calls.append(
            (
                "docker_build_with_restart",
                (ref, context_dir),
                {"entrypoint": entrypoint, "live_update": live_update, **kwargs},
            )
        )

    def load_file(module: str) -> Any:
        run.loads.append(module)
        if module != "ext://restart_process":
            raise ValueError(f"unexpected load({module!r})")
        loaded = sl.Module()
        loaded.add_callable("docker_build_with_restart", docker_build_with_restart)
        return loaded.freeze()

    builtins: dict[str, Callable[..., Any]] = {
        "version_settings": record("version_settings"),
        "k8s_context": lambda: context,
        "allow_k8s_contexts": record("allow_k8s_contexts"),
        "k8s_yaml": k8s_yaml,
        "helm": helm,
        "read_file": read_file,
        "listdir": listdir,
        "encode_yaml": encode_yaml,
        "encode_yaml_stream": encode_yaml_stream,
        "decode_yaml": decode_yaml,
        "decode_yaml_stream": decode_yaml_stream,
        "docker_build": docker_build,
        "k8s_resource": record("k8s_resource"),
        "local_resource": record("local_resource"),
        "link": lambda url, name="": {"url": url, "name": name},
        "sync": step("sync"),
        "run": step("run"),
        "fall_back_on": step("fall_back_on"),
        "watch_file": record("watch_file"),
    }
    module = sl.Module()
    for name, function in builtins.items():
        module.add_callable(name, function)
    module["TRIGGER_MODE_MANUAL"] = "manual"
    module["TRIGGER_MODE_AUTO"] = "auto"
    # Tilt's dialect: top-level for/if, lambdas, f-strings are all allowed.
    ast = sl.parse("Tiltfile", TILTFILE.read_text(), sl.Dialect.extended())
    sl.eval(module, ast, sl.Globals.standard(), sl.FileLoader(load_file))
    return run


def workload_names(objects: list[dict[str, Any]]) -> set[str]:
    """Tilt's default resource name of each workload: its object name."""
    return {obj["metadata"]["name"] for obj in objects if obj["kind"] in WORKLOAD_KINDS}


def object_selectors(objects: list[dict[str, Any]]) -> set[str]:
    """Tilt's `objects=` selectors ('name:kind', lower-case kind) of every object."""
    return {f"{obj['metadata']['name']}:{obj['kind'].lower()}" for obj in objects}


#: A key that would hold a secret (not PASSWORDS__..., the argon2 cost settings).
SECRET_KEY = re.compile(r"(password|secret|token|pem|credential|api_?key)(?!s)", re.IGNORECASE)
#: Keys whose value names a Secret or a key inside one, never the secret itself.
SECRET_REFERENCE_KEYS = frozenset(
    {"existingSecret", "passwordKey", "secretKey", "key", "secretName", "pullSecrets"}
)
