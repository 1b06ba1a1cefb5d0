"""The S3 export's objects (issue 12) on this machine: found in a local directory or fetched from S3, and read.

An object's key is `<prefix>function=<name>/date=YYYY-MM-DD/hour=HH/<environmentId>-<seq>.ndjson.gz` and it holds
gzip NDJSON lines (docs/configuration.md, "S3 export"). A download keeps the keys as paths under a directory, so
the local tools read a bucket's objects and a local copy alike.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

# The part of a key the exporter chose; what comes before it is the configured prefix.
KEY = re.compile(
    r"function=(?P<function>[^/]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/"
    r"(?P<environment>[^/]+)-(?P<seq>\d+)\.ndjson\.gz$"
)
# Bounds: a picture or a local query of more objects than this is better made in Athena.
DEFAULT_MAX_OBJECTS = 20_000
# An object is at most the export's 64 MiB of NDJSON (EXPORT_MAX_BYTES' upper bound), gzip makes it smaller.
MAX_OBJECT_BYTES = 64 << 20

T = TypeVar("T")


class NoObjects(Exception):
    """The source holds no exported object."""


def progress(items: Iterable[T], total: int, what: str, enabled: bool = True) -> Iterator[T]:
    """`items`, with a progress bar on stderr while they are consumed (tqdm; quiet when not enabled or few)."""
    if not enabled or total < 2:
        yield from items
        return
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (a log, CI), where its redraws would be noise.
    yield from tqdm(items, total=total, desc=what, unit="obj", leave=False, disable=None)


def local_objects(directory: Path, max_objects: int = DEFAULT_MAX_OBJECTS) -> list[Path]:
    """The exported objects under `directory` (any depth), in key order."""
    if not directory.is_dir():
        raise NoObjects(f"{directory} is not a directory")
    found = sorted(p for p in directory.rglob("*.ndjson.gz") if KEY.search(p.as_posix()))
    if not found:
        raise NoObjects(f"no exported object (function=…/date=…/hour=…/<environment>-<seq>.ndjson.gz) under {directory}")
    if len(found) > max_objects:
        raise NoObjects(f"{len(found)} objects under {directory}, more than --max-objects {max_objects}")
    return found


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix)."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url}")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url}")
    return bucket, prefix


def download(
    url: str, into: Path, endpoint_url: str | None = None, max_objects: int = DEFAULT_MAX_OBJECTS, show_progress: bool = True
) -> list[Path]:
    """Copy the exported objects under `s3://bucket/prefix` to `into`, each at its key's path; the paths, in key order.
    An object already there with the same size is not fetched again (objects are written once and never change)."""
    import boto3

    bucket, prefix = parse_s3_url(url)
    s3 = boto3.client("s3", endpoint_url=endpoint_url)
    listed = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if KEY.search(item["Key"]):
                listed.append((item["Key"], item["Size"]))
                if len(listed) > max_objects:
                    raise NoObjects(f"more than --max-objects {max_objects} objects under {url}")
    if not listed:
        raise NoObjects(f"no exported object under {url}")
    paths = []
    for key, size in progress(sorted(listed), len(listed), "downloading", show_progress):
        if size > MAX_OBJECT_BYTES:
            raise ValueError(f"s3://{bucket}/{key} is {size} bytes, more than an export object can be")
        path = into / key
        if not (path.is_file() and path.stat().st_size == size):
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(path))
        paths.append(path)
    return paths


def objects(source: str, cache: Path, endpoint_url: str | None = None, max_objects: int = DEFAULT_MAX_OBJECTS,
            show_progress: bool = True) -> list[Path]:  # fmt: skip
    """The objects of `source`: a local directory, or `s3://bucket/prefix` downloaded into `cache`."""
    if source.startswith("s3://"):
        return download(source, cache, endpoint_url, max_objects, show_progress)
    return local_objects(Path(source), max_objects)


def read_lines(path: Path) -> list[dict]:
    """The lines of one object, decoded."""
    with gzip.open(path, "rb") as f:
        data = f.read(MAX_OBJECT_BYTES + 1)
    if len(data) > MAX_OBJECT_BYTES:
        raise ValueError(f"{path} holds more than {MAX_OBJECT_BYTES} bytes of NDJSON, more than an export object can")
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def environment_of(path: Path | str) -> str:
    """The environment id that an object's key names."""
    match = KEY.search(Path(path).as_posix())
    if not match:
        raise ValueError(f"not an exported object's key: {path}")
    return match.group("environment")
