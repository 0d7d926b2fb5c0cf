"""Make the repository importable as ``ansible_collections.ferry.migrate`` for pytest.

The collection is used in place: a symlink under .run/collections points at this checkout.
"""
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
COLLECTIONS = os.path.join(os.environ.get("FERRY_RUN_DIR", os.path.join(ROOT, ".run")), "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "ferry", "migrate")

if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    try:
        os.symlink(ROOT, LINK)
    except FileExistsError:  # another test worker made it first
        pass
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
