"""Stand-ins for the Zenoss application commands the zenoss_export and zenoss_import roles run, for tests.

    zenoss_standin.py --state DIR [--fail TOOL[:N]] TOOL ARGS...

Every call is appended to DIR/calls.jsonl ({"tool", "args", "stdin", "at"}) before it does anything, so a test
can assert which commands ran and in which order (Import4's order on the target). DIR/model.json is the live
model the Zenoss 5 tools see: installed ZenPacks and monitored components.

Zenoss 5 side (what the roles run with ``serviced service run zope ...`` by default):
    zeneventserver-create-db ... --update_schema_only   refuses to run without --update_schema_only
    zendmd [--commit] --script=/dev/stdin                the script on stdin: the ZenPack names in it are removed
                                                        from the model (skipped ZenPacks); a script that prints
                                                        components (getMonitoredComponents) prints the model's
    zenmigrate
    zenpack --install PACK                              prints "Successfully Installed ZenPack PACK"
    zenpack --list                                      "PACK (/opt/zenoss/ZenPacks/PACK-1.0.0-py2.7.egg)" lines
    zenpack --restore ...                               (finalize)
Zenoss 4 side:
    zenoss stop|start
    zendmd4 --zenhome ZENHOME | --model DIR             writes componentList.txt, rrdpath.map and dmd_uuid.txt
                                                        into $FERRY_ZENOSS_MODEL_DIR (what export4 asks zendmd
                                                        for): derived from ZENHOME's perf tree, or copied from DIR
Seeding the Zenoss 5 model (tests): ``model --components FILE`` takes the component paths of a componentList.txt.
``--fail TOOL[:N]`` makes TOOL exit 3 (on its N-th call only, when N is given).
"""
import json
import os
import re
import shutil
import sys
import time

DEVICE_CLASS = "/zport/dmd/Devices/Server/Linux"


def _load(path, default):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


