#!/usr/bin/env bash
# The test harness behind `make test`:  bash scripts/test.sh STEP
#
#   pytest    plain pytest over tests/unit and tests/live (pytest.ini); finding no test is a failure
#   sanity    ansible-test sanity on a clean copy of the collection
#   units     ansible-test units on the same copy
#   integration  ansible-test integration (tests/integration/targets/test_*) on the same copy
#   lint      ansible-lint (.ansible-lint) and antsibull-changelog lint
#   molecule  every scenario under extensions/molecule/ (molecule_a, molecule_b: the two halves `all` runs)
#   build     ansible-galaxy collection build, then a check of what the tarball holds
#   ee        the execution environment: ansible-builder create on meta/execution-environment.yml (no container
#             build), a check that the context lists exactly the plugins' third-party imports, then the image
#             build's galaxy stage (offline) and its introspection of the installed collection
#   all       every step above in that order (molecule in two lanes of their own beside the others,
#             molecule_a and molecule_b, each one's output printed when it ends; FERRY_TEST_SERIAL=1 runs
#             it in turn); a failed step does not stop the others, the summary at the end says which
#             failed and the exit status is non-zero
#
# Everything it generates lives under $FERRY_RUN_DIR (default: <repo>/.run).
# ansible-test works offline apart from the package index (for its sanity venvs).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
export PATH="$VENV/bin:$PATH"
export FERRY_RUN_DIR="${FERRY_RUN_DIR:-$ROOT/.run}"
RUN="$FERRY_RUN_DIR"

STEPS=(pytest sanity units integration lint molecule build ee)
NAMESPACE=ferry
COLLECTION=migrate

# Where ansible-test gets its own copy of the collection, and where everything else finds the
# collection in place (the same symlink the root conftest.py creates for plain pytest).
AT_COPY="$RUN/ansible-test/ansible_collections/$NAMESPACE/$COLLECTION"
COLLECTIONS_PATH="$RUN/collections"

log() { printf '>>> %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

python_version() { "$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }

# The collection in place: $RUN/collections/ansible_collections/ferry/migrate -> the checkout.
link_collection() {
    local link="$COLLECTIONS_PATH/ansible_collections/$NAMESPACE/$COLLECTION"
    mkdir -p "$(dirname "$link")"
    if [ "$(readlink "$link" 2>/dev/null)" != "$ROOT" ]; then
        rm -rf "$link"
        ln -s "$ROOT" "$link"
    fi
}

# ansible-test refuses symlinked collections and lists files with git: give it a real copy of
# what git would ship (tracked + untracked-but-not-ignored files), in a git work tree of its own
# (otherwise it would walk up to this repo, where .run/ is ignored, and see no file at all).
# What git would ship (tracked + untracked-but-not-ignored files), copied into the empty directory $1.
copy_shipped_files() {
    (
        cd "$ROOT"
        # -e/-L: files deleted from the work tree but still in the index are skipped.
        git ls-files -co --exclude-standard -z |
            while IFS= read -r -d '' f; do
                if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
            done |
            xargs -0 --no-run-if-empty cp -P --parents -t "$1"
    )
}

prepare_ansible_test_copy() {
    rm -rf "$AT_COPY"
    mkdir -p "$AT_COPY"
    copy_shipped_files "$AT_COPY"
    git -C "$AT_COPY" init -q
    # The root conftest.py links the collection under <rootdir>/.run/collections when
    # FERRY_RUN_DIR is unset, as it is inside ansible-test (which passes only a few variables
    # through). Pre-create that link so parallel pytest workers never race to create it.
    mkdir -p "$AT_COPY/.run/collections/ansible_collections/$NAMESPACE"
    ln -s "$AT_COPY" "$AT_COPY/.run/collections/ansible_collections/$NAMESPACE/$COLLECTION"
    log "ansible-test copy: $AT_COPY ($(git -C "$AT_COPY" ls-files -o --exclude-standard | wc -l) files)"
}

# Every venv ansible-test creates is bootstrapped with a get-pip script from an unreachable host;
# it uses ~/.ansible/test/cache/get_pip_<pip version>.py instead when that exists.
install_get_pip_standin() {
    local pip_version cache
    # The version comes from ansible-test's own (internal) table, for this Python version.
    pip_version=$("$PY" -c '
import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))["pip"])' "$(python_version)") ||
        die "cannot tell which pip version ansible-test pins (have ansible_test internals changed?)"
    cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
    mkdir -p "$(dirname "$cache")"
    if ! cmp -s "$ROOT/scripts/get_pip_offline.py" "$cache"; then
        cp "$ROOT/scripts/get_pip_offline.py" "$cache"
        log "installed offline get-pip stand-in: $cache"
    fi
}

