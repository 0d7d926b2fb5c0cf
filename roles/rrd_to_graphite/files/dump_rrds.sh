#!/usr/bin/env bash
# dump_rrds.sh [--check] SRC DEST
#
# Dumps every RRD under SRC into DEST/<same relative path>.xml.gz (`rrdtool dump | gzip -c`): dump XML is
# readable on any CPU architecture. A dump is remade only when its RRD is newer (each dump carries the
# modification time its RRD had when the dump started), so a second run on an unchanged tree dumps nothing.
#
# An RRD that rrdtool cannot dump still gets a .xml.gz, holding the error (so not valid XML): the converter
# fails that file by name, counted against max_failed_files. Like a dump, it is made again once the RRD changes.
#
# Prints "FAILED <path>: <error>" per failed dump, then {"dumped": N, "failed": N, "unchanged": N}.
#
# --check writes nothing (DEST need not exist) and prints {"would_dump": N, "missing": N, "unchanged": N}: the
# RRDs a run would dump (no dump yet - missing - or one older than the RRD).
set -euo pipefail

check=false
if [ "${1:-}" = --check ]; then
    check=true
    shift
fi
src=$1
dest=$2
[ -d "$src" ] || { echo "RRD directory $src does not exist on $(hostname)" >&2; exit 2; }
if $check; then
    case $dest in /*) ;; *) dest=$PWD/$dest ;; esac
    would=0 missing=0 unchanged=0
    cd "$src"
    while IFS= read -r -d '' rrd; do
        rrd=${rrd#./}
        if ! [ -e "$dest/$rrd.xml.gz" ]; then
            missing=$((missing + 1))
            would=$((would + 1))
        elif [ "$rrd" -nt "$dest/$rrd.xml.gz" ]; then
            would=$((would + 1))
        else
            unchanged=$((unchanged + 1))
        fi
    done < <(find . -type f -name '*.rrd' -print0)
    printf '{"would_dump": %d, "missing": %d, "unchanged": %d}\n' "$would" "$missing" "$unchanged"
    exit 0
fi
command -v rrdtool >/dev/null || { echo "rrdtool (the command) is not installed on $(hostname)" >&2; exit 2; }
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
work=$(mktemp -d "$dest/.dump.XXXXXX")
trap 'rm -rf "$work"' EXIT

dumped=0 failed=0 unchanged=0
cd "$src"
while IFS= read -r -d '' rrd; do
    rrd=${rrd#./}
    out="$dest/$rrd.xml.gz"
    if [ -e "$out" ] && ! [ "$rrd" -nt "$out" ]; then
        unchanged=$((unchanged + 1))
        continue
    fi
    mkdir -p "$(dirname "$out")"
    touch -r "$rrd" "$work/stamp"   # the RRD's time before the dump: an update during it is dumped next run
    if rrdtool dump "$rrd" 2>"$work/error" | gzip -c >"$work/dump.gz"; then
        mv "$work/dump.gz" "$out"
        touch -r "$work/stamp" "$out"
        dumped=$((dumped + 1))
    else
        error=$(tr -s '\n' ' ' <"$work/error" | sed 's/ *$//')
        printf 'rrdtool dump failed: %s\n' "$error" | gzip -c >"$out"
        touch -r "$work/stamp" "$out"
        printf 'FAILED %s: %s\n' "$rrd" "$error"
        failed=$((failed + 1))
    fi
done < <(find . -type f -name '*.rrd' -print0 | sort -z)

printf '{"dumped": %d, "failed": %d, "unchanged": %d}\n' "$dumped" "$failed" "$unchanged"
