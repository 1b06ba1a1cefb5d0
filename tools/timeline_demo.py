"""`make timeline-demo`: several execution environments at once on the local Lambda, exporting their history to a
local S3 server, then the timeline of what they did and the named queries' answers.

No AWS account: AWS's Lambda emulator (RIE, managed-instances mode) runs each environment with the extension, moto's
S3 server on 127.0.0.1 receives the export (tools/export_run.py), and the objects are read back through the s3://
path of tools/timeline.py and tools/history_query.py, as they would be from a bucket.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from tools import history_query, timeline
from tools.export_run import Plan, run
from tools.history_objects import download
from tools.local_lambda import ROOT
from tools.local_s3 import REGION, LocalS3

BUCKET = "timeline-demo"
PREFIX = "invocation-history/"
# Four environments that start and stop at different times, serve different loads two or three at a time, and
# fail now and then: what Lambda does under a burst, in a few seconds.
PLANS = [
    Plan(invocations=24, concurrency=2, sleep_ms=40, fail_every=0, start_after_s=0.0, linger_s=0.3),
    Plan(invocations=30, concurrency=3, sleep_ms=60, fail_every=7, start_after_s=0.4, linger_s=0.1),
    Plan(invocations=12, concurrency=2, sleep_ms=80, fail_every=5, start_after_s=0.9, linger_s=0.0),
    Plan(invocations=8, concurrency=1, sleep_ms=30, fail_every=0, start_after_s=1.3, linger_s=0.5),
]


def shown(path: Path) -> Path:
    """`path` relative to the working directory when it is under it (shorter to read and to copy)."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.timeline_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out-dir", type=Path, default=ROOT / "build/timeline", help="default: build/timeline")
    args = parser.parse_args(argv)
    # The local S3 takes any key; boto3 needs one to sign with.
    os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION})
    objects_dir = args.out_dir / "objects"
    shutil.rmtree(objects_dir, ignore_errors=True)  # this run's objects only
    with LocalS3() as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        print(f"Running {len(PLANS)} environments at once on the local Lambda, exporting to s3://{BUCKET}/{PREFIX} "
              f"on {s3.url} ...")  # fmt: skip
        served = run(s3, BUCKET, PLANS, prefix=PREFIX)
        for s, plan in zip(served, PLANS):
            print(f"  environment {s.environment_id[:8]}: {len(s.request_ids)} invocations, {plan.concurrency} at a time, "
                  f"{len(s.failed)} failed")  # fmt: skip
        files = download(f"s3://{BUCKET}/{PREFIX}", objects_dir, endpoint_url=s3.url)
    print(f"{len(files)} objects copied to {shown(objects_dir)}\n")
    history = history_query.History(files)
    for name in ("environments", "errors_by_type_and_environment"):
        print(f"== {name}")
        history_query.print_table(history.named(name), sys.stdout)
        print()
    history.close()
    drawn = timeline.read_timeline(files)
    png = timeline.render_png(drawn, args.out_dir / "timeline.png")
    page = timeline.render_html(drawn, args.out_dir / "timeline.html")
    print("The timeline (one lane per environment, each invocation a mark coloured by status, cold starts starred):")
    print(f"  {shown(png)}\n  {shown(page)}")
    print(f"More: .venv/bin/python -m tools.history_query {shown(objects_dir)}   (and tools.timeline, --help)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