# ---------------------------------------------------------------------------------------------
# Steps. Each runs in a subshell with errexit on, from the repository root.

step_pytest() {
    local rc=0
    "$PY" -m pytest || rc=$?
    case $rc in
        0) ;;
        5) die "pytest collected no test: the suite must run tests (testpaths: tests/unit tests/live)" ;;
        *) return "$rc" ;;
    esac
}

step_sanity() {
    prepare_ansible_test_copy
    install_get_pip_standin
    # ansible-test only warns and skips the shellcheck test (*.sh files) when it is missing.
    command -v shellcheck >/dev/null ||
        log "WARNING: shellcheck is not installed, the shellcheck sanity test is SKIPPED (apt-get install shellcheck)"
    cd "$AT_COPY"
    ansible-test sanity --local --python "$(python_version)" --color no
}

step_units() {
    prepare_ansible_test_copy
    install_get_pip_standin
    # `ansible-test units --local` runs pytest from this venv: requirements-dev.txt has pytest-xdist,
    # pytest-mock and mock for it.
    cd "$AT_COPY"
    ansible-test units --local --python "$(python_version)" --color no
}

step_integration() {
    prepare_ansible_test_copy
    install_get_pip_standin
    cd "$AT_COPY"
    ansible-test integration --local --python "$(python_version)" --color no
}

step_lint() {
    # Playbooks and roles call ferry.migrate.*: lint resolves them in the checkout.
    link_collection
    ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS_PATH" ansible-lint
    antsibull-changelog lint
    antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
}

# The scenarios of the first molecule lane (about half the time: nav_multihost alone is ~10 min); every other
# scenario, a new one too, runs in the second. Scenarios of one lane run one after the other; those sharing a
# server's data (the Zenoss ones: the same devices into VictoriaMetrics) stay in one lane.
MOLECULE_LANE_A=(nav_multihost tsdb_multihost tsdb_transfer bundle_check zenoss_bundle)

molecule_scenarios() {  # all | a | b
    local molecule_file scenario
    while IFS= read -r molecule_file; do
        scenario=${molecule_file#extensions/molecule/}
        scenario=${scenario%/molecule.yml}
        case $1 in
            all) echo "$scenario" ;;
            a) [[ " ${MOLECULE_LANE_A[*]} " == *" $scenario "* ]] && echo "$scenario" ;;
            b) [[ " ${MOLECULE_LANE_A[*]} " == *" $scenario "* ]] || echo "$scenario" ;;
        esac
    done < <(find extensions/molecule -mindepth 2 -name molecule.yml | sort)
}

