# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A migration profile: which collections a MongoDB application has, how a user or a project group selects its
documents, which files on the data mount belong to a document, and the rewrites a restore may apply.

:func:`load` takes a builtin name (``mvi``, see profiles.py) or the path of a YAML file, checks it whole and
compiles its path expressions (JMESPath) once; a schema error names the key. The expressions see a document as
JSON (ObjectId as its hex string, other BSON types in relaxed Extended JSON) and must give a relative path.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import string

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.mongo.profiles import PROFILES

try:
    import yaml
except ImportError as exc:
    yaml = None
    YAML_IMPORT_ERROR = exc
else:
    YAML_IMPORT_ERROR = None

try:
    import jmespath
    import jmespath.exceptions
except ImportError as exc:
    jmespath = None
    JMESPATH_IMPORT_ERROR = exc
else:
    JMESPATH_IMPORT_ERROR = None

FILE_KINDS = ("dir", "file", "glob")
SCOPES = ("users", "project_groups")
PLACEHOLDERS = ("data_mount",)
DEFAULT_DATA_MOUNT = "/opt/powerai-vision/data"
_KEYS = ("profile", "version", "database", "collections", "scopes", "top_level", "children", "scope_files",
         "exclude", "rewrites", "restore_order")


class Expression:
    """A compiled path expression of a profile; ``where`` says where in the profile it is written."""

    def __init__(self, kind, text, where):
        self.kind = kind
        self.text = text
        self.where = where
        try:
            self.compiled = jmespath.compile(text)
        except jmespath.exceptions.JMESPathError as exc:
            raise FerryError("profile: %s: %r is not a valid JMESPath expression (%s)" % (where, text, exc))

    def search(self, value):
        return self.compiled.search(value)


class TopLevel:
    def __init__(self, collection, select, files):
        self.collection = collection
        self.select = select  # scope -> field, overriding the scope's select_field
        self.files = files  # [Expression]


class Children:
    def __init__(self, parent, parent_key, foreign_key, collections):
        self.parent = parent
        self.parent_key = parent_key
        self.foreign_key = foreign_key
        self.collections = collections


