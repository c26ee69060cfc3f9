"""The dashboard's page assets, offline.

Solara serves its front end (the Vuetify app, SolaraViz's grid layout, requirejs, fonts …) through a
proxy, ``/_solara/cdn/<package>@<version>/<file>``, that downloads from a public CDN on first use and
caches the files under its ``proxy_cache_dir``. Without internet the page stays blank. These
packages are on the npm registry as well: :func:`fill_cache` fetches each with ``npm pack`` and
unpacks it into the cache, so the page renders with no CDN. The versions are the ones the pinned
Solara (1.64.1) asks for.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

#: npm package → version, as requested by Solara 1.64.1's page (with ipyvuetify 2)
PACKAGES = {
    "@widgetti/solara-vuetify-app": "10.1.1",
    "@widgetti/vue-grid-layout": "2.3.13-alpha.2",
    "requirejs": "2.3.6",
    "font-awesome": "4.5.0",
    "mermaid": "10.8.0",
    "katex": "0.16.9",
}


def cache_dir() -> Path:
    """Solara's CDN proxy cache (``<prefix>/share/solara/cdn``)."""
    from solara.server import settings

    return Path(settings.assets.proxy_cache_dir)


def missing(cache: Path | None = None) -> list[str]:
    """``name@version`` of every package not yet in the cache."""
    cache = cache_dir() if cache is None else cache
    return [f"{n}@{v}" for n, v in PACKAGES.items() if not (cache / f"{n}@{v}" / "package.json").is_file()]


def fill_cache(cache: Path | None = None, *, npm: str = "npm", timeout: float = 120.0) -> list[str]:
    """Fetch the missing packages from the npm registry into the cache; returns what was added.
    Raises ``RuntimeError`` (with npm's message) when npm is missing or a package can't be fetched."""
    cache = cache_dir() if cache is None else cache
    todo = missing(cache)
    if not todo:
        return []
    if shutil.which(npm) is None:
        raise RuntimeError(f"npm is not installed: it fetches the dashboard's page assets ({', '.join(todo)})")
    added = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in todo:
            done = subprocess.run([npm, "pack", spec, "--pack-destination", tmp, "--silent"], capture_output=True,
                                  text=True, timeout=timeout)
            if done.returncode != 0:
                raise RuntimeError(f"npm pack {spec} failed: {done.stderr.strip() or done.stdout.strip()}")
            tarball = Path(tmp) / done.stdout.strip().splitlines()[-1]
            _unpack(tarball, cache / spec)
            added.append(spec)
    return added


def _unpack(tarball: Path, target: Path) -> None:
    """Unpack an npm tarball into ``target`` without its leading ``package/`` folder, atomically (a
    half-unpacked package is never left in the cache), and write ``__main.js`` (what the CDN serves
    for the bare ``name@version``) from the package's entry point."""
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            parts = Path(member.name).parts
            if not parts or not (member.isfile() or member.isdir()):
                continue
            member.name = str(Path(*parts[1:])) if len(parts) > 1 else "."
            archive.extract(member, staging, filter="data")
    meta = json.loads((staging / "package.json").read_text())
    entry = next((meta[k] for k in ("jsdelivr", "unpkg", "browser", "main") if isinstance(meta.get(k), str)), None)
    if entry and (staging / entry).is_file():
        shutil.copyfile(staging / entry, staging / "__main.js")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
