"""What the collection's plugins import from outside the standard library, and what its EE files list.

Used by tests/unit/test_ee.py and by ``scripts/test.sh ee``: ``python -m tests.support.ee_imports context DIR``
checks a build context made by ``ansible-builder create``, ``... introspected DIR`` the files ansible-builder's
introspection wrote for the installed collection.

A plugin's third-party imports are found with ``ast`` in every file under ``plugins/``: every ``import x`` and
``from x import y`` (also inside functions and ``try`` blocks), except the standard library, ``ansible`` and
``ansible_collections``. Each module of ``plugins/modules/`` is charged with the third-party imports of every
``module_utils`` file it reaches through its ``ansible_collections.ferry.migrate`` imports.
"""
import ast
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTION_PREFIX = "ansible_collections.ferry.migrate."

# Import name -> PyPI distribution name. An import missing here fails the check: add it, and to
# meta/ee-requirements.txt.
PYPI_NAMES = {
    "rrdtool": "rrdtool",
    "orjson": "orjson",
    "isal": "isal",
    "yaml": "PyYAML",
    "pymysql": "PyMySQL",
    "pymongo": "pymongo",
    "bson": "pymongo",
    "jmespath": "jmespath",
}

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_MODULES_NOTE = re.compile(r"#.*\bmodules:\s*([a-z0-9_, ]+)")


def _stdlib():
    names = set(getattr(sys, "stdlib_module_names", ()))
    return names | set(sys.builtin_module_names) | {"__future__"}


def _imports(path):
    """(top-level name, full dotted name) of every absolute import in a Python file."""
    with open(path, "rb") as handle:
        tree = ast.parse(handle.read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            found.extend("%s.%s" % (node.module, alias.name) for alias in node.names)
    return found


def _collection_file(root, dotted):
    """The file of an ``ansible_collections.ferry.migrate.x.y`` name (module or package), or None."""
    relative = dotted[len(COLLECTION_PREFIX):].split(".")
    base = os.path.join(root, *relative)
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def third_party_by_file(root=ROOT):
    """{plugin file (relative path): set of third-party top-level import names}."""
    stdlib = _stdlib()
    result = {}
    for directory, _dirs, files in os.walk(os.path.join(root, "plugins")):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            tops = set(dotted.split(".")[0] for dotted in _imports(path))
            result[os.path.relpath(path, root)] = set(
                top for top in tops if top not in stdlib and top not in ("ansible", "ansible_collections"))
    return result


def third_party_by_module(root=ROOT):
    """{module name: set of third-party top-level import names}, through the module_utils each module reaches."""
    own = third_party_by_file(root)
    modules_dir = os.path.join(root, "plugins", "modules")
    result = {}
    for name in sorted(os.listdir(modules_dir)):
        if not name.endswith(".py") or name == "__init__.py":
            continue
        seen, todo, names = set(), [os.path.join(modules_dir, name)], set()
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            names |= own.get(os.path.relpath(path, root), set())
            for dotted in _imports(path):
                if dotted.startswith(COLLECTION_PREFIX):
                    target = _collection_file(root, dotted)
                    if target:
                        todo.append(target)
        result[name[:-3]] = names
    return result


def pypi_name(import_name):
    if import_name not in PYPI_NAMES:
        raise KeyError("plugins import %r: add its PyPI name to PYPI_NAMES in %s and list it in "
                       "meta/ee-requirements.txt" % (import_name, __file__))
    return PYPI_NAMES[import_name]


def plugin_requirements(root=ROOT):
    """{PyPI name: sorted list of the modules that import it (directly or through module_utils)}."""
    result = {}
    for module, names in third_party_by_module(root).items():
        for import_name in names:
            result.setdefault(pypi_name(import_name), set()).add(module)
    # an import only a non-module plugin makes (none today) is still a requirement
    for names in third_party_by_file(root).values():
        for import_name in names:
            result.setdefault(pypi_name(import_name), set())
    return dict((name, sorted(modules)) for name, modules in result.items())


def requirement_lines(path):
    """The requirement lines of a pip requirements file (no comments, no blank lines)."""
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]


def requirement_names(path):
    """{PyPI name (as written): the full line} of a pip requirements file."""
    result = {}
    for line in requirement_lines(path):
        match = _REQUIREMENT.match(line)
        if not match:
            raise ValueError("%s: cannot read the requirement %r" % (path, line))
        result[match.group(1)] = line
    return result


