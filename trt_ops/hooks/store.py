"""The artifact store for a URI, with S3 credentials from the amazon provider's ``aws`` connection.

For S3-compatible servers put ``endpoint_url`` in the connection's extras
(``{"endpoint_url": "http://minio:9000"}``); the amazon provider's client honours it.
``file://`` and plain directories need no connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from trt_ops.store import ArtifactStore


class ArtifactStoreHook(BaseHook):
    """Opens :class:`trt_ops.store.ArtifactStore` objects.

    :param aws_conn_id: the ``aws`` connection used for ``s3://`` URIs; ``None`` uses boto3's
        default credential chain (and ``TRT_OPS_S3_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL``).
    """

    def __init__(self, aws_conn_id: str | None = "aws_default") -> None:
        super().__init__()
        self.aws_conn_id = aws_conn_id

    @cached_property
    def s3_client(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id).get_conn()

    def open(self, uri: str) -> ArtifactStore:
        from trt_ops.store import open_store

        if urlparse(str(uri)).scheme == "s3" and self.aws_conn_id:
            return open_store(uri, client=self.s3_client)
        return open_store(uri)

    @contextlib.contextmanager
    def s3_scope(self) -> Iterator[None]:
        """S3 reads and writes in the block that open no store through this hook (data, model
        files, specs by URI) use the connection too; without one, boto3's defaults."""
        from trt_ops.store.s3 import client_scope

        if not self.aws_conn_id:
            yield
            return
        with client_scope(lambda: self.s3_client):
            yield

    def get_conn(self) -> Any:
        return self.s3_client