def _save(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(value, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


class Standin:
    def __init__(self, state):
        os.makedirs(state, exist_ok=True)
        self.calls = os.path.join(state, "calls.jsonl")
        self.model_path = os.path.join(state, "model.json")
        self.model = _load(self.model_path, {"zenpacks": [], "components": [], "migrated": 0, "schema": 0})

    def record(self, tool, args, stdin):
        with open(self.calls, "a") as handle:
            handle.write(json.dumps({"tool": tool, "args": args, "stdin": stdin, "at": time.time()}) + "\n")

    def count(self, tool):
        return sum(1 for line in open(self.calls) if json.loads(line)["tool"] == tool)

    def save(self):
        _save(self.model_path, self.model)

    # -- Zenoss 5 ------------------------------------------------------------------------------------------
    def zeneventserver_create_db(self, args, stdin):
        if "--update_schema_only" not in args:
            print("zeneventserver-create-db: without --update_schema_only this would drop zenoss_zep",
                  file=sys.stderr)
            return 2
        self.model["schema"] += 1
        self.save()
        print("Schema of zenoss_zep is up to date")
        return 0

    def zendmd(self, args, stdin):
        if "getMonitoredComponents" in stdin:
            for component in self.model["components"]:
                print(component)
            return 0
        removed = sorted(set(re.findall(r"ZenPacks\.[A-Za-z0-9_.]+[A-Za-z0-9]", stdin)))
        if "--commit" not in args:
            print("zendmd: no --commit, nothing removed", file=sys.stderr)
            return 2
        self.model["zenpacks"] = [pack for pack in self.model["zenpacks"] if pack not in removed]
        self.save()
        for pack in removed:
            print("Removed %s" % pack)
        return 0

    def zenmigrate(self, args, stdin):
        self.model["migrated"] += 1
        self.save()
        print("Migrated the model to the Zenoss 5 schema")
        return 0

    def zenpack(self, args, stdin):
        if args[:1] == ["--install"] and len(args) >= 2:
            pack = args[1]
            if pack not in self.model["zenpacks"]:
                self.model["zenpacks"].append(pack)
                self.save()
            print("INFO zen.ZenPackCMD: installing zenpack %s" % pack)
            print("Successfully Installed ZenPack %s" % pack)
            return 0
        if args[:1] == ["--list"]:
            print("Zenpack Name (Version)")
            for pack in sorted(self.model["zenpacks"]):
                print("%s (/opt/zenoss/ZenPacks/%s-1.0.0-py2.7.egg)" % (pack, pack))
            return 0
        if args[:1] == ["--restore"]:
            print("Restored %d ZenPacks" % len(self.model["zenpacks"]))
            return 0
        print("zenpack: unsupported arguments %s" % args, file=sys.stderr)
        return 2

    def model_seed(self, args, stdin):
        if args[:1] != ["--components"] or len(args) != 2:
            print("model --components FILE", file=sys.stderr)
            return 2
        with open(args[1]) as handle:
            self.model["components"] = [line.strip() for line in handle
                                        if line.strip() and not line.startswith("#")]
        self.save()
        return 0

    # -- Zenoss 4 ------------------------------------------------------------------------------------------
    def zenoss(self, args, stdin):
        if args not in (["stop"], ["start"]):
            print("zenoss stop|start", file=sys.stderr)
            return 2
        print("Daemons %sed" % ("stopp" if args == ["stop"] else "start"))
        return 0

    def zendmd4(self, args, stdin):
        if args[:1] not in (["--zenhome"], ["--model"]) or len(args) != 2:
            print("zendmd4 --zenhome ZENHOME | --model DIR", file=sys.stderr)
            return 2
        out = os.environ.get("FERRY_ZENOSS_MODEL_DIR")
        if not out:
            print("zendmd4: FERRY_ZENOSS_MODEL_DIR is not set", file=sys.stderr)
            return 2
        os.makedirs(out, exist_ok=True)
        if args[0] == "--model":  # the model's files as a generator wrote them
            for name in ("componentList.txt", "rrdpath.map", "dmd_uuid.txt"):
                shutil.copyfile(os.path.join(args[1], name), os.path.join(out, name))
            print("model files copied from %s" % args[1])
            return 0
        components, mapping = _model_of(os.path.join(args[1], "perf", "Devices"))
        with open(os.path.join(out, "componentList.txt"), "w") as handle:
            for device in sorted(components):
                handle.write("### components for %s/devices/%s\n" % (DEVICE_CLASS, device))
                handle.writelines("%s\n" % path for path in components[device])
        with open(os.path.join(out, "rrdpath.map"), "w") as handle:
            handle.writelines("%s|%s\n" % pair for pair in mapping)
        uuid_file = os.path.join(args[1], "dmd_uuid.txt")
        uuid = open(uuid_file).read().strip() if os.path.exists(uuid_file) else "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
        with open(os.path.join(out, "dmd_uuid.txt"), "w") as handle:
            handle.write(uuid + "\n")
        print("a total of %d devices in export" % len(components))
        return 0


def _model_of(devices_dir):
    """Devices and their monitored components (directories holding RRD files below the device), and the
    rrdpath.map lines (Devices/<path>|<object path>) for each device and component."""
    components, mapping = {}, []
    for device in sorted(os.listdir(devices_dir)) if os.path.isdir(devices_dir) else []:
        root = os.path.join(devices_dir, device)
        if not os.path.isdir(root):
            continue
        device_path = "%s/devices/%s" % (DEVICE_CLASS, device)
        mapping.append(("Devices/" + device, device_path))
        found = []
        for directory, dirs, files in os.walk(root):
            dirs.sort()
            relative = os.path.relpath(directory, root)
            if relative != "." and any(name.endswith(".rrd") for name in files):
                found.append(device_path + "/" + relative)
                mapping.append(("Devices/%s/%s" % (device, relative), device_path + "/" + relative))
        components[device] = found
    return components, mapping


TOOLS = {"zeneventserver-create-db": Standin.zeneventserver_create_db, "zendmd": Standin.zendmd,
         "zenmigrate": Standin.zenmigrate, "zenpack": Standin.zenpack, "zenoss": Standin.zenoss,
         "zendmd4": Standin.zendmd4, "model": Standin.model_seed}


def main(argv):
    if len(argv) < 3 or argv[0] != "--state":
        print(__doc__, file=sys.stderr)
        return 2
    state, rest = argv[1], argv[2:]
    fail = None
    if rest[:1] == ["--fail"]:
        fail, rest = rest[1], rest[2:]
    if not rest or rest[0] not in TOOLS:
        print("unknown tool %r (known: %s)" % (rest[:1], ", ".join(sorted(TOOLS))), file=sys.stderr)
        return 2
    tool, args = rest[0], rest[1:]
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    standin = Standin(state)
    standin.record(tool, args, stdin)
    if fail:
        name, _sep, nth = fail.partition(":")
        if name == tool and (not nth or standin.count(tool) == int(nth)):
            print("%s: failing as asked (--fail %s)" % (tool, fail), file=sys.stderr)
            return 3
    return TOOLS[tool](standin, args, stdin)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
