#!/usr/bin/env bash
# The OpenWrt recipe's release source: the tarball of a tag and its sha256
# for PKG_HASH. `git archive` with git's own gzip gives the same bytes for the
# same tag on any machine (git >= 2.38), so the hash can be checked by anyone.
#
#   cross/openwrt/release-source.sh TAG [OUT_DIR]    (OUT_DIR: dist)
#
# Writes OUT_DIR/hissrv-<version>.tar.gz (to upload with the release) and
# prints the recipe's PKG_SOURCE and PKG_HASH lines.
set -euo pipefail
cd "$(dirname "$0")/../.."

tag=${1:?usage: $0 TAG [OUT_DIR]}
out=${2:-dist}
version=$(git show "$tag:Cargo.toml" | sed -n 's/^version = "\(.*\)"/\1/p' | head -n 1)
mkdir -p "$out"
file="$out/hissrv-$version.tar.gz"
git -c tar.tar.gz.command="git archive gzip" archive --format=tar.gz \
  --prefix="hissrv-$version/" -o "$file" "$tag"
echo "PKG_SOURCE:=hissrv-$version.tar.gz"
echo "PKG_HASH:=$(sha256sum "$file" | cut -d ' ' -f 1)"
