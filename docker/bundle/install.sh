#!/bin/sh
# install.sh: install this hftlive bundle on a host with Docker and no network.
#
#   sh install.sh [--profile live+sim|live|mock] [--dir DIR] [--timeout SECONDS]
#   sh install.sh --verify
#
# Every file is checked against SHA256SUMS before anything is loaded; a file that differs stops
# the install and is named. Then the images are loaded (skipped when Docker already has exactly
# these image IDs) and checked against images.txt, compose.yaml and channel.toml are copied to
# DIR, DIR/.env is created from .env.example only when absent (an upgrade keeps your settings),
# the chosen profile is started, and the script waits until every container is healthy.
# Installing the same bundle again changes nothing; a newer bundle upgrades the images.
# Needs: a POSIX shell, docker with the compose plugin 2.20 or later, and sha256sum, shasum or
# openssl. Exit status: 0 done, 1 failed, 2 bad usage.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" >/dev/null && pwd)
profile=live+sim
verify_only=no
timeout=300
if [ "$(id -u)" = 0 ]; then dir=/opt/hftlive; else dir=${HOME:-.}/hftlive; fi
dir=${HFTLIVE_HOME:-$dir}

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }
usage() { printf 'install: %s\nusage: sh install.sh [--profile live+sim|live|mock] [--dir DIR] [--timeout SECONDS] | --verify\n' "$*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case $1 in
    --verify) verify_only=yes ;;
    --profile) [ $# -ge 2 ] || usage "--profile needs a value"; profile=$2; shift ;;
    --profile=*) profile=${1#*=} ;;
    --dir) [ $# -ge 2 ] || usage "--dir needs a value"; dir=$2; shift ;;
    --dir=*) dir=${1#*=} ;;
    --timeout) [ $# -ge 2 ] || usage "--timeout needs a value"; timeout=$2; shift ;;
    --timeout=*) timeout=${1#*=} ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage "unknown argument '$1'" ;;
  esac
  shift
done
case $profile in
  live+sim|sim) profile=live+sim; profiles="--profile live --profile sim"; running="connector service simulator"; others="service-mock" ;;
  live) profiles="--profile live"; running="connector service"; others="service-mock simulator" ;;
  mock) profiles="--profile mock"; running="service-mock"; others="connector service simulator" ;;
  *) usage "--profile must be live+sim, live or mock, not '$profile'" ;;
esac
case $timeout in ''|*[!0-9]*) usage "--timeout must be a whole number of seconds, not '$timeout'" ;; esac

