"""Build hook: ship the bundled policy bundle inside the wheel.

The repository keeps the bundled policy files at its top level
(``policies/``), where compliance officers read, copy and edit them. An
installed gateway (``pip install``, the container image) has no checkout
beside it, so ``gateway serve --demo`` and every default that names the
bundled policies would find nothing: the wheel carries a copy as
``gateway/bundled_policies`` (``gateway.cli.serve.bundled_policy_dir``).
Everything else about the build is declared in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

POLICIES = Path(__file__).resolve().parent / "policies"


class BuildWithBundledPolicies(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads the checkout's policies/ directly
        target = Path(self.build_lib) / "gateway" / "bundled_policies"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithBundledPolicies})