def documented_modules(line):
    """The modules a requirement line's comment names (``# ... modules: a, b``), or None."""
    match = _MODULES_NOTE.search(line)
    if not match:
        return None
    return sorted(name.strip() for name in match.group(1).split(",") if name.strip())


def _bare(line):
    """A requirement line without its comment."""
    return line.split("#")[0].strip()


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def compare(listed, wanted):
    """Differences between listed requirement names and the wanted ones (PEP 503 normalised)."""
    listed_set = set(_canonical(name) for name in listed)
    wanted_set = set(_canonical(name) for name in wanted)
    problems = []
    if wanted_set - listed_set:
        problems.append("imported by the plugins but not listed: %s" % ", ".join(sorted(wanted_set - listed_set)))
    if listed_set - wanted_set:
        problems.append("listed but imported by no plugin: %s" % ", ".join(sorted(listed_set - wanted_set)))
    return problems


def check_context(context, root=ROOT):
    """Problems with a build context made by ``ansible-builder create`` from meta/execution-environment.yml."""
    build = os.path.join(context, "_build")
    problems = []
    requirements = os.path.join(build, "requirements.txt")
    if not os.path.isfile(requirements):
        return ["%s is missing" % requirements]
    problems.extend("%s: %s" % (requirements, problem)
                    for problem in compare(requirement_names(requirements), plugin_requirements(root)))
    with open(os.path.join(root, "meta", "ee-bindep.txt")) as handle:
        bindep = handle.read()
    bindep_path = os.path.join(build, "bindep.txt")
    if not os.path.isfile(bindep_path):
        problems.append("%s is missing" % bindep_path)
    else:
        with open(bindep_path) as handle:
            if handle.read() != bindep:
                problems.append("%s differs from meta/ee-bindep.txt" % bindep_path)
    for name in ("Containerfile", "Dockerfile"):
        if os.path.isfile(os.path.join(context, name)):
            break
    else:
        problems.append("%s holds no Containerfile" % context)
    return problems


def check_introspected(directory, root=ROOT):
    """Problems with the files ``ansible-builder introspect --write-pip/--write-bindep`` wrote for the installed
    collection and the context's files: ferry.migrate's requirements come from its installed copy (PyYAML left
    out: ansible-builder takes it as present), and the context's are kept."""
    problems = []
    introspected = requirement_lines(os.path.join(directory, "requirements.txt"))
    own = [_bare(line) for line in requirement_lines(os.path.join(root, "meta", "ee-requirements.txt"))]
    from_collection = [_bare(line) for line in introspected if line.endswith("from collection ferry.migrate")]
    from_user = [_bare(line) for line in introspected if line.endswith("from collection user")]
    if from_collection != [line for line in own if _canonical(_REQUIREMENT.match(line).group(1)) != "pyyaml"]:
        problems.append("the installed collection's introspected Python requirements are %s, not those of "
                        "meta/ee-requirements.txt" % from_collection)
    if from_user != own:
        problems.append("the context's Python requirements came out as %s" % from_user)
    with open(os.path.join(root, "meta", "ee-bindep.txt")) as handle:
        own_bindep = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    with open(os.path.join(directory, "bindep.txt")) as handle:
        bindep = [line.strip() for line in handle if line.strip()]
    if [_bare(line) for line in bindep if line.endswith("from collection ferry.migrate")] != own_bindep:
        problems.append("the installed collection's introspected system requirements are not meta/ee-bindep.txt's")
    return problems


def main(argv):
    checks = {"context": check_context, "introspected": check_introspected}
    if len(argv) != 2 or argv[0] not in checks:
        sys.stderr.write("usage: python -m tests.support.ee_imports {context CONTEXT_DIR | introspected DIR}\n")
        return 2
    problems = checks[argv[0]](argv[1])
    for problem in problems:
        sys.stderr.write("EE %s: %s\n" % (argv[0], problem))
    if not problems:
        wanted = plugin_requirements()
        sys.stdout.write("EE %s %s: OK, the plugins import %s\n" % (argv[0], argv[1], ", ".join(
            "%s (%s)" % (name, ", ".join(modules) or "no module") for name, modules in sorted(wanted.items()))))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
