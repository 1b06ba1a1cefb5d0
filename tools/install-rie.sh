#!/bin/sh
# Installs AWS's Lambda Runtime Interface Emulator (RIE) as $1/aws-lambda-rie (default .local/bin).
#
# First choice: `go install` at RIE_COMMIT (the commit the project's design notes name). When the Go module proxy
# refuses that module (it answers "403 Forbidden: This module version is not available" here),
# fall back to the same emulator as AWS ships it inside the aws-sam-cli wheel on PyPI
# (samcli/local/rapid/aws-lambda-rie-<arch>, a static Go build of the RIE), checked by SHA-256.
set -eu

BIN_DIR=${1:-.local/bin}
RIE_MODULE=github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie
RIE_COMMIT=f9bf927dfc8a
SAM_CLI_VERSION=1.170.0
SHA256_x86_64=6b1e686e62ab2baf5759c412c4864276ef2a88b094fca53ec070637ccba9b9a5
SHA256_arm64=ec2e5d09633d853834c008b1ef264bf834b258a94d551d2b2074966494b39a21

mkdir -p "$BIN_DIR"
BIN_DIR=$(cd "$BIN_DIR" && pwd)
TARGET="$BIN_DIR/aws-lambda-rie"  # make decides when to run this (the binary is older than this script)

if GOBIN="$BIN_DIR" GOFLAGS=-mod=mod go install "$RIE_MODULE@$RIE_COMMIT" 2>"$BIN_DIR/.rie-go-install.log"; then
    echo "installed the RIE with go install @$RIE_COMMIT"
    exit 0
fi
echo "go install $RIE_MODULE@$RIE_COMMIT failed: $(tail -n 1 "$BIN_DIR/.rie-go-install.log")"
echo "falling back to the RIE in the aws-sam-cli $SAM_CLI_VERSION wheel from PyPI"

case "$(uname -m)" in
    x86_64 | amd64) ARCH=x86_64; WANT=$SHA256_x86_64 ;;
    aarch64 | arm64) ARCH=arm64; WANT=$SHA256_arm64 ;;
    *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$WORK" "aws-sam-cli==$SAM_CLI_VERSION"
"$PYTHON" - "$WORK" "$ARCH" "$TARGET.tmp" <<'PY'
import glob, shutil, sys, zipfile
work, arch, out = sys.argv[1:]
(wheel,) = glob.glob(f"{work}/aws_sam_cli-*.whl")
with zipfile.ZipFile(wheel) as z, z.open(f"samcli/local/rapid/aws-lambda-rie-{arch}") as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
GOT=$(sha256sum "$TARGET.tmp" | cut -d' ' -f1)
if [ "$GOT" != "$WANT" ]; then
    echo "aws-lambda-rie-$ARCH from aws-sam-cli $SAM_CLI_VERSION has SHA-256 $GOT, expected $WANT" >&2
    rm -f "$TARGET.tmp"
    exit 1
fi
chmod 0755 "$TARGET.tmp"
mv "$TARGET.tmp" "$TARGET"
echo "installed $TARGET (SHA-256 $GOT)"
