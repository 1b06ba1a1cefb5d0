#!/bin/sh
# Builds the extension, a static musl binary, for one architecture:
#     sh build-layer.sh <x86_64|arm64> <output.zip>           the layer zip (make layer, the CDK construct)
#     sh build-layer.sh --binary <x86_64|arm64> <output>      the extension binary alone (make build, the Dockerfile)
#     sh build-layer.sh --add-targets [x86_64|arm64 ...]      rustup target add what is missing (all by default)
# The only place the build flags live: make, the construct's local and Docker builds and the container image all
# run this script, so every path gives the same bytes from the same source and Rust release.
# CARGO_TARGET_DIR: where cargo keeps its work (make and the construct pass extension_src/target: incremental). Default:
# a temporary directory, removed afterwards. It does not change the bytes: its path is remapped like the others.
set -eu
USAGE="usage: build-layer.sh [--binary] <x86_64|arm64> <output> | --add-targets [x86_64|arm64 ...]"

rust_target() {
    case "$1" in
        x86_64) echo x86_64-unknown-linux-musl ;;
        arm64) echo aarch64-unknown-linux-musl ;;
        *) echo "build-layer.sh: architecture '$1' is not x86_64 or arm64" >&2; exit 2 ;;
    esac
}

# The standard library for TARGET ships with the toolchain as a rustup component: present or not.
has_target() {
    [ -d "$(rustc --print sysroot)/lib/rustlib/$1/lib" ]
}

CALLER_DIR=$(pwd)
cd "$(dirname "$0")"
SRC=$(pwd -P)

if [ "${1:-}" = --add-targets ]; then
    shift
    [ $# -gt 0 ] || set -- x86_64 arm64
    missing=
    for arch in "$@"; do
        target=$(rust_target "$arch")
        has_target "$target" || missing="$missing $target"
    done
    [ -z "$missing" ] && exit 0
    if ! command -v rustup >/dev/null; then
        echo "build-layer.sh: the toolchain lacks$missing and rustup is not on PATH to add them" >&2
        exit 3
    fi
    rustup target add $missing
    exit 0
fi

MODE=zip
if [ "${1:-}" = --binary ]; then
    MODE=binary
    shift
fi
ARCH=${1:?$USAGE}
OUT=${2:?$USAGE}
TARGET=$(rust_target "$ARCH")
case "$OUT" in /*) ;; *) OUT="$CALLER_DIR/$OUT" ;; esac
if ! has_target "$TARGET"; then
    echo "build-layer.sh: the Rust standard library for $TARGET is not installed:" \
        "run \`sh $SRC/build-layer.sh --add-targets $ARCH\` (or \`make rust-targets\`)" >&2
    exit 3
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TARGET_DIR=${CARGO_TARGET_DIR:-$WORK/target}
mkdir -p "$TARGET_DIR"
TARGET_DIR=$(cd "$TARGET_DIR" && pwd -P)

# Paths that rustc could write into the binary (panic locations, file!() in dependencies), each mapped to a fixed
# name; the last matching prefix wins, so the target dir, often inside the source dir, comes last.
remap() {
    for dir in "$1" "$(cd "$1" 2>/dev/null && pwd -P || echo "$1")"; do
        printf ' --remap-path-prefix=%s=%s' "$dir" "$2"
    done
}
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
RUSTUP_HOME_DIR=${RUSTUP_HOME:-$HOME/.rustup}
REMAP="$(remap "$SRC" /src)$(remap "$CARGO_HOME_DIR" /cargo)$(remap "$RUSTUP_HOME_DIR" /rustup)$(remap "$TARGET_DIR" /target)"

# Reproducible and static: the locked dependency versions; rust-lld from the toolchain links both architectures
# (no C cross-compiler, and no host linker whose version would change the bytes); musl's C runtime is linked in;
# symbols stripped. RUSTFLAGS replaces any the caller's environment or cargo config would add. The release
# profile (size-first) is in Cargo.toml. Build scripts and proc macros run on the build machine and are not affected.
# On x86_64, httparse's scalar parser: its SIMD one detects the CPU at the first parse (the registration's answer, on
# the start path) with eight `cpuid`s, each an exit to the hypervisor in a VM: 40 us on this machine. The heads
# Lambda's APIs send are a few hundred bytes, where SIMD gains nothing measurable. arm64's NEON is chosen at build time.
CFG=
[ "$ARCH" = x86_64 ] && CFG=' --cfg httparse_disable_simd="1"'
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
RUSTFLAGS="-C target-feature=+crt-static$CFG$REMAP" \
CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
CARGO_PROFILE_RELEASE_STRIP=symbols \
CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo build --quiet --release --locked --target "$TARGET" --target-dir "$TARGET_DIR" \
        --bin invocation-history-extension
BINARY="$TARGET_DIR/$TARGET/release/invocation-history-extension"

if [ "$MODE" = binary ]; then
    mkdir -p "$(dirname "$OUT")"
    cp "$BINARY" "$OUT.tmp"
    chmod 0755 "$OUT.tmp"
    mv -f "$OUT.tmp" "$OUT"
    exit 0
fi

# The zip tool runs on the build machine: built for the host, in the same target dir, without the flags above.
env -u RUSTFLAGS cargo build --quiet --release --locked --manifest-path tools/layerzip/Cargo.toml \
    --target-dir "$TARGET_DIR"
"$TARGET_DIR/release/layerzip" -o "$OUT" \
    "extensions/invocation-history-extension=$BINARY:0755" \
    "invocation-history-wrapper=wrapper/invocation-history-wrapper:0755"