class Profile:
    """A checked profile (see the module docstring)."""

    def __init__(self, data, text):
        self.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.name = _string(data, "profile")
        self.version = data.get("version")
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise FerryError("profile: version must be a positive integer, not %r" % (self.version,))
        self.database = _string(data, "database")
        self.collections = _names(data.get("collections"), "collections")
        self.scopes = self._scopes(data.get("scopes"))
        self.top_level = self._top_level(data.get("top_level"))
        self.children = self._children(data.get("children") or [])
        self.scope_files = self._scope_files(data.get("scope_files") or {})
        self.exclude = _strings(data.get("exclude") or [], "exclude")
        self.rewrites = self._rewrites(data.get("rewrites") or {})
        order = data.get("restore_order", "children_first")
        if order not in ("children_first", "as_listed"):
            raise FerryError("profile: restore_order must be children_first or as_listed, not %r" % (order,))
        self.order = order

    # -- checks ------------------------------------------------------------------------------------------------
    def _known(self, name, where):
        if name not in self.collections:
            raise FerryError("profile: %s names collection %r, which is not in collections" % (where, name))
        return name

    def _scopes(self, scopes):
        if not isinstance(scopes, dict):
            raise FerryError("profile: scopes must be a mapping of users and project_groups")
        result = {}
        for scope in SCOPES:
            entry = scopes.get(scope)
            if not isinstance(entry, dict) or not isinstance(entry.get("select_field"), str):
                raise FerryError("profile: scopes.%s.select_field must be a field name" % scope)
            result[scope] = entry["select_field"]
        extra = sorted(set(scopes) - set(SCOPES))
        if extra:
            raise FerryError("profile: scopes has unknown key(s) %s" % ", ".join(extra))
        return result

    def _top_level(self, entries):
        if not isinstance(entries, list) or not entries:
            raise FerryError("profile: top_level must be a non-empty list")
        result, seen = [], set()
        for index, entry in enumerate(entries):
            where = "top_level[%d]" % index
            if not isinstance(entry, dict) or not isinstance(entry.get("collection"), str):
                raise FerryError("profile: %s must be a mapping with a collection" % where)
            name = self._known(entry["collection"], where)
            if name in seen:
                raise FerryError("profile: %s repeats collection %s" % (where, name))
            seen.add(name)
            select = entry.get("select") or {}
            if not isinstance(select, dict) or set(select) - set(SCOPES) or \
                    not all(isinstance(value, str) for value in select.values()):
                raise FerryError("profile: %s.select must map users/project_groups to a field name" % where)
            result.append(TopLevel(name, select, _file_list(entry.get("files") or [], where + ".files")))
        return result

    def _children(self, entries):
        if not isinstance(entries, list):
            raise FerryError("profile: children must be a list")
        parents = set(entry.collection for entry in self.top_level)
        result, seen = [], set(parents)
        for index, entry in enumerate(entries):
            where = "children[%d]" % index
            if not isinstance(entry, dict):
                raise FerryError("profile: %s must be a mapping" % where)
            parent = entry.get("parent")
            if parent not in parents:
                raise FerryError("profile: %s.parent %r is not a top_level collection" % (where, parent))
            for key in ("parent_key", "foreign_key"):
                if not isinstance(entry.get(key), str) or not entry[key]:
                    raise FerryError("profile: %s.%s must be a field name" % (where, key))
            names = _names(entry.get("collections"), where + ".collections")
            for name in names:
                self._known(name, where)
                if name in seen:
                    raise FerryError("profile: %s names %s, already selected elsewhere" % (where, name))
                seen.add(name)
            result.append(Children(parent, entry["parent_key"], entry["foreign_key"], names))
        return result

    def _scope_files(self, entries):
        if not isinstance(entries, dict) or set(entries) - set(("server",) + SCOPES):
            raise FerryError("profile: scope_files must map server/users/project_groups to file lists")
        return dict((scope, _file_list(files, "scope_files.%s" % scope)) for scope, files in entries.items())

    def _rewrites(self, rewrites):
        if not isinstance(rewrites, dict):
            raise FerryError("profile: rewrites must be a mapping of name -> {collection, field, prefix, replace}")
        result = {}
        for name, entry in rewrites.items():
            where = "rewrites.%s" % name
            if not isinstance(entry, dict) or sorted(entry) != ["collection", "field", "prefix", "replace"]:
                raise FerryError("profile: %s must have exactly collection, field, prefix and replace" % where)
            self._known(entry["collection"], where)
            for key in ("field", "prefix", "replace"):
                if not isinstance(entry[key], str) or (key != "replace" and not entry[key]):
                    raise FerryError("profile: %s.%s must be a non-empty string" % (where, key))
            try:
                fields = [field for _text, field, _spec, _conv in string.Formatter().parse(entry["replace"])
                          if field is not None]
            except ValueError as exc:
                raise FerryError("profile: %s.replace %r: %s" % (where, entry["replace"], exc))
            unknown = sorted(set(fields) - set(PLACEHOLDERS))
            if unknown:
                raise FerryError("profile: %s.replace uses unknown placeholder(s) %s (known: %s)"
                                 % (where, ", ".join(unknown), ", ".join(PLACEHOLDERS)))
            result[name] = dict(entry)
        return result

    # -- use ---------------------------------------------------------------------------------------------------
    def child_collections(self):
        return [name for entry in self.children for name in entry.collections]

    def select_field(self, entry, scope):
        """The field that selects ``entry``'s documents for an item of ``scope``."""
        return entry.select.get(scope) or self.scopes[scope]

    def restore_order(self, names):
        """``names`` in the order a restore writes them: children first (a parent that can be seen has its
        children), then the rest, each in profile order; names the profile lacks last, as given."""
        children = set(self.child_collections()) if self.order == "children_first" else set()
        position = dict((name, index) for index, name in enumerate(self.collections))
        return sorted(names, key=lambda name: (name not in position, name not in children,
                                               position.get(name, len(position))))

    def rewrite_for(self, collection, enabled_names, data_mount=DEFAULT_DATA_MOUNT):
        """A function doc -> doc applying the enabled rewrites of ``collection`` (in place), or None when none
        applies. A name the profile lacks is an error naming the known ones."""
        unknown = sorted(set(enabled_names or ()) - set(self.rewrites))
        if unknown:
            raise FerryError("unknown rewrite(s) %s: profile %s has %s" % (
                ", ".join(unknown), self.name, ", ".join(sorted(self.rewrites)) or "none"))
        mount = (data_mount or DEFAULT_DATA_MOUNT).rstrip("/") or "/"
        rules = [(rule["field"], rule["prefix"], rule["replace"].format(data_mount=mount))
                 for name, rule in sorted(self.rewrites.items())
                 if name in (enabled_names or ()) and rule["collection"] == collection]
        if not rules:
            return None

        def rewrite(doc):
            for field, prefix, replace in rules:
                value = doc.get(field)
                if isinstance(value, str) and value.startswith(prefix):
                    doc[field] = replace + value[len(prefix):]
            return doc
        return rewrite


