"""verify.yml's checks: tools/zenoss_compare.py (shared with `make demo`), run from here.

    compare.py dbs SERVERS_JSON PREFIX        Zenoss 4's databases on mariadb against Zenoss 5's on mariadb-target
    compare.py perf VM_URL UUID ZENHOME ARCHIVE...   the RRD files' points on VictoriaMetrics

Prints a JSON report; exits 1 when something differs.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
from tools.zenoss_compare import main  # noqa: E402  pylint: disable=wrong-import-position

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
