#!/usr/bin/env bash
# install_whisper.sh FROM TO OWNER GROUP FILL
#
# Installs the whisper files received in FROM (converted on the NAV 3 host) into Carbon's storage TO. Only
# files written in FROM since the last install are looked at (FROM/.ferry-installed marks it), so a second run
# with nothing new received does nothing.
#   - a file missing in TO is copied there (through a temporary name, then renamed), owned by OWNER:GROUP
#     (when given), as are the directories created for it;
#   - a file already in TO (Carbon writes it, or an earlier conversion) is never overwritten: FILL (the
#     command whisper-fill, run with --lock) copies into it only the points it lacks. Without FILL the file is
#     left as it is and listed.
# Prints "NOT MERGED <path>" per file left as it is, then {"created": N, "merged": N, "not_merged": N}.
set -euo pipefail

from=$1
to=$2
owner=$3
group=$4
fill=$5
[ -d "$from" ] || { echo "directory $from does not exist on $(hostname)" >&2; exit 2; }
mkdir -p "$to"
chown_spec=${owner}${group:+:$group}

make_dirs() {  # the parents of TO/$1 that are missing, each owned like the files
    local dir=$to parts part
    IFS=/ read -r -a parts <<<"$(dirname "$1")"
    for part in "${parts[@]}"; do
        if [ -z "$part" ] || [ "$part" = . ]; then
            continue
        fi
        dir="$dir/$part"
        if [ ! -d "$dir" ]; then
            mkdir -m 0755 "$dir"
            [ -z "$chown_spec" ] || chown "$chown_spec" "$dir"
        fi
    done
}

marker="$from/.ferry-installed"
newer=()
[ ! -e "$marker" ] || newer=(-cnewer "$marker")
touch "$marker.new"   # files received while this runs are looked at again next time

created=0 merged=0 not_merged=0
cd "$from"
while IFS= read -r -d '' file; do
    file=${file#./}
    target="$to/$file"
    if [ ! -e "$target" ]; then
        make_dirs "$file"
        cp -p "$file" "$target.ferry-tmp"
        [ -z "$chown_spec" ] || chown "$chown_spec" "$target.ferry-tmp"
        mv "$target.ferry-tmp" "$target"
        created=$((created + 1))
    elif [ -n "$fill" ]; then
        "$fill" --lock "$file" "$target"
        merged=$((merged + 1))
    else
        printf 'NOT MERGED %s\n' "$file"
        not_merged=$((not_merged + 1))
    fi
done < <(find . -name '.ferry-*' -prune -o -type f -name '*.wsp' ${newer[@]+"${newer[@]}"} -print0 | sort -z)

mv "$marker.new" "$marker"
printf '{"created": %d, "merged": %d, "not_merged": %d}\n' "$created" "$merged" "$not_merged"
