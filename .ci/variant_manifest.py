"""Checks that a variant's manifests (.ci/torch-<version>/) differ from the project's only
where a torch variant must: tch and torch-sys versions and the default feature in Cargo.toml,
the torch pin in pyproject.toml. Usage: python .ci/variant_manifest.py .ci/torch-2.11.0"""

import sys
from pathlib import Path

import tomllib


def _load(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def main() -> int:
    variant = Path(sys.argv[1])
    cargo, ours = _load(variant / "Cargo.toml"), _load(Path("Cargo.toml"))
    for dep in ("tch", "torch-sys"):
        cargo["dependencies"][dep] = ours["dependencies"][dep]
    cargo["features"]["default"] = ours["features"]["default"]
    py, our_py = _load(variant / "pyproject.toml"), _load(Path("pyproject.toml"))
    torch_pin = [d for d in py["project"]["dependencies"] if d.startswith("torch==")]
    py["project"]["dependencies"] = our_py["project"]["dependencies"]
    bad = [name for name, a, b in (("Cargo.toml", cargo, ours), ("pyproject.toml", py, our_py)) if a != b]
    if bad or len(torch_pin) != 1:
        print(f"{variant}: {', '.join(bad) or 'the torch pin'} differs beyond the variant's keys", file=sys.stderr)
        return 1
    print(f"{variant}: manifests match the project's but for tch and {torch_pin[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
