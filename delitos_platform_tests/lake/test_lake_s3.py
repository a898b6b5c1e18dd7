"""Source → S3 lake through dagster-aws, against moto's S3 server over HTTP."""

from __future__ import annotations

import boto3
import pytest
from dagster_aws.s3 import S3Resource
from moto.server import ThreadedMotoServer

from delitos_platform.lake.extract import extract_to_lake
from delitos_platform.lake.storage import LakeError, LocalLake, S3Lake, data_key, quarantine_key
from delitos_platform.partitions import Window
from delitos_platform_tests.conftest import socrata_for
from delitos_platform_tests.lake.helpers import failure_message, materialize_lake

MONTH = "2019-03-01"


def _client(endpoint: str, service: str = "s3"):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    name = f"lake-{request.node.name.lower().replace('_', '-')[:40]}"
    _client(s3_endpoint).create_bucket(Bucket=name)
    return name


def _s3_lake(endpoint: str, bucket: str, **settings: object) -> S3Lake:
    return S3Lake(s3=S3Resource(endpoint_url=endpoint, region_name="us-east-1"), bucket=bucket, **settings)


def test_months_land_in_s3_encrypted_and_identical_to_the_local_lake(emulator, s3_endpoint, bucket, tmp_path):
    s3_lake = _s3_lake(s3_endpoint, bucket, prefix="raw/delitos")
    local = LocalLake(root=str(tmp_path / "lake"))

    assert materialize_lake(socrata_for(emulator), s3_lake, MONTH).success
    assert materialize_lake(socrata_for(emulator), local, MONTH).success

    for key in (data_key(MONTH), quarantine_key(MONTH)):
        stored = _client(s3_endpoint).head_object(Bucket=bucket, Key=f"raw/delitos/{key}")
        assert stored["ServerSideEncryption"] == "AES256"
        assert s3_lake.read(key) == local.read(key)
    assert s3_lake.uri(data_key(MONTH)) == f"s3://{bucket}/raw/delitos/{data_key(MONTH)}"


def test_a_kms_key_encrypts_with_aws_kms(emulator, s3_endpoint, bucket):
    key_id = _client(s3_endpoint, "kms").create_key(Description="lake")["KeyMetadata"]["KeyId"]
    s3_lake = _s3_lake(s3_endpoint, bucket, kms_key_id=key_id)

    assert materialize_lake(socrata_for(emulator), s3_lake, MONTH).success

    stored = _client(s3_endpoint).head_object(Bucket=bucket, Key=data_key(MONTH))
    assert stored["ServerSideEncryption"] == "aws:kms"
    assert key_id in stored["SSEKMSKeyId"]


def test_a_missing_bucket_is_one_sentence_and_nothing_is_fetched(fresh_emulator, s3_endpoint):
    served = fresh_emulator.requests_served
    result = materialize_lake(socrata_for(fresh_emulator), _s3_lake(s3_endpoint, "no-such-bucket"), MONTH)

    assert failure_message(result) == "cannot reach S3 bucket 'no-such-bucket': the bucket does not exist"
    assert fresh_emulator.requests_served == served


def test_an_s3_outage_while_publishing_is_named_as_the_publish_that_failed(emulator, s3_endpoint):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    _client(endpoint).create_bucket(Bucket="lake")
    outage: list[bool] = []

    class S3GoesDown(S3Lake):
        """A real outage at a precise moment: the endpoint stops as the first object is published."""

        def publish(self, staged: str, key: str) -> str:
            if not outage:
                outage.append(True)
                server.stop()
            return super().publish(staged, key)

    lake = S3GoesDown(s3=S3Resource(endpoint_url=endpoint, region_name="us-east-1", max_attempts=1), bucket="lake")
    try:
        with pytest.raises(LakeError) as failure:
            extract_to_lake(socrata_for(emulator), lake, Window.for_month(MONTH), "run-outage")
    finally:
        if not outage:
            server.stop()

    assert str(failure.value).startswith("cannot publish to S3 bucket 'lake': the S3 endpoint is unreachable")
