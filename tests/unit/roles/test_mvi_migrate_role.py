# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mvi_migrate role: what meta/argument_specs.yml documents is what defaults/main.yml sets, secrets are no_log,
the step names it builds are ones the journal takes, the playbook runs the sources then the target, and the Job
manifest it renders (Ansible's own templating) is a batch/v1 Job that never restarts and takes secrets only
through secretKeyRef (the molecule scenario mvi_multihost runs the role end to end)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.ferry.migrate.plugins.module_utils.core import journal

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(ROOT, "roles", "mvi_migrate")


def load(path):
    with open(os.path.join(ROLE, path)) as handle:
        return yaml.safe_load(handle)


OPTIONS = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
DEFAULTS = load("defaults/main.yml")
INTERNALS = load("vars/main.yml")


def template(text, variables):
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(text))


def job(**overrides):
    """The rendered manifest (text) with the role's literal defaults, the given options and the job name the role
    computes."""
    variables = dict((name, value) for name, value in DEFAULTS.items()
                     if not (isinstance(value, str) and "{{" in value))
    variables.update({"mvi_migrate_job_image": "registry.example.net/ferry/ee:1", "mvi_migrate_job_pvc": "vision-pvc",
                      "mvi_migrate_job_inventory_configmap": "mvi-inventory", "mvi_migrate_job_ssh_secret": "mvi-ssh"})
    variables.update(overrides)
    variables["__mvi_migrate_job_name"] = template(INTERNALS["__mvi_migrate_job_name"], variables)
    with open(os.path.join(ROLE, "templates", "mvi_migration_job.yaml.j2")) as handle:
        return template(handle.read(), variables)


def test_documented_options_are_the_defaults():
    assert set(DEFAULTS) <= set(OPTIONS), set(DEFAULTS) - set(OPTIONS)
    assert all(name.startswith("mvi_migrate_") for name in OPTIONS)
    for name, option in OPTIONS.items():
        if "default" in option:
            assert DEFAULTS[name] == option["default"], name
        else:  # computed defaults (templated) are documented in words
            computed = isinstance(DEFAULTS[name], str) and "{{" in DEFAULTS[name]
            assert computed or name == "mvi_migrate_job_secret_env", name
    assert OPTIONS["mvi_migrate_type"]["choices"] == ["full", "files", "db"]
    assert OPTIONS["mvi_migrate_scope"]["choices"] == ["server", "users", "project_groups"]
    assert OPTIONS["mvi_migrate_action"]["choices"] == ["migrate", "status", "abort", "cleanup"]
    assert OPTIONS["mvi_migrate_on_duplicate"]["choices"] == ["skip", "replace", "fail"]


def test_secrets_are_no_log_and_only_they():
    secret = sorted(name for name, option in OPTIONS.items() if option.get("no_log"))
    assert secret == ["mvi_migrate_login_password", "mvi_migrate_uri"]


def test_internals_are_out_of_the_options_reach():
    assert INTERNALS and all(name.startswith("__mvi_migrate_") for name in INTERNALS)
    for path in os.listdir(os.path.join(ROLE, "tasks")):
        text = open(os.path.join(ROLE, "tasks", path)).read()
        registered = re.findall(r"^\s+register: (\S+)", text, re.M)
        assert all(name.startswith("__mvi_migrate_") for name in registered), (path, registered)
        # every module option taking a password is filled from the no_log options only
        for line in re.findall(r"^\s+(?:login_password|uri): (.*)$", text, re.M):
            assert "mvi_migrate_login_password" in line or "mvi_migrate_uri" in line, (path, line)


def keys(names):
    """The role's name -> key map (vars/main.yml __mvi_migrate_keys) for these item names."""
    return template(INTERNALS["__mvi_migrate_keys"], {
        "__mvi_migrate_key_pattern": INTERNALS["__mvi_migrate_key_pattern"], "__mvi_migrate_all_items": names,
        "mvi_migrate_sources": [], "inventory_hostname": "source1"})


@pytest.mark.parametrize("name, kept", [
    ("pg-1", True), ("3f2b9c1e-0d4a-4b7e-9a51-7c1d2e3f4a5b", True), ("alice_2", True), ("a" * 36, True),
    ("a" * 37, False), ("mvi.example.net", False), ("alice@example.com", False), ("line\nbreak", False),
    ("/etc", False), ("", False), ("é", False), ("-x", False), ("pg1\n", False)])
