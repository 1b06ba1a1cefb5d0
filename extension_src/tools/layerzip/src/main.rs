//! layerzip writes a Lambda layer zip whose bytes depend only on its inputs: entries in the order given, each
//! parent directory as its own entry first (so unzip creates it with a known mode), a fixed modification time,
//! fixed modes, and `miniz_oxide`'s deflate at a fixed level (pinned by Cargo.lock). The same files give the same zip
//! on every machine.
//!
//! Usage: layerzip -o layer.zip zip/path=local/file[:octal mode] ...   (mode 0644 when not given)
//!
//! Only what a layer needs is written: no zip64 (every size and offset below 4 GiB), no extra fields, no comments.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: layerzip -o layer.zip zip/path=local/file[:mode] ...";
/// 1980-01-01 00:00, the zip format's earliest date, in MS-DOS form: nothing in the archive says when it was built.
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = (1 << 5) | 1;
/// Version 2.0 of the format: needed for deflate and directories, and the highest feature used here.
const VERSION_NEEDED: u16 = 20;
/// "Made by" Unix, so unzip and Lambda apply the mode in the upper half of the external attributes.
const VERSION_MADE_BY: u16 = (3 << 8) | VERSION_NEEDED;
const STORED: u16 = 0;
const DEFLATED: u16 = 8;
/// `miniz_oxide`'s highest level; the binary is compressed once per build, so its cost does not matter.
const DEFLATE_LEVEL: u8 = 10;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const MSDOS_DIRECTORY: u32 = 0x10;

#[derive(Debug)]
struct Entry {
    name: String,
    source: PathBuf,
    mode: u32,
}

fn parse_entry(arg: &str) -> Result<Entry, String> {
    let (name, rest) = arg
        .split_once('=')
        .filter(|(name, rest)| !name.is_empty() && !rest.is_empty())
        .ok_or_else(|| format!("entry {arg:?}: want zip/path=local/file[:mode]"))?;
    if name.starts_with('/') || name.ends_with('/') || name.split('/').any(|part| part.is_empty() || part == "..") {
        return Err(format!("entry {arg:?}: the zip path must be relative, without empty parts or '..'"));
    }
    let (source, mode) = match rest.rsplit_once(':') {
        Some((source, mode)) if !source.is_empty() => {
            let mode = u32::from_str_radix(mode, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| format!("entry {arg:?}: mode {mode:?} is not an octal file mode"))?;
            (source, mode)
        }
        _ => (rest, 0o644),
    };
    Ok(Entry {
        name: name.to_owned(),
        source: PathBuf::from(source),
        mode,
    })
}

/// The bytes of the archive for `entries`, read from their sources.
fn archive(entries: &[Entry]) -> Result<Vec<u8>, String> {
    let mut zip = ZipBuilder::default();
    let mut directories = HashSet::new();
    for entry in entries {
        let mut parents: Vec<&str> = entry.name.match_indices('/').map(|(at, _)| &entry.name[..=at]).collect();
        parents.retain(|dir| directories.insert(dir.to_string()));
        for dir in parents {
            zip.add(dir, S_IFDIR | 0o755, &[])?;
        }
        let data = fs::read(&entry.source).map_err(|e| format!("add {}: read {}: {e}", entry.name, entry.source.display()))?;
        zip.add(&entry.name, S_IFREG | entry.mode, &data)?;
    }
    zip.finish()
}

#[derive(Default)]
struct ZipBuilder {
    out: Vec<u8>,
    central_directory: Vec<u8>,
    count: u16,
}

impl ZipBuilder {
    fn add(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<(), String> {
        let too_big = || format!("add {name}: the layer zip is limited to 4 GiB and 65535 entries (no zip64)");
        let is_dir = mode & S_IFDIR == S_IFDIR;
        let deflated = if is_dir {
            Vec::new()
        } else {
            miniz_oxide::deflate::compress_to_vec(data, DEFLATE_LEVEL)
        };
        // Deflate can grow incompressible data; such a file is stored as it is, as zip tools do.
        let (method, body) = if is_dir || deflated.len() >= data.len() {
            (STORED, data)
        } else {
            (DEFLATED, &deflated[..])
        };
        let offset = u32::try_from(self.out.len()).map_err(|_| too_big())?;
        let compressed_size = u32::try_from(body.len()).map_err(|_| too_big())?;
        let size = u32::try_from(data.len()).map_err(|_| too_big())?;
        let name_len = u16::try_from(name.len()).map_err(|_| too_big())?;
        self.count = self.count.checked_add(1).ok_or_else(too_big)?;
        // Bit 11: the name is UTF-8 (set only when it is not plain ASCII, as most writers do).
        let flags: u16 = if name.is_ascii() { 0 } else { 1 << 11 };
        let crc = crc32(data);

        let local = &mut self.out;
        put32(local, 0x0403_4b50);
        for field in [VERSION_NEEDED, flags, method, DOS_TIME, DOS_DATE] {
            put16(local, field);
        }
        for field in [crc, compressed_size, size] {
            put32(local, field);
        }
        put16(local, name_len);
        put16(local, 0); // extra field length
        local.extend_from_slice(name.as_bytes());
        local.extend_from_slice(body);

        let central = &mut self.central_directory;
        put32(central, 0x0201_4b50);
        for field in [VERSION_MADE_BY, VERSION_NEEDED, flags, method, DOS_TIME, DOS_DATE] {
            put16(central, field);
        }
        for field in [crc, compressed_size, size] {
            put32(central, field);
        }
        for field in [name_len, 0, 0, 0, 0] {
            put16(central, field); // name, extra field and comment lengths, disk number, internal attributes
        }
        put32(central, (mode << 16) | if is_dir { MSDOS_DIRECTORY } else { 0 });
        put32(central, offset);
        central.extend_from_slice(name.as_bytes());
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<u8>, String> {
        let too_big = || "the layer zip is limited to 4 GiB (no zip64)".to_string();
        let directory_offset = u32::try_from(self.out.len()).map_err(|_| too_big())?;
        let directory_size = u32::try_from(self.central_directory.len()).map_err(|_| too_big())?;
        self.out.append(&mut self.central_directory);
        let end = &mut self.out;
        put32(end, 0x0605_4b50);
        for field in [0, 0, self.count, self.count] {
            put16(end, field); // this disk, the directory's disk, entries on this disk, entries in all
        }
        put32(end, directory_size);
        put32(end, directory_offset);
        put16(end, 0); // comment length
        Ok(self.out)
    }
}

fn put16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), the checksum the zip format requires.
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i: u32 = 0;
        while i < 256 {
            let mut c = i;
            let mut bit = 0;
            while bit < 8 {
                c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                bit += 1;
            }
            table[i as usize] = c;
            i += 1;
        }
        table
    };
    !data
        .iter()
        .fold(!0u32, |crc, &byte| TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8))
}

