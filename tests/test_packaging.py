"""A non-editable install carries the lab files and policies, and works from any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest
from conftest import repo_root


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(repo_root())],
                   check=True, capture_output=True, text=True)
    (path,) = out.glob("awslab-*.whl")
    return path


def test_wheel__ships_the_labs_and_policies(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "awslab/_data/labs/week6.toml" in names
    assert any(n.startswith("awslab/_data/policies/") for n in names)
    assert "awslab/local/patches/__init__.py" in names
    assert "awslab/spec/prices.json" in names   # the prices per region, with their sources and dates


def test_installed_wheel__plan_week6_works_from_another_directory(wheel, tmp_path, local, stack):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    result = subprocess.run([sys.executable, "-m", "awslab", "plan", "week6", "--name", stack, "--output", "json"],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert len(plan["steps"]) == 20 and plan["stack"] == stack
    where = subprocess.run([sys.executable, "-c", "import awslab.spec.lab as l; print(l.labs_dir())"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(site))