def test_step_names_take_every_host_and_item(name, kept):
    found = keys([name])
    key = found[name]
    assert key == (name if kept else "x" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:16])
    assert "." not in key  # "." separates the parts of mvi.<name>.<host>.<item>.<step>
    step = max(INTERNALS["__mvi_migrate_source_steps"] + ["restore"], key=len)
    longest = "mvi.%s.%s.%s.%s" % ("m" * 30, key, key, step)
    assert journal._STEP_NAME.match(longest), longest


def test_each_type_has_steps_of_its_own():
    """A db run at the cut-over after a files run finds none of its steps done by the files run (a fresh backup,
    a final pass with its list); full is both, in that order; status lists every step."""
    steps = INTERNALS["__mvi_migrate_type_steps"]
    assert set(steps) == set(OPTIONS["mvi_migrate_type"]["choices"])
    assert steps["files"] == ["files_backup", "files_bulk"]
    assert steps["db"] == ["db_backup", "files_final", "transfer"]
    assert steps["full"] == steps["files"] + steps["db"] == INTERNALS["__mvi_migrate_source_steps"]
    assert not set(steps["files"]) & set(steps["db"])


def step_specs():
    """source_item.yml's step specs rendered for item "pg-1" of source1 (work dir /w, data mounts /s and /t)."""
    with open(os.path.join(ROLE, "tasks", "source_item.yml")) as handle:
        task = yaml.safe_load(handle)[0]
    variables = dict((name, trust_as_template(value)) for name, value in task["vars"].items() if isinstance(value, str))
    variables.update({"__mvi_migrate_keys": {"pg-1": "pg-1", "source1": "source1"}, "__mvi_migrate_item": "pg-1",
                      "inventory_hostname": "source1", "mvi_migrate_work_dir": "/w", "mvi_migrate_data_mount": "/s",
                      "mvi_migrate_target_data_mount": "/t", "__mvi_migrate_incoming": "/t/in",
                      "mvi_migrate_delete": False, "__mvi_migrate_prefix": "mvi.m."})

    def render(value):
        if isinstance(value, dict):
            return dict((key, render(item)) for key, item in value.items())
        if isinstance(value, list):
            return [render(item) for item in value]
        return template(value, variables) if isinstance(value, str) else value

    return render(task["vars"]["__mvi_migrate_step_specs"])


def test_the_cut_over_sends_its_own_backup_and_list():
    specs = step_specs()
    assert set(specs) == set(INTERNALS["__mvi_migrate_source_steps"])
    assert specs["files_backup"]["dest"] == specs["files_bulk"]["manifest"] == "/w/pg-1.files.zip"
    # the final pass and the transfer read the cut-over's backup, the one the target restores
    assert specs["db_backup"]["dest"] == specs["files_final"]["manifest"] == "/w/pg-1.zip"
    assert (specs["transfer"]["src"], specs["transfer"]["paths"], specs["transfer"]["dest"]) == (
        "/w", ["pg-1.zip"], "/t/in/source1")
    assert (specs["files_bulk"]["sync_pass"], specs["files_final"]["sync_pass"]) == ("bulk", "final")
    # in check mode a step whose zip a run would write first is pending
    assert [name for name in INTERNALS["__mvi_migrate_source_steps"] if "needs" in specs[name]] == [
        "files_bulk", "files_final", "transfer"]


@pytest.mark.parametrize("name, good", [("m" * 30, True), ("m" * 31, False), ("mvi-migration", True), ("a.b", False),
                                        ("-a", False), ("", False), ("mvi\n", False)])
def test_migration_names(name, good):
    assert bool(re.match(INTERNALS["__mvi_migrate_name_pattern"], name)) == good


def test_the_playbook_runs_the_sources_then_the_target():
    plays = yaml.safe_load(open(os.path.join(ROOT, "playbooks", "mvi_to_ocp.yml")))
    assert [play["roles"][0]["role"] for play in plays] == ["ferry.migrate.mvi_migrate"] * 2
    assert [play["hosts"] for play in plays] == ["{{ ferry_source_group | default('source') }}",
                                                 "{{ ferry_target_group | default('target') }}"]


