"""Load an environment from `path/to/env.py`, `path.py:attr`, a package folder, or `module:attr`."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from agentkd.env.environment import Environment
from agentkd.errors import AgentKDError, EnvironmentLoadError

DEFAULT_ATTRS = ("load_environment", "environment", "env")


def builtin_envs_dir() -> Path:
    """The repository's `envs/` folder (built-in environments)."""
    return Path(__file__).resolve().parents[2] / "envs"


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


def _resolve_module(target: str) -> Any:
    candidate = Path(target)
    if candidate.suffix == ".py" or candidate.exists():
        if not candidate.exists():
            raise EnvironmentLoadError(f"environment file {target} does not exist")
        return _import_path(candidate)
    builtin = builtin_envs_dir() / target
    for option in (builtin, builtin.with_suffix(".py")):
        if option.exists() and "/" not in target:
            return _import_path(option)
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise EnvironmentLoadError(
            f"cannot find environment {target!r}: not a file, not a built-in env in {builtin_envs_dir()}, "
            f"and not an importable module ({exc})"
        ) from exc


def environment_module(target: str) -> Any:
    """The imported module (or package) of an environment spec without `:attr`, e.g. its helpers."""
    return _resolve_module(target)


def load_environment(spec: str | Environment, **kwargs: Any) -> Environment:
    """Load an environment. `spec` is a path, `path.py:attr`, a built-in name, or `module:attr`.

    The attribute may be an Environment or a function returning one (called with **kwargs).
    Without `:attr`, `load_environment`, `environment` or `env` is used.
    """
    if isinstance(spec, Environment):
        return spec
    target, _, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    module = _resolve_module(target)
    names = [attr] if attr else [a for a in DEFAULT_ATTRS if hasattr(module, a)]
    if not names or not hasattr(module, names[0]):
        wanted = attr or " / ".join(DEFAULT_ATTRS)
        raise EnvironmentLoadError(f"{target} defines no {wanted!r}; define an Environment or a function returning one")
    obj = getattr(module, names[0])
    if callable(obj) and not isinstance(obj, Environment):
        obj = obj(**kwargs)
    if not isinstance(obj, Environment):
        raise EnvironmentLoadError(f"{spec} gave a {type(obj).__name__}, not an agentkd Environment")
    return obj
