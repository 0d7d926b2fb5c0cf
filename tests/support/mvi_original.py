# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A writer of the original MVI migration tool's database zip, for tests (facts: docs/design/mvi-issue14.md 1.2).

Server scope: one member per collection, named exactly after it, holding ``"[" + ",".join(json.dumps(doc)) + "]"``
(so an empty collection is ``[]``), deflated. User and project-group scope: members only for collections with
documents, each element ``json.dumps(doc, indent=2)``. No manifest. Only JSON-typed values survive the format.
"""
import json
import os
import zipfile


def array_text(documents, indent=None):
    """One member's text as the original writes it."""
    return "[" + ",".join(json.dumps(doc, indent=indent) for doc in documents) + "]"


def write_zip(path, collections, scope="server"):
    """Write ``collections`` (``{name: documents}`` or ``(name, documents)`` pairs, documents any iterable, read
    once) as the original would for ``scope`` (``server``, ``users`` or ``project_groups``), streamed member by
    member (the benchmarks write 100k documents) and published whole; returns ``path``."""
    path = str(path)
    indent = None if scope == "server" else 2
    pairs = collections.items() if isinstance(collections, dict) else collections
    with zipfile.ZipFile(path + ".partial", "w", zipfile.ZIP_DEFLATED) as zf:
        for name, documents in pairs:
            texts = (json.dumps(doc, indent=indent) for doc in documents)
            first = next(texts, None)
            if first is None and scope != "server":
                continue  # user and project-group scope: members only for collections with documents
            with zf.open(name, "w", force_zip64=True) as member:
                member.write(b"[")
                if first is not None:
                    member.write(first.encode("utf-8"))
                    for text in texts:
                        member.write(b"," + text.encode("utf-8"))
                member.write(b"]")
    os.replace(path + ".partial", path)
    return path
