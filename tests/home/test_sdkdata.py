"""botocore's data parsed once per process and kept parsed on disk (awslab/home/sdkdata.py): what comes
from the cache is what botocore's own JSON loader gives, and a stale or broken cache file is
never believed."""

from __future__ import annotations

import os

from botocore.loaders import JSONFileLoader, Loader

from awslab.home import sdkdata


def _model_path(service: str = "rds") -> str:
    loader = Loader()
    version = loader.determine_latest_version(service, "service-2")
    return next(os.path.join(p, service, version, "service-2") for p in loader.search_paths
                if JSONFileLoader().exists(os.path.join(p, service, version, "service-2")))


def test_cached_model__equals_botocore_json_and_is_written_once(tmp_path):
    path = _model_path()
    expected = JSONFileLoader().load_file(path)
    first = sdkdata._file_loader(tmp_path).load_file(path)
    written = list(tmp_path.glob("*.marshal"))
    again = sdkdata._file_loader(tmp_path).load_file(path)
    assert first == expected and again == expected
    assert len(written) == 1 and list(tmp_path.glob("*.marshal")) == written


def test_cached_model__a_corrupt_or_stale_file_is_read_again_from_json(tmp_path):
    path = _model_path()
    expected = JSONFileLoader().load_file(path)
    sdkdata._file_loader(tmp_path).load_file(path)
    (cached,) = tmp_path.glob("*.marshal")
    cached.write_bytes(b"\x00garbage")
    assert sdkdata._file_loader(tmp_path).load_file(path) == expected
    import marshal

    stamp, data = marshal.loads(cached.read_bytes())
    cached.write_bytes(marshal.dumps(((stamp[0] + 1, stamp[1]), {"not": "the model"})))   # the JSON changed since
    assert sdkdata._file_loader(tmp_path).load_file(path) == expected


def test_cache_dir__per_botocore_version_under_xdg_cache_home_and_off_by_env(monkeypatch, tmp_path):
    import botocore

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert sdkdata.cache_dir() == tmp_path / "awslab" / f"botocore-{botocore.__version__}"
    monkeypatch.setenv(sdkdata.CACHE_ENV, "off")
    assert sdkdata.cache_dir() is None


def test_shared_loader__every_session_gets_the_same_loader_with_each_search_path_once():
    import boto3

    sdkdata.share_across_sessions()
    one, two = boto3.Session(region_name="us-east-1"), boto3.Session(region_name="us-east-1")
    loader = one._session.get_component("data_loader")
    assert loader is two._session.get_component("data_loader")
    assert len(loader.search_paths) == len(set(loader.search_paths))