# --- 1. verify, before anything is loaded -------------------------------------------------------
# From stdin: sha256sum escapes a file name holding a backslash in its output.
if command -v sha256sum >/dev/null 2>&1; then digest() { sha256sum < "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then digest() { shasum -a 256 < "$1" | cut -d' ' -f1; }
elif command -v openssl >/dev/null 2>&1; then digest() { openssl dgst -sha256 -r < "$1" | cut -d' ' -f1; }
else die "no sha256sum, shasum or openssl on this host: cannot verify the bundle"; fi

[ -f "$here/SHA256SUMS" ] || die "$here/SHA256SUMS is missing: this is not a whole hftlive bundle"
checked=0 bad=0 listed=" "
while read -r sum name || [ -n "$sum" ]; do
  [ -n "$name" ] || continue
  name=${name#\*}
  case $name in /*|*..*) die "SHA256SUMS names '$name', outside the bundle" ;; esac
  listed="$listed$name "
  if [ ! -f "$here/$name" ]; then
    printf 'install: MISSING  %s\n' "$name" >&2; bad=$((bad + 1))
  elif [ "$(digest "$here/$name")" != "$sum" ]; then
    printf 'install: DIFFERS  %s\n' "$name" >&2; bad=$((bad + 1))
  fi
  checked=$((checked + 1))
done < "$here/SHA256SUMS"
# What the installer reads must be listed, and nothing may be in the bundle unlisted.
for name in images.txt images.tar.gz compose.yaml .env.example channel.toml README manifest.json; do
  case $listed in *" $name "*) ;; *) printf 'install: UNLISTED %s\n' "$name" >&2; bad=$((bad + 1)) ;; esac
done
present=$(find "$here" ! -type d ! -path "$here/SHA256SUMS")
while IFS= read -r path; do
  path=${path#"$here"/}
  case $listed in *" $path "*) ;; *) printf 'install: EXTRA    %s\n' "$path" >&2; bad=$((bad + 1)) ;; esac
done <<EOF
$present
EOF
[ "$bad" -eq 0 ] || die "$bad files do not match SHA256SUMS: the bundle was altered or cut short; nothing was loaded"
say "verified $checked files against SHA256SUMS (its sha256: $(digest "$here/SHA256SUMS"))"
[ "$verify_only" = no ] || exit 0

# --- 2. images -------------------------------------------------------------------------------------
docker version >/dev/null 2>&1 || die "docker does not answer (is the engine running, and may this user use it?)"
# compose.yaml uses `depends_on: required: false`, which needs compose 2.20.
version=$(docker compose version --short 2>/dev/null) || die "the docker compose plugin (2.20 or later) is not installed"
version=${version#v}
major=${version%%.*} rest=${version#*.}
minor=${rest%%.*}
case $major$minor in *[!0-9]*|'') die "cannot read the compose version '$version'" ;; esac
[ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 20 ]; } || die "docker compose $version is too old: 2.20 or later is needed"

image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
missing=0
while read -r ref id; do
  [ "$(image_id "$ref")" = "$id" ] || missing=$((missing + 1))
done < "$here/images.txt"
if [ "$missing" -eq 0 ]; then
  say "images: Docker already has every image of this bundle; nothing to load"
else
  started=$(date +%s)
  say "images: loading $(wc -l < "$here/images.txt" | tr -d ' ') images from images.tar.gz ($(($(wc -c < "$here/images.tar.gz") / 1048576)) MiB)"
  docker load --quiet --input "$here/images.tar.gz" >/dev/null || die "docker load failed"
  say "images: loaded in $(($(date +%s) - started)) s"
fi
while read -r ref id; do
  found=$(image_id "$ref")
  [ "$found" = "$id" ] || die "image $ref is '${found:-absent}' after loading; the bundle says $id"
done < "$here/images.txt"
say "images: every image ID matches images.txt"

# --- 3. files and settings -----------------------------------------------------------------------
mkdir -p "$dir" || die "cannot create $dir"
for name in compose.yaml channel.toml .env.example README manifest.json; do
  if ! cmp -s "$here/$name" "$dir/$name" 2>/dev/null; then
    { cp "$here/$name" "$dir/$name.new" && mv "$dir/$name.new" "$dir/$name"; } || die "cannot write $dir/$name"
    say "wrote $dir/$name"
  fi
done
if [ -e "$dir/.env" ]; then
  say "kept your settings in $dir/.env"
else
  (umask 077 && cp "$here/.env.example" "$dir/.env") || die "cannot write $dir/.env"
  say "created $dir/.env from .env.example (the defaults); to change a setting, edit it and run this again"
fi

# --- 4. start and wait for health ------------------------------------------------------------------
setting() { sed -n "s/^$1=//p" "$dir/.env" | tail -n 1 | tr -d "\"' "; }
exchange=$(setting HFTLIVE_EXCHANGE)
case $profile in
  live+sim) HFTLIVE_EXCHANGE=simulator; export HFTLIVE_EXCHANGE ;;
  live) [ "$exchange" != simulator ] || die "HFTLIVE_EXCHANGE=simulator in $dir/.env needs --profile live+sim" ;;
esac
project() { docker compose --project-directory "$dir" --file "$dir/compose.yaml" --env-file "$dir/.env" "$@"; }
# The same command for the operator, with this profile and exchange: logs, down, ps.
case $profile in live+sim) how="HFTLIVE_EXCHANGE=simulator " ;; *) how="" ;; esac
how="${how}docker compose --project-directory $dir $profiles"
# Only one profile publishes the page's port: stop the others' containers first.
# shellcheck disable=SC2086  # word splitting of the service list is intended
project --profile mock --profile live --profile sim rm --stop --force $others >/dev/null 2>&1 || true
say "starting profile $profile (exchange ${HFTLIVE_EXCHANGE:-${exchange:-bybit}})"
# shellcheck disable=SC2086
project $profiles up --detach $running || die "compose could not start profile $profile (see: $how logs)"

# Healthy means: every service of the profile has a container, and each reports healthy.
started=$(date +%s) next_report=10
while :; do
  waiting=""
  for service in $running; do
    # shellcheck disable=SC2086
    containers=$(project $profiles ps --all --quiet "$service" 2>/dev/null) || containers=""
    [ -n "$containers" ] || { waiting="$waiting $service:absent"; continue; }
    for container in $containers; do
      state=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' \
        "$container" 2>/dev/null) || state=gone
      [ "$state" = healthy ] || waiting="$waiting $service:$state"
    done
  done
  [ -n "$waiting" ] || break
  elapsed=$(($(date +%s) - started))
  [ "$elapsed" -lt "$timeout" ] || die "not healthy after ${timeout} s:$waiting (see: $how logs)"
  if [ "$elapsed" -ge "$next_report" ]; then
    say "waiting for health (${elapsed} s):$waiting"; next_report=$((elapsed + 10))
  fi
  sleep 1
done
port=$(setting HFTLIVE_PORT)
say "healthy after $(($(date +%s) - started)) s: http://127.0.0.1:${port:-8000}/  (profile $profile; stop with: $how down)"
