"""Resolve and load environments: built-in names, `path/to/env.py[:attr]`, package folders, `module:attr`.

`resolve_env_spec` turns what a user typed into an `EnvSpec` whose target does not depend on the
working directory (an importable module or an absolute path) without importing the environment,
so a run folder can be checked before a slow environment loads. `load_environment` loads one.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from agentkd.env.environment import Environment
from agentkd.errors import AgentKDError, EnvironmentLoadError
from agentkd.specs import EnvSpec

DEFAULT_ATTRS = ("load_environment", "environment", "env")
BUILTIN_PACKAGE = "agentkd_envs"
"""The import package of the built-in environments (the repository's `envs/` folder, installed with agentkd)."""


def builtin_envs_dir() -> Path | None:
    """Where the built-in environments live, or None when agentkd_envs is not installed."""
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    checkout = Path(__file__).resolve().parents[2] / "envs"  # a source checkout that was never installed
    return checkout if checkout.is_dir() else None


def module_name_for(path: Path) -> str:
    """The name an environment file or folder is imported under (unique per resolved path)."""
    path = path.resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return f"agentkd_env_{path.stem}_{digest}"


def _import_path(path: Path) -> Any:
    path = path.resolve()
    module_name = module_name_for(path)
    if path.is_dir():
        init = path / "__init__.py"
        if not init.is_file():
            raise EnvironmentLoadError(f"{path} is a folder without __init__.py; point at the environment's .py file")
        spec = importlib.util.spec_from_file_location(module_name, init, submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise EnvironmentLoadError(f"cannot import {path}")
    if module_name in sys.modules:
        return sys.modules[module_name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except AgentKDError:
        sys.modules.pop(module_name, None)
        raise
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise EnvironmentLoadError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _split_attr(text: str) -> tuple[str, str]:
    target, _, attr = text.rpartition(":") if ":" in text else (text, "", "")
    return target, attr


def _is_path(target: str) -> bool:
    """A path when it says so (a `/`, a `.py`), or when a bare name is an environment file or package folder here.

    A bare name that is some other folder here (a run folder named after its env: `--env factqa --run factqa`)
    is not a path, so it cannot shadow the built-in or module of that name."""
    if target.endswith(".py") or "/" in target:
        return True
    local = Path(target)
    return local.is_file() or (local / "__init__.py").is_file()


def resolve_env_spec(spec: str | os.PathLike[str] | EnvSpec, kwargs: dict[str, Any] | None = None) -> EnvSpec:
    """A location-independent `EnvSpec` for `spec`, without importing the environment.

    A built-in name becomes its module (`factqa` -> `agentkd_envs.factqa`), a file or folder its absolute
    path; `module[:attr]` stays as it is once the module is known to exist. `kwargs` are added to the spec's."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    given = spec.given if isinstance(spec, EnvSpec) else spec
    if isinstance(spec, EnvSpec):  # resolving is idempotent: a resolved target resolves to itself
        kwargs, spec = {**spec.kwargs, **(kwargs or {})}, spec.target
    target, attr = _split_attr(spec.strip())
    suffix = f":{attr}" if attr else ""
    if not target:
        raise EnvironmentLoadError("no environment given: pass a built-in name (factqa), path/to/env.py or module:attr")
    if _is_path(target):
        path = Path(target).expanduser()
        if not path.exists():
            raise EnvironmentLoadError(f"environment file {target} does not exist")
        resolved = f"{path.resolve()}{suffix}"
    elif "." not in target and _builtin(target):
        resolved = _builtin(target) + suffix  # type: ignore[operator]
    elif Path(target).is_dir():  # not a package folder (_is_path), and not to be imported as a namespace package
        raise EnvironmentLoadError(f"./{target} is a folder without __init__.py, not an environment: point at its "
                                   f".py file, or name a built-in env ({', '.join(builtin_names()) or 'none installed'})")
    else:
        try:
            found = importlib.util.find_spec(target)
        except (ImportError, ValueError):
            found = None
        if found is None:
            where = builtin_envs_dir()
            raise EnvironmentLoadError(
                f"cannot find environment {target!r}: not a file, not a built-in env"
                f"{f' in {where}' if where else ''} ({', '.join(builtin_names()) or 'none installed'}), "
                "and not an importable module"
            )
        resolved = f"{target}{suffix}"
    return EnvSpec(target=resolved, kwargs=dict(kwargs or {}), given=given or spec)


def builtin_names() -> list[str]:
    """Names of the built-in environments."""
    where = builtin_envs_dir()
    if where is None:
        return []
    return sorted(p.name for p in where.iterdir() if (p / "__init__.py").is_file() and not p.name.startswith("_"))


def _builtin(name: str) -> str | None:
    """The target of a built-in environment: its module when installed, else its folder in a checkout."""
    if importlib.util.find_spec(BUILTIN_PACKAGE) is not None:
        return f"{BUILTIN_PACKAGE}.{name}" if importlib.util.find_spec(f"{BUILTIN_PACKAGE}.{name}") else None
    where = builtin_envs_dir()
    if where is not None and (where / name / "__init__.py").is_file():
        return str(where / name)
    return None


def _import_target(target: str) -> Any:
    if target.startswith("/") or target.endswith(".py"):
        return _import_path(Path(target))
    try:
        return importlib.import_module(target)
    except AgentKDError:
        raise
    except ImportError as exc:
        raise EnvironmentLoadError(f"cannot import environment module {target!r} ({exc})") from exc
    except Exception as exc:
        raise EnvironmentLoadError(f"importing {target} failed: {type(exc).__name__}: {exc}") from exc


def environment_module(spec: str | EnvSpec) -> Any:
    """The imported module (or package) of an environment, e.g. to reach its helpers."""
    return _import_target(_split_attr(resolve_env_spec(spec).target)[0])


def load_environment(spec: str | os.PathLike[str] | EnvSpec | Environment, **kwargs: Any) -> Environment:
    """Load an environment. `spec` is a built-in name, a path, `path.py:attr`, `module:attr` or an `EnvSpec`.

    The attribute may be an Environment or a function returning one (called with the spec's kwargs and
    `**kwargs`). Without `:attr`, `load_environment`, `environment` or `env` is used.
    """
    if isinstance(spec, Environment):
        return spec
    resolved = resolve_env_spec(spec, kwargs)
    target, attr = _split_attr(resolved.target)
    module = _import_target(target)
    names = [attr] if attr else [a for a in DEFAULT_ATTRS if hasattr(module, a)]
    if not names or not hasattr(module, names[0]):
        wanted = attr or " / ".join(DEFAULT_ATTRS)
        raise EnvironmentLoadError(f"{resolved.given or target} defines no {wanted!r}; define an Environment or a "
                                   "function returning one")
    obj = getattr(module, names[0])
    if callable(obj) and not isinstance(obj, Environment):
        try:
            obj = obj(**resolved.kwargs)
        except TypeError as exc:
            if not resolved.kwargs:
                raise
            raise EnvironmentLoadError(f"environment {resolved} does not take these arguments: {exc}") from exc
    elif resolved.kwargs:
        raise EnvironmentLoadError(f"environment {resolved.given or target} is an Environment object, not a function: "
                                   f"it takes no arguments (got {', '.join(resolved.kwargs)})")
    if not isinstance(obj, Environment):
        raise EnvironmentLoadError(f"{resolved.given or target} gave a {type(obj).__name__}, not an agentkd Environment")
    return obj
