"""`extension_src/build-layer.sh` (used by `make layer` and the CDK construct) is reproducible."""

from __future__ import annotations

import stat
import subprocess
import zipfile

import pytest

from tools.local_lambda import ROOT


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_building_twice_gives_identical_bytes(tmp_path, arch):
    zips = []
    for attempt in ("first", "second"):
        out = tmp_path / attempt / f"invocation-history-extension-{arch}.zip"
        subprocess.run(["sh", str(ROOT / "extension_src/build-layer.sh"), arch, str(out)], check=True)
        zips.append(out.read_bytes())
    assert zips[0] == zips[1]

    with zipfile.ZipFile(tmp_path / "first" / f"invocation-history-extension-{arch}.zip") as z:
        info = z.getinfo("extensions/invocation-history-extension")
        assert stat.S_IMODE(info.external_attr >> 16) == 0o755
        assert [i.filename for i in z.infolist()] == [
            "extensions/", "extensions/invocation-history-extension", "invocation-history-wrapper",
        ]  # fmt: skip
        assert stat.S_IMODE(z.getinfo("invocation-history-wrapper").external_attr >> 16) == 0o755
        elf = z.read(info.filename)
    machine = int.from_bytes(elf[18:20], "little")  # ELF e_machine
    assert elf[:4] == b"\x7fELF" and machine == {"x86_64": 62, "arm64": 183}[arch]


def test_unknown_architecture_is_refused(tmp_path):
    result = subprocess.run(
        ["sh", str(ROOT / "extension_src/build-layer.sh"), "mips", str(tmp_path / "x.zip")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2 and "architecture 'mips'" in result.stderr
