# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A writer of the original MVI migration tool's database zip, for tests (facts: docs/design/mvi-issue14.md 1.2).

Server scope: one member per collection, named exactly after it, holding ``"[" + ",".join(json.dumps(doc)) + "]"``
(so an empty collection is ``[]``), deflated. User and project-group scope: members only for collections with
documents, each element ``json.dumps(doc, indent=2)``. No manifest. Only JSON-typed values survive the format.
"""
import json
import zipfile


def array_text(documents, indent=None):
    """One member's text as the original writes it."""
    return "[" + ",".join(json.dumps(doc, indent=indent) for doc in documents) + "]"


def write_zip(path, collections, scope="server"):
    """Write ``{collection: [documents]}`` as the original would for ``scope`` (``server``, ``users`` or
    ``project_groups``); returns ``path``."""
    indent = None if scope == "server" else 2
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, documents in collections.items():
            documents = list(documents)
            if scope != "server" and not documents:
                continue
            zf.writestr(name, array_text(documents, indent))
    return path