run_molecule() {
    link_collection
    export ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS_PATH"
    local scenarios=() scenario failed=()
    mapfile -t scenarios < <(molecule_scenarios "$1")
    [ ${#scenarios[@]} -gt 0 ] || die "no molecule scenario under extensions/molecule/ ($1)"
    for scenario in "${scenarios[@]}"; do
        log "molecule scenario: $scenario"
        # A fresh work directory per scenario (see extensions/molecule/config.yml).
        export FERRY_MOLECULE_WORKDIR="$RUN/molecule/$scenario"
        rm -rf "$FERRY_MOLECULE_WORKDIR"
        # Molecule remembers "prepared" across runs; the work directory is new, so prepare again.
        molecule reset --scenario-name "$scenario" >/dev/null 2>&1 || true
        local started=$SECONDS
        molecule test --scenario-name "$scenario" || failed+=("$scenario")
        log "molecule scenario $scenario: $((SECONDS - started)) s"  # what to move when a lane grows too long
    done
    [ ${#failed[@]} -eq 0 ] || die "molecule scenarios failed: ${failed[*]}"
}

step_molecule() { run_molecule all; }
step_molecule_a() { run_molecule a; }
step_molecule_b() { run_molecule b; }

step_build() {
    local dist="$RUN/dist" tarball listing bad readme
    rm -rf "$dist"
    ansible-galaxy collection build --force --output-path "$dist" "$ROOT"
    tarball=$(ls "$dist"/"$NAMESPACE-$COLLECTION"-*.tar.gz)
    listing=$(tar tzf "$tarball")
    bad=$(grep -E '^(\./)?(\.venv|\.run|\.ansible|\.git|\.pytest_cache|tests/output|bench|tools|scripts)(/|$)|(^|/)__pycache__(/|$)' \
          <<<"$listing" || true)
    [ -z "$bad" ] || die "$tarball holds paths that must not ship:"$'\n'"$bad"
    grep -qE '^(\./)?plugins/modules/[^/]+\.py$' <<<"$listing" || die "$tarball holds no module under plugins/modules/"
    # ansible-galaxy builds without the readme galaxy.yml names, Galaxy would refuse the import.
    readme=$("$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["readme"])' galaxy.yml)
    grep -qxF "$readme" <<<"$listing" || log "WARNING: $readme (galaxy.yml readme) is missing from the collection"
    log "$tarball: $(wc -l <<<"$listing") entries, contents OK"
}

# The execution environment, as README.md's "Execution environment and AWX" builds it, in a copy of the
# repository under $RUN/ee (the collection tarball the definition takes from the repository root is built
# there, not in the checkout). No container is built: ansible-builder create writes the build context, and the
# two stages that depend on this collection are run here as the image build would: the galaxy stage's
# ansible-galaxy install from the context's requirements.yml (offline), and the builder stage's introspection.
step_ee() {
    local ee="$RUN/ee" src context introspected
    src="$ee/src"
    context="$ee/context"
    introspected="$ee/introspected"
    rm -rf "$ee"
    mkdir -p "$src" "$introspected"
    copy_shipped_files "$src"
    command -v ansible-builder >/dev/null ||
        die "ansible-builder is missing: run scripts/bootstrap.sh (requirements-dev.txt)"
    log "ansible-builder $(ansible-builder --version)"
    (cd "$src" && ansible-galaxy collection build --force .)
    (cd "$src" && ansible-builder create -f meta/execution-environment.yml --context "$context" -v 2)
    # The definition's files and the collection tarball, in the context; requirements.txt is exactly the
    # plugins' third-party imports, bindep.txt is meta/ee-bindep.txt.
    "$PY" -m tests.support.ee_imports context "$context"
    compgen -G "$context/_build/collections/$NAMESPACE-$COLLECTION-*.tar.gz" >/dev/null ||
        die "the build context holds no collection tarball (additional_build_files)"
    # Galaxy stage: the collection from the context's requirements.yml, never from Galaxy.
    (cd "$context/_build" &&
        ANSIBLE_GALAXY_DISABLE_GPG_VERIFY=1 ansible-galaxy collection install --offline \
            -r requirements.yml --collections-path "$ee/collections")
    # Builder stage: introspection of the installed collection together with the context's files.
    ansible-builder introspect --user-pip "$context/_build/requirements.txt" \
        --user-bindep "$context/_build/bindep.txt" --write-pip "$introspected/requirements.txt" \
        --write-bindep "$introspected/bindep.txt" "$ee/collections"
    "$PY" -m tests.support.ee_imports introspected "$introspected"
}

# ---------------------------------------------------------------------------------------------

declare -A STATUS=() DURATION=()
FAILED=()

fmt_duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# Runs step_<name> in a subshell with errexit, prints a header and the duration, records the
# outcome in STATUS/DURATION/FAILED. Never call it in a condition (`if`, `||`): bash would then
# ignore errexit inside the step.
run_step() {
    local name=$1 start rc
    printf '\n==================== %s ====================\n' "$name"
    start=$SECONDS
    mkdir -p "$RUN/steps"
    set +e
    (set -e; cd "$ROOT"; "step_$name") 2>&1 | tee "$RUN/steps/$name.log"
    rc=${PIPESTATUS[0]}
    set -e
    DURATION[$name]=$((SECONDS - start))
    if [ "$rc" -eq 0 ]; then
        STATUS[$name]=passed
    else
        STATUS[$name]="FAILED (exit $rc)"
        FAILED+=("$name")
    fi
    printf -- '-------------------- %s: %s in %s\n' "$name" "${STATUS[$name]}" "$(fmt_duration "${DURATION[$name]}")"
}

# A step in its own lane: run_step in the background, its output and outcome kept under $RUN/lanes.
declare -A BACKGROUND=()
start_background_step() {
    local name=$1 lanes="$RUN/lanes"
    mkdir -p "$lanes"
    rm -f "$lanes/$name.status"
    (
        run_step "$name"
        printf '%s\n%s\n' "${STATUS[$name]}" "${DURATION[$name]}" >"$lanes/$name.status"
    ) >"$lanes/$name.log" 2>&1 &
    BACKGROUND[$name]=$!
    log "$name runs in the background (output: $lanes/$name.log)"
}

finish_background_step() {
    local name=$1 lanes="$RUN/lanes" status
    wait "${BACKGROUND[$name]}" || true
    cat "$lanes/$name.log"
    if [ -s "$lanes/$name.status" ]; then
        mapfile -t status <"$lanes/$name.status"
        STATUS[$name]=${status[0]}
        DURATION[$name]=${status[1]}
    else
        STATUS[$name]="FAILED (no outcome)"
        DURATION[$name]=0
    fi
    [ "${STATUS[$name]}" = passed ] || FAILED+=("$name")
}

# What a failed step's log says went wrong, repeated just before the summary: CI keeps only the end of the output.
failure_digest() {
    local log="$RUN/steps/$1.log" lines
    [ -f "$log" ] || return 0
    printf '\n---------- %s failed: ' "$1"
    # pytest's "short test summary info" lines, and ansible-test's / ansible-lint's / molecule's errors
    # (molecule and ansible colour theirs: the escape codes go first)
    lines=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -aE '^(FAILED|ERROR) |^ERROR:|CRITICAL|fatal: \[' |
        tail -n 25 || true)
    if [ -n "$lines" ]; then
        printf 'its errors (%s) ----------\n%s\n' "$log" "$lines"
    else
        printf 'the end of %s ----------\n' "$log"
        tail -n 25 "$log"
    fi
}

usage() { echo "usage: $0 {$(IFS='|'; echo "${STEPS[*]}")|all}" >&2; exit 2; }

main() {
    [ $# -eq 1 ] || usage
    cd "$ROOT"
    [ -x "$PY" ] || die "$PY missing: run scripts/bootstrap.sh (make bootstrap) first"
    case $1 in
        all)
            local name total_start=$SECONDS summary=("${STEPS[@]}")
            # molecule (mostly waiting on SSH and servers) runs beside the other steps, in two lanes,
            # unless FERRY_TEST_SERIAL=1; each lane's output is printed whole once it ends.
            if [ "${FERRY_TEST_SERIAL:-0}" != 1 ]; then
                link_collection  # once, before the lanes (two of them making it could race)
                start_background_step molecule_a
                start_background_step molecule_b
                summary=(pytest sanity units integration lint molecule_a molecule_b build ee)
            fi
            for name in "${STEPS[@]}"; do
                if [ "$name" = molecule ] && [ ${#BACKGROUND[@]} -gt 0 ]; then
                    continue
                fi
                run_step "$name"
            done
            for name in molecule_a molecule_b; do
                if [ -n "${BACKGROUND[$name]:-}" ]; then
                    finish_background_step "$name"
                fi
            done
            for name in "${FAILED[@]}"; do failure_digest "$name"; done
            printf '\n==================== summary ====================\n'
            for name in "${summary[@]}"; do
                printf '  %-9s %-18s %s\n' "$name" "${STATUS[$name]}" "$(fmt_duration "${DURATION[$name]}")"
            done
            printf '  total     %s\n' "$(fmt_duration $((SECONDS - total_start)))"
            if [ ${#FAILED[@]} -gt 0 ]; then
                printf 'FAILED steps: %s\n' "${FAILED[*]}"
                exit 1
            fi
            echo "all steps passed"
            ;;
        *)
            declare -F "step_$1" >/dev/null || usage
            run_step "$1"
            [ ${#FAILED[@]} -eq 0 ] || exit 1
            ;;
    esac
}

main "$@"