def test_the_job_is_a_batch_job_that_never_restarts():
    manifest = yaml.safe_load(job(mvi_migrate_name="MVI_Move.1", mvi_migrate_job_chart="ibm-vision",
                                  mvi_migrate_job_release="vision"))
    assert manifest["apiVersion"] == "batch/v1" and manifest["kind"] == "Job"
    assert manifest["metadata"]["name"] == "mvi-move-1"
    assert manifest["metadata"]["labels"] == {"run": "mvi-move-1", "app": "vision", "chart": "ibm-vision",
                                              "release": "vision"}
    assert "namespace" not in manifest["metadata"]
    spec = manifest["spec"]
    assert spec["backoffLimit"] == 0 and "ttlSecondsAfterFinished" not in spec
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert spec["template"]["metadata"]["labels"] == manifest["metadata"]["labels"]
    (container,) = pod["containers"]
    assert container["command"] == ["ansible-playbook"]
    assert container["args"][:4] == ["--inventory", "/ferry/inventory/inventory.yml", "ferry.migrate.mvi_to_ocp",
                                     "--extra-vars"]
    assert "readinessProbe" not in container and "resources" not in container  # no limits unless asked
    assert not re.search(r"sleep|/tmp/healthy", json.dumps(manifest))
    data = {"name": "dlaas-data", "mountPath": "/opt/powerai-vision/data", "subPath": "data"}
    assert data in container["volumeMounts"]
    assert pod["volumes"][0] == {"name": "dlaas-data", "persistentVolumeClaim": {"claimName": "vision-pvc"}}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In",
                                            "values": ["ppc64le", "amd64"]}]}]


def test_the_job_takes_its_options():
    manifest = yaml.safe_load(job(mvi_migrate_job_ttl=3600, mvi_migrate_job_namespace="mvi",
                                  mvi_migrate_job_resources={"limits": {"memory": "2Gi"}},
                                  mvi_migrate_job_service_account="ferry"))
    assert manifest["spec"]["ttlSecondsAfterFinished"] == 3600
    assert manifest["metadata"]["namespace"] == "mvi"
    pod = manifest["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ferry"
    assert pod["containers"][0]["resources"] == {"limits": {"memory": "2Gi"}}


def test_secrets_reach_the_job_only_through_secret_key_refs():
    text = job(mvi_migrate_login_password="pw-S3CRET-1", mvi_migrate_uri="mongodb://u:pw-S3CRET-2@h/",
               mvi_migrate_login_user="admin-user",
               mvi_migrate_job_secret_env=[{"name": "FERRY_MVI_TARGET_MONGO_PASSWORD", "secret": "ocp-secret",
                                            "key": "mongodb-admin-password"}])
    assert "S3CRET" not in text and "admin-user" not in text
    container = yaml.safe_load(text)["spec"]["template"]["spec"]["containers"][0]
    secret_env = [env for env in container["env"] if "valueFrom" in env]
    assert secret_env == [{"name": "FERRY_MVI_TARGET_MONGO_PASSWORD",
                           "valueFrom": {"secretKeyRef": {"name": "ocp-secret", "key": "mongodb-admin-password"}}}]
    assert all("value" not in env for env in secret_env)
    extra = json.loads(container["args"][-1])
    assert not [name for name in extra if re.search("password|uri|user|token|key", name)]


def test_the_default_job_reads_mvis_own_secret():
    container = yaml.safe_load(job())["spec"]["template"]["spec"]["containers"][0]
    refs = [env["valueFrom"]["secretKeyRef"] for env in container["env"] if "valueFrom" in env]
    assert refs == [{"name": "vision-secrets", "key": "mongodb-admin-username"},
                    {"name": "vision-secrets", "key": "mongodb-admin-password"}]


@pytest.mark.parametrize("items", [[], ["pg-1", "pg-2"], ['qu"ote', "new\nline", "back\\slash", "{{ not a template }}",
                                                          "ünï", "x" * 5000]])
def test_the_job_passes_the_items_as_they_are(items):
    manifest = yaml.safe_load(job(mvi_migrate_scope="project_groups", mvi_migrate_items=items,
                                  mvi_migrate_type="files"))
    extra = json.loads(manifest["spec"]["template"]["spec"]["containers"][0]["args"][-1])
    assert extra["mvi_migrate_items"] == items
    assert extra["mvi_migrate_type"] == "files" and extra["mvi_migrate_scope"] == "project_groups"
    assert extra["mvi_migrate_action"] == "migrate"