/// Writes beside `out` and renames, so an interrupted build never leaves a truncated zip under the final name.
fn write_atomically(out: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = out.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, out));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(format!("write {}: {e}", out.display()));
    }
    Ok(())
}

fn run(args: &[String]) -> Result<(), (u8, String)> {
    let usage = || (2, USAGE.to_string());
    let (out, specs) = match args {
        [flag, out, specs @ ..] if flag == "-o" && !specs.is_empty() => (Path::new(out), specs),
        _ => return Err(usage()),
    };
    let entries = specs
        .iter()
        .map(|spec| parse_entry(spec))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (2, e))?;
    let mut names = HashSet::new();
    if let Some(duplicate) = entries.iter().find(|e| !names.insert(e.name.as_str())) {
        return Err((2, format!("entry {:?} is given twice", duplicate.name)));
    }
    let bytes = archive(&entries).map_err(|e| (1, e))?;
    write_atomically(out, &bytes).map_err(|e| (1, e))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("layerzip: {message}");
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn entries_take_a_mode_or_default_to_0644() {
        let e = parse_entry("a/b=local/file:0755").unwrap();
        assert_eq!(
            (e.name.as_str(), e.source.as_path(), e.mode),
            ("a/b", Path::new("local/file"), 0o755)
        );
        assert_eq!(parse_entry("b=c").unwrap().mode, 0o644);
        assert!(parse_entry("b=c:9").unwrap_err().contains("not an octal file mode"));
        for bad in ["=c", "b=", "b", "/abs=c", "a//b=c", "../b=c", "dir/=c"] {
            assert!(parse_entry(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn archive_lays_out_parents_first_with_fixed_times_and_modes() {
        let dir = std::env::temp_dir().join(format!("layerzip-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (bin, script) = (dir.join("bin"), dir.join("script"));
        fs::write(&bin, vec![7u8; 10_000]).unwrap();
        fs::write(&script, b"#!/bin/sh\n").unwrap();
        let entries = [
            Entry {
                name: "extensions/ext".into(),
                source: bin,
                mode: 0o755,
            },
            Entry {
                name: "wrapper".into(),
                source: script,
                mode: 0o755,
            },
        ];
        let first = archive(&entries).unwrap();
        assert_eq!(first, archive(&entries).unwrap());
        fs::remove_dir_all(&dir).unwrap();

        let names: Vec<&[u8]> = central_entries(&first).iter().map(|e| e.0).collect();
        assert_eq!(names, [&b"extensions/"[..], b"extensions/ext", b"wrapper"]);
        for (name, external, method, date) in central_entries(&first) {
            let want = if name.ends_with(b"/") {
                ((S_IFDIR | 0o755) << 16) | MSDOS_DIRECTORY
            } else {
                (S_IFREG | 0o755) << 16
            };
            assert_eq!(external, want);
            assert_eq!(date, DOS_DATE);
            // the repetitive binary is deflated; the 10-byte script would grow, so it is stored
            let want_method = if name == b"extensions/ext" { DEFLATED } else { STORED };
            assert_eq!(method, want_method, "{}", String::from_utf8_lossy(name));
        }
    }

    /// (name, external attributes, method, date) of each central directory entry, read back from the archive.
    fn central_entries(zip: &[u8]) -> Vec<(&[u8], u32, u16, u16)> {
        let u16_at = |at: usize| u16::from_le_bytes([zip[at], zip[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes([zip[at], zip[at + 1], zip[at + 2], zip[at + 3]]);
        let end = zip.len() - 22;
        assert_eq!(u32_at(end), 0x0605_4b50);
        let (count, mut at) = (u16_at(end + 10), u32_at(end + 16) as usize);
        let mut entries = Vec::new();
        for _ in 0..count {
            assert_eq!(u32_at(at), 0x0201_4b50);
            let name_len = u16_at(at + 28) as usize;
            entries.push((&zip[at + 46..at + 46 + name_len], u32_at(at + 38), u16_at(at + 10), u16_at(at + 14)));
            at += 46 + name_len;
        }
        entries
    }
}
