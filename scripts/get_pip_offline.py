"""Offline stand-in for the ``get-pip.py`` script ansible-test downloads for its sanity/units venvs.

ansible-test bootstraps pip into every virtual environment it creates with a script fetched from
https://ci-files.testing.ansible.com/ — unreachable here.  It first looks for a cached copy at
``~/.ansible/test/cache/get_pip_<version>.py`` (``<version>`` = the pip version it pins, dots
replaced by underscores), and scripts/test.sh installs this file there.

ansible-test runs it as ``python quiet_pip.py [pip options] pip==X.Y`` with ``GET_PIP`` pointing
here, so ``sys.argv[1:]`` holds get-pip's arguments.  This stand-in installs the pip bundled with
the interpreter (ensurepip), then the pinned version from the package index, which is reachable.
get-pip's own ``--no-setuptools``/``--no-wheel`` flags mean "do not install them": plain
``pip install`` does not install them either, and rejects the flags, so they are dropped.
"""

from __future__ import annotations

import subprocess
import sys

GET_PIP_ONLY = ('--no-setuptools', '--no-wheel')


def main() -> None:
    """Bootstrap pip, then install the requested packages."""
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]

    subprocess.run([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'], check=True, stdout=subprocess.DEVNULL)

    if args:
        subprocess.run([sys.executable, '-m', 'pip', 'install', '--upgrade', '--force-reinstall'] + args, check=True)


if __name__ == '__main__':
    main()
