#!/usr/bin/env bash
# pack.sh [--check] DIR PATTERN ARCHIVE
#
# Packs the files under DIR whose name matches PATTERN (a find -name pattern) into ARCHIVE (gzip-compressed
# when it ends in .gz), paths relative to DIR; the converter's own .ferry-* files are left out. Nothing is done
# when ARCHIVE exists and no such file was written since (find -cnewer: a file written, renamed or touched
# after the archive). Prints {"packed": true|false, "files": N, "newer": N}: the files under DIR (all in the
# archive), and those written since the archive it replaces (all of them when there was none).
#
# --check writes nothing (DIR need not exist) and prints {"archive": true|false, "files": N, "newer": N}: the
# files under DIR, and those written since ARCHIVE (all of them when there is no ARCHIVE), which a run would
# pack anew.
set -euo pipefail

check=false
if [ "${1:-}" = --check ]; then
    check=true
    shift
fi
dir=$1
pattern=$2
archive=$3

# count [FIND-CONDITION...]: files under $dir matching the pattern (and the condition)
count() {
    (cd "$dir" && find . -name '.ferry-*' -prune -o -type f -name "$pattern" "$@" -print0 | tr -cd '\0' | wc -c)
}

if $check; then
    if ! [ -d "$dir" ]; then
        printf '{"archive": %s, "files": 0, "newer": 0}\n' "$([ -e "$archive" ] && echo true || echo false)"
        exit 0
    fi
    total=$(count)
    if [ -e "$archive" ]; then
        printf '{"archive": true, "files": %d, "newer": %d}\n' "$total" "$(count -cnewer "$archive")"
    else
        printf '{"archive": false, "files": %d, "newer": %d}\n' "$total" "$total"
    fi
    exit 0
fi

[ -d "$dir" ] || { echo "directory $dir does not exist on $(hostname)" >&2; exit 2; }
if [ -e "$archive" ] &&
   [ -z "$(find "$dir" -name '.ferry-*' -prune -o -type f -name "$pattern" -cnewer "$archive" -print -quit)" ]; then
    printf '{"packed": false, "files": %d, "newer": 0}\n' "$(count)"
    exit 0
fi
total=$(count)
newer=$total
if [ -e "$archive" ]; then
    newer=$(count -cnewer "$archive")
fi
mkdir -p "$(dirname "$archive")"
compress=()
case $archive in *.gz) compress=(--gzip) ;; esac
tmp="$archive.tmp"
(cd "$dir" && find . -name '.ferry-*' -prune -o -type f -name "$pattern" -print0 | sort -z |
    tar --create --null --files-from=- ${compress[@]+"${compress[@]}"} --file=-) >"$tmp"
mv "$tmp" "$archive"
printf '{"packed": true, "files": %d, "newer": %d}\n' "$total" "$newer"
