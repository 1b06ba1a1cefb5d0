"""`extension_src/build-layer.sh` (used by `make build`, `make layer`, the CDK construct and the container image) is
reproducible: a cold build in a fresh cargo target dir gives the bytes of make's incremental one, and no path of the
build machine is in the binary."""

from __future__ import annotations

import os
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from tools.local_lambda import ROOT

BUILD_LAYER = ROOT / "extension_src/build-layer.sh"
MAKE_TARGET_DIR = ROOT / "extension_src/target"
ELF_MACHINE = {"x86_64": 62, "arm64": 183}
PT_INTERP = 3


def build(*args: str, target_dir: Path) -> None:
    subprocess.run(["sh", str(BUILD_LAYER), *args], check=True, env={**os.environ, "CARGO_TARGET_DIR": str(target_dir)})


def _u(elf: bytes, at: int, size: int) -> int:
    return int.from_bytes(elf[at:at + size], "little")


def program_header_types(elf: bytes) -> list[int]:
    """The p_type of each program header of a 64-bit little-endian ELF file."""
    offset, size, count = _u(elf, 32, 8), _u(elf, 54, 2), _u(elf, 56, 2)
    return [_u(elf, offset + i * size, 4) for i in range(count)]


def section_names(elf: bytes) -> set[str]:
    """The section names of a 64-bit little-endian ELF file."""
    offset, size, count, names_index = _u(elf, 40, 8), _u(elf, 58, 2), _u(elf, 60, 2), _u(elf, 62, 2)
    headers = [elf[offset + i * size:offset + (i + 1) * size] for i in range(count)]
    names_at = _u(headers[names_index], 24, 8)
    return {elf[names_at + _u(h, 0, 4):].split(b"\0", 1)[0].decode() for h in headers}


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_building_twice_gives_identical_bytes(tmp_path, arch):
    # GIVEN make's incremental build and a cold one in a fresh target dir
    warm, cold = tmp_path / "warm" / f"layer-{arch}.zip", tmp_path / "cold" / f"layer-{arch}.zip"
    build(arch, str(warm), target_dir=MAKE_TARGET_DIR)
    build(arch, str(cold), target_dir=tmp_path / "fresh-target")
    # THEN the zips are the same bytes
    assert warm.read_bytes() == cold.read_bytes()

    # AND the layout is Lambda's: the extension executable in extensions/, the wrapper at the root
    with zipfile.ZipFile(warm) as z:
        assert [i.filename for i in z.infolist()] == [
            "extensions/", "extensions/invocation-history-extension", "invocation-history-wrapper",
        ]  # fmt: skip
        for info in z.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert stat.S_IMODE(info.external_attr >> 16) == 0o755, info.filename
        assert stat.S_ISDIR(z.getinfo("extensions/").external_attr >> 16)
        elf = z.read("extensions/invocation-history-extension")
        assert z.read("invocation-history-wrapper") == (ROOT / "extension_src/wrapper/invocation-history-wrapper").read_bytes()
    # AND the extension is a static binary for the architecture (no program interpreter: runs on any Lambda runtime)
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == ELF_MACHINE[arch]
    assert PT_INTERP not in program_header_types(elf)
    # AND no path of this machine is in it: source, target dirs, cargo's and rustup's homes are remapped
    home = Path.home()
    machine_paths = {str(ROOT), str(tmp_path), str(MAKE_TARGET_DIR), str(home),
                     os.environ.get("CARGO_HOME", str(home / ".cargo")), os.environ.get("RUSTUP_HOME", str(home / ".rustup"))}
    for path in machine_paths:
        assert path.encode() not in elf, path
    # AND it is stripped: no symbol table, no debug sections
    sections = section_names(elf)
    assert ".text" in sections and ".symtab" not in sections
    assert not [name for name in sections if name.startswith(".debug")]


def test_binary_alone_is_the_one_in_the_layer(tmp_path):
    # GIVEN the binary make build installs and the layer zip of the same architecture
    build("--binary", "x86_64", str(tmp_path / "extension"), target_dir=MAKE_TARGET_DIR)
    build("x86_64", str(tmp_path / "layer.zip"), target_dir=MAKE_TARGET_DIR)
    # THEN they carry the same bytes, executable
    with zipfile.ZipFile(tmp_path / "layer.zip") as z:
        assert z.read("extensions/invocation-history-extension") == (tmp_path / "extension").read_bytes()
    assert stat.S_IMODE((tmp_path / "extension").stat().st_mode) == 0o755


@pytest.mark.parametrize("args", [["mips"], ["--binary", "mips"], ["--add-targets", "mips"]])
def test_unknown_architecture_is_refused(tmp_path, args):
    result = subprocess.run(["sh", str(BUILD_LAYER), *args, str(tmp_path / "x.zip")], capture_output=True, text=True)
    assert result.returncode == 2 and "architecture 'mips' is not x86_64 or arm64" in result.stderr
    assert not (tmp_path / "x.zip").exists()
