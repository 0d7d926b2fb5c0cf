# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How a Zenoss perf file's series are named (module_utils/rrd/steps.py naming_argument_spec(), zenoss_naming()).
    DOCUMENTATION = r"""
options:
  tenant_id:
    description:
      - The C(zenoss_tenant_id) tag. Defaults to the content of O(dmd_uuid_file).
    type: str
  dmd_uuid_file:
    description:
      - The export's C(dmd_uuid.txt). Defaults to the first found in O(src) and up to three directories above
        it (the layout M(ferry.migrate.bundle_check) extracts).
    type: path
  rrdpath_map:
    description:
      - The export's C(rrdpath.map) (C(Devices/<dir>|<object path>) lines; export4 always writes one), giving the
        C(key) tag in the form Zenoss 5 queries (C(MetricMixin.getResourceKey)), C(Devices/) and the object's path
        below its device class, that is what follows the first path segment C(devices) of the mapped object path.
        For example C(/zport/dmd/Devices/Server/Linux/devices/dev1/os/interfaces/eth0) gives
        C(Devices/dev1/os/interfaces/eth0). A directory the map does not name, or names without a C(devices)
        segment, gives C(Devices/<dir>), as does running without a map.
      - Defaults to the first found like O(dmd_uuid_file) (so also for a remote collector's tree,
        C(collectors/<hub>-<collector>/perf) of the layout M(ferry.migrate.bundle_check) extracts).
    type: path
  metric_template:
    description:
      - Metric name, with the fields C({device}), C({name}), C({key}), C({dir}), C({path}), C({ds}) and
        C({tenant}). A file with several data sources gets C(_<ds>) appended unless the template uses C({ds}).
    type: str
    default: "{device}/{name}"
  tags:
    description:
      - Tags of every point, name to template (same fields as O(metric_template)).
    type: dict
    default: {"device": "{device}", "key": "{key}", "zenoss_tenant_id": "{tenant}"}
"""
