#!/usr/bin/env bash
# pack.sh DIR PATTERN ARCHIVE
#
# Packs the files under DIR whose name matches PATTERN (a find -name pattern) into ARCHIVE (gzip-compressed
# when it ends in .gz), paths relative to DIR; the converter's own .ferry-* files are left out. Nothing is done
# when ARCHIVE exists and no such file was written since (find -cnewer: a file written, renamed or touched
# after the archive). Prints "packed N" or "unchanged".
set -euo pipefail

dir=$1
pattern=$2
archive=$3
[ -d "$dir" ] || { echo "directory $dir does not exist on $(hostname)" >&2; exit 2; }
if [ -e "$archive" ] &&
   [ -z "$(find "$dir" -name '.ferry-*' -prune -o -type f -name "$pattern" -cnewer "$archive" -print -quit)" ]; then
    echo unchanged
    exit 0
fi
mkdir -p "$(dirname "$archive")"
compress=()
case $archive in *.gz) compress=(--gzip) ;; esac
tmp="$archive.tmp"
count=$(cd "$dir" && find . -name '.ferry-*' -prune -o -type f -name "$pattern" -print0 | tr -cd '\0' | wc -c)
(cd "$dir" && find . -name '.ferry-*' -prune -o -type f -name "$pattern" -print0 | sort -z |
    tar --create --null --files-from=- ${compress[@]+"${compress[@]}"} --file=-) >"$tmp"
mv "$tmp" "$archive"
echo "packed $count"
