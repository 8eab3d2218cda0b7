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

    stamp, _data = marshal.loads(cached.read_bytes())
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


def test_shared_models__each_service_has_one_model_and_client_class_and_every_client_works_as_its_own():
    import boto3
    import pytest
    from botocore.exceptions import EndpointConnectionError, ParamValidationError
    from botocore.stub import Stubber

    sdkdata.share_across_sessions()
    keys = {"aws_access_key_id": "a", "aws_secret_access_key": "b"}
    one = boto3.Session(region_name="us-east-1", **keys).client("rds", endpoint_url="http://127.0.0.1:9")
    two = boto3.Session(region_name="eu-west-1", **keys).client("rds", endpoint_url="http://127.0.0.1:9")
    ec2 = boto3.Session(region_name="us-east-1", **keys).client("ec2", endpoint_url="http://127.0.0.1:9")
    assert type(one) is type(two) and one.meta.service_model is two.meta.service_model
    assert type(ec2) is not type(one) and hasattr(ec2, "run_instances") and not hasattr(one, "run_instances")
    # What a client holds of its own stays its own: its region, its handlers, its stubbed answers.
    assert (one.meta.region_name, two.meta.region_name) == ("us-east-1", "eu-west-1")
    seen = []
    one.meta.events.register("before-parameter-build.rds.DescribeDBInstances", lambda **kw: seen.append("one"))
    with Stubber(one) as stub:
        stub.add_response("describe_db_instances", {"DBInstances": [{"DBInstanceIdentifier": "mine"}]})
        assert one.describe_db_instances()["DBInstances"][0]["DBInstanceIdentifier"] == "mine"
    with pytest.raises(EndpointConnectionError):   # two has no stub and no handler: it really sends
        two.describe_db_instances()
    assert seen == ["one"]
    with pytest.raises(ParamValidationError):   # the shared model still validates
        two.describe_db_instances(MaxRecords="many")


def test_shared_event_aliases__sessions_share_one_cache_and_each_session_still_gets_its_own_events():
    import boto3

    sdkdata.share_across_sessions()
    one, two = boto3.Session(region_name="us-east-1")._session, boto3.Session(region_name="us-east-1")._session
    aliaser_one, aliaser_two = one.get_component("event_emitter"), two.get_component("event_emitter")
    assert aliaser_one._alias_name_cache is aliaser_two._alias_name_cache
    # A client's emitter is a copy of its session's (its aliases copied too): the same cache.
    client = one.create_client("rds", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    assert client.meta.events is not aliaser_one and client.meta.events._alias_name_cache is aliaser_one._alias_name_cache
    from botocore.hooks import EventAliaser, HierarchicalEmitter

    own = EventAliaser(HierarchicalEmitter(), {"rds": "relational"})   # aliases of its own: a cache of its own
    assert own._alias_name_cache is not aliaser_one._alias_name_cache
    assert own._alias_event_name("before-call.rds.X") == "before-call.relational.X"
    # The aliases themselves are botocore's: an old service name is still rewritten.
    assert aliaser_one._alias_event_name("before-call.autoscaling.DescribeTags") == \
        "before-call.auto-scaling.DescribeTags"
    seen = []
    one.register("awslab-test.autoscaling.Anything", lambda **kw: seen.append("one"))
    two.emit("awslab-test.autoscaling.Anything")
    one.emit("awslab-test.auto-scaling.Anything")
    assert seen == ["one"]   # handlers stay the session's own


def test_timestamps__read_directly_exactly_as_botocores_parser_reads_them(monkeypatch):
    import time

    import botocore.parsers
    from botocore.utils import parse_timestamp

    if time.daylight:
        import pytest

        pytest.skip("this machine's zone has daylight saving time: every timestamp goes to botocore's parser")
    sdkdata.share_across_sessions()
    direct = botocore.parsers.DEFAULT_TIMESTAMP_PARSER
    assert getattr(direct, "awslab_direct", False)
    values = ["2026-12-07T05:58:51.123Z", "2026-12-07T05:58:51Z", "2026-12-07T05:58:51+00:00",
              "2026-12-07T05:58:51.5Z", "2026-12-07T05:58:51.123456Z", "2024-02-29T23:59:59.000001Z",
              # not the direct form: botocore's parser, as before
              "2026-12-07T05:58:51.1234567Z", "2026-12-07T05:58:51", "2026-12-07T05:58:51+02:00",
              "Mon, 07 Dec 2026 05:58:51 GMT", "1765087131", 1765087131, 1765087131.25]
    for value in values:
        mine, botocores = direct(value), parse_timestamp(value)
        assert (mine, repr(mine), type(mine.tzinfo), mine.fold) == \
            (botocores, repr(botocores), type(botocores.tzinfo), botocores.fold), value
    for bad in ("2026-02-30T00:00:00Z", "2026-12-07T25:00:00Z", "not a time"):
        import pytest

        with pytest.raises(ValueError) as mine:
            direct(bad)
        with pytest.raises(ValueError) as botocores:
            parse_timestamp(bad)
        assert str(mine.value) == str(botocores.value)
    # A client made now reads its answers with it.
    parser = botocore.parsers.create_parser("query")
    assert parser._timestamp_parser is direct