def _string(data, key):
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise FerryError("profile: %s must be a non-empty string" % key)
    return value


def _strings(values, where):
    if not isinstance(values, list) or not all(isinstance(value, str) and value for value in values):
        raise FerryError("profile: %s must be a list of non-empty strings" % where)
    return list(values)


def _names(values, where):
    names = _strings(values, where)
    if not names:
        raise FerryError("profile: %s is empty" % where)
    for name in names:
        if "\x00" in name or "$" in name or name.startswith("system.") or "/" in name:
            raise FerryError("profile: %s: %r is not a usable collection name" % (where, name))
    duplicates = sorted(set(name for name in names if names.count(name) > 1))
    if duplicates:
        raise FerryError("profile: %s repeats %s" % (where, ", ".join(duplicates)))
    return names


def _file_list(entries, where):
    if not isinstance(entries, list):
        raise FerryError("profile: %s must be a list" % where)
    result = []
    for index, entry in enumerate(entries):
        here = "%s[%d]" % (where, index)
        if not isinstance(entry, dict) or len(entry) != 1 or list(entry)[0] not in FILE_KINDS:
            raise FerryError("profile: %s must be one of {dir: EXPR}, {file: EXPR}, {glob: EXPR}" % here)
        kind, text = list(entry.items())[0]
        if not isinstance(text, str) or not text.strip():
            raise FerryError("profile: %s.%s must be a JMESPath expression" % (here, kind))
        result.append(Expression(kind, text, "%s.%s" % (here, kind)))
    return result


def load(profile):
    """The :class:`Profile` named ``profile``: a builtin (``mvi``) or the path of a YAML file."""
    if yaml is None:
        raise FerryError("PyYAML is not installed on this host: %s" % YAML_IMPORT_ERROR)
    if jmespath is None:
        raise FerryError("jmespath is not installed on this host (pip install jmespath): %s" % JMESPATH_IMPORT_ERROR)
    if profile in PROFILES:
        text = PROFILES[profile]
    elif profile and os.path.isfile(profile):
        try:
            with open(profile, "rb") as handle:
                text = handle.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FerryError("cannot read profile %s: %s" % (profile, exc))
    else:
        raise FerryError("profile %r is neither a builtin (%s) nor a file" % (profile, ", ".join(sorted(PROFILES))))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FerryError("profile %s is not valid YAML: %s" % (profile, exc))
    if not isinstance(data, dict):
        raise FerryError("profile %s is not a YAML mapping" % profile)
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise FerryError("profile: unknown key(s) %s (known: %s)" % (", ".join(unknown), ", ".join(_KEYS)))
    return Profile(data, text)
