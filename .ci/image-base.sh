#!/usr/bin/env bash
# Makes sure podman has the Dockerfile's base image (its FROM, python:3.11-slim-bookworm), for
# tests/test_image.py. These machines reach no container registry, so when podman lacks it, a
# stand-in is built from Debian's own packages (debootstrap bookworm with Debian's Python 3.11,
# pip and CA certificates, about a minute) and stored under that name in podman's storage, where
# every later run and every clone on this machine finds it. An image of that name that is not
# our stand-in (the real one, pulled where a registry answers) is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "image-base.sh: $*" >&2; }
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/.ci/containers.conf}

base=$(awk '$1 == "FROM" { print $2; exit }' Dockerfile)
# Raise it when the recipe below changes: an older stand-in is then rebuilt.
recipe=1

ours() { podman image inspect --format '{{index .Config.Labels "dataservice.stand-in"}}' "$base" 2>/dev/null; }
usable() { podman image exists "$base" && { label=$(ours); [[ -z $label || $label == "$recipe" ]]; }; }

usable && exit 0
# One build at a time on the machine: two clones' test runs may both find it missing.
exec 9>"${TMPDIR:-/tmp}/dataservice-image-base.lock"
flock 9
usable && exit 0

if [[ $EUID -ne 0 ]] || ! command -v debootstrap >/dev/null; then
  say "podman has no $base and no registry is reachable: as root, with debootstrap installed"
  say "(apt-get install debootstrap), this script builds a stand-in from Debian's packages."
  exit 1
fi
say "building a stand-in for $base from Debian bookworm's packages (about a minute)"
root=$(mktemp -d /var/tmp/dataservice-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase \
  --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates,netbase,tzdata \
  bookworm "$root" http://deb.debian.org/debian >/dev/null
# As in the official image, pip installs as root into the system Python (Debian marks it
# externally managed otherwise). No package lists or downloaded packages stay in the image.
rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/*
tar --numeric-owner -C "$root" -c . | podman import --quiet \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
  --change "LABEL dataservice.stand-in=$recipe" - "docker.io/library/$base" >/dev/null
say "done: $base is a stand-in built from Debian's packages (Debian's Python 3.11 in /usr/bin)"
