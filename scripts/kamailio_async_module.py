"""Kamailio's http_async_client module, built for the Kamailio installed here.

Debian 12 packages Kamailio 5.6.3 without http_async_client (it needs libevent), so the
benchmark builds that one module from Debian's own source package of the installed
version, with the build flags `make cfg` gives, and loads it into the packaged kamailio.
The result is cached: later runs take it at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sipcurl"
SOURCES = Path("/etc/apt/sources.list.d/sipcurl-kamailio-src.sources")
BUILD_PACKAGES = ("libevent-dev", "libcurl4-openssl-dev", "bison", "flex", "make", "gcc")


def installed_version() -> str | None:
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "kamailio"],
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip() or None if done.returncode == 0 else None


def http_async_client_module() -> Path | str:
    """The module's path, or why it could not be had."""
    version = installed_version()
    if version is None:
        return "kamailio is not installed"
    target = CACHE / f"kamailio-{version}" / "http_async_client.so"
    if target.exists():
        return target
    if os.geteuid() != 0:
        return "building http_async_client needs root (apt-get source and build packages)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    work = target.parent / "build"
    try:
        if not SOURCES.exists():
            SOURCES.write_text(
                "Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n"
                "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            )
            run(["apt-get", "update", "-qq"], env=env)
        run(["apt-get", "install", "-y", "-qq", *BUILD_PACKAGES], env=env)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        run(["apt-get", "source", "--download-only", f"kamailio={version}"], env=env, cwd=work)
        orig = next(work.glob("kamailio_*.orig.tar.*"))
        with tarfile.open(orig) as tar:
            tar.extractall(work, filter="data")
        tree = next(p for p in work.iterdir() if p.is_dir() and p.name.startswith("kamailio"))
        run(["make", "cfg", "include_modules=http_async_client"], cwd=tree)
        run(["make", "-C", "src/modules/http_async_client"], cwd=tree)
        shutil.copy(tree / "src/modules/http_async_client/http_async_client.so", target)
    except (OSError, StopIteration, subprocess.SubprocessError) as exc:
        return f"could not build http_async_client: {exc}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def run(cmd: list[str], **kwargs: object) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise subprocess.SubprocessError(f"{' '.join(cmd)}: {' / '.join(tail)}")


if __name__ == "__main__":
    print(http_async_client_module())
