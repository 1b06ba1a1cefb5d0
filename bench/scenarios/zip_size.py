"""Scenario 5, layer zip size: our layer zips (`make layer`) against each floor zipped the same way
(deflate level 9, fixed timestamps), per architecture."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from bench.harness import ARCHES, FLOOR_NAME, FLOORS, ROOT, floor_go, floor_rs, ratio

BUILDERS = {"floor": floor_rs, "floor-go": floor_go}


def zipped_size(binary: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info = zipfile.ZipInfo(f"extensions/{FLOOR_NAME}", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o100755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, binary.read_bytes())
    return len(buffer.getvalue())


def run() -> dict:
    result = {}
    for arch in ARCHES:
        ours = ROOT / f"dist/invocation-history-extension-{arch}.zip"
        sizes = {"ours": ours.stat().st_size if ours.exists() else None}
        sizes.update({floor: zipped_size(BUILDERS[floor](arch)) for floor in FLOORS})
        for floor in FLOORS:
            sizes[f"ratio ours/{floor}"] = ratio(sizes["ours"], sizes[floor])
        result[arch] = sizes
    return result
