"""Set the pins of envs/*.yaml's `pip:` sections to the versions in requirements/lock.txt.

Run by requirements/refresh.sh after pip-compile; tests/workflow/test_envs.py checks that the two agree. Each env file
keeps its own list of packages (what its rules import) and its comments; only the `==version` parts change.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^(\s*-\s*)([A-Za-z0-9_.-]+)==(\S+)\s*$")


def read_lock(path: Path = ROOT / "requirements" / "lock.txt") -> dict[str, str]:
    """Normalised package name -> version, from a pip-compile output."""
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            pins[normalise(m.group(1))] = m.group(2)
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def sync(env: Path, lock: dict[str, str]) -> bool:
    """Rewrite one env file's pins; True if it changed. A package the lock lacks is an error."""
    lines, changed = env.read_text().splitlines(keepends=True), False
    for i, line in enumerate(lines):
        m = PIN.match(line)
        if not m:
            continue
        name = normalise(m.group(2))
        if name not in lock:
            sys.exit(f"{env.name}: {m.group(2)} is not in requirements/lock.txt")
        new = f"{m.group(1)}{m.group(2)}=={lock[name]}\n"
        changed |= new != line
        lines[i] = new
    env.write_text("".join(lines))
    return changed


if __name__ == "__main__":
    lock = read_lock()
    for env in sorted((ROOT / "envs").glob("*.yaml")):
        print(f"{env.name}: {'updated' if sync(env, lock) else 'unchanged'}")
