"""What an RRD file holds, read with the rrdtool binding alone: the reference the converter's output is checked against.

Independent of the project's own RRD engine on purpose, so that a bug there cannot hide in both sides.

    for rra in archives(path):
        rows = fetch_archive(path, rra["cf"], rra["step"], rra["rows"])

rrdtool fetch picks the archive itself (the one covering the asked range whose resolution is nearest the
asked one, the first of equals) and rounds the end up to a whole step, returning one row past it: both are
undone or checked here. Row i of a fetch starting at `start` covers (start + i*step, start + (i+1)*step],
so a row is identified by the end of its interval.
"""

import rrdtool

__all__ = ["archives", "covering_value", "fetch_archive", "last_update"]


def last_update(path):
    return int(rrdtool.info(path)["last_update"])


def archives(path):
    """The archives in file order: dicts with cf, pdp_per_row, step (seconds per row), rows and index."""
    info = rrdtool.info(path)
    found = []
    while f"rra[{len(found)}].cf" in info:
        index = len(found)
        pdp = info[f"rra[{index}].pdp_per_row"]
        found.append({"cf": info[f"rra[{index}].cf"], "pdp_per_row": pdp, "step": pdp * info["step"],
                      "rows": info[f"rra[{index}].rows"], "index": index})
    return found


def fetch_archive(path, cf, step_seconds, rows, last_update_ts=None):
    """The `rows` rows of the archive with this cf and resolution: [(interval end, (value or None, ...)), ...],
    oldest first, the last row ending at the last update rounded down to the resolution.

    Raises ValueError when rrdtool answers from an archive of another resolution, as it does when the asked
    range reaches past the archive and another one covers it.
    """
    if last_update_ts is None:
        last_update_ts = last_update(path)
    end = last_update_ts - last_update_ts % step_seconds
    return _fetch(path, cf, step_seconds, end, rows)


def covering_value(path, cf, ts, step_seconds=None):
    """The values of the row holding time `ts` (the one whose interval (end - step, end] contains it) in the
    archive of this cf and resolution or, without a resolution, in the finest archive of the cf still holding
    ts; None when no archive holds it."""
    last = last_update(path)
    for rra in sorted((rra for rra in archives(path) if rra["cf"] == cf), key=lambda rra: rra["step"]):
        step = rra["step"]
        end = last - last % step
        if (step_seconds is None or step == step_seconds) and end - rra["rows"] * step < ts <= end:
            return _fetch(path, cf, step, -(-ts // step) * step, 1)[0][1]
    return None


def _fetch(path, cf, step, end, rows):
    """The `rows` rows of resolution `step` ending at `end`, checking that rrdtool did answer with those."""
    start = end - rows * step
    fetched = rrdtool.fetch(path, cf, "-r", str(step), "-s", str(start), "-e", str(end))
    (first, got_step), data = fetched[0][::2], fetched[2]
    if got_step != step:
        raise ValueError(f"{path}: rrdtool fetch {cf} answered with step {got_step}, not {step}")
    if first != start or len(data) < rows:  # rrdtool adds the row after `end`, never leaves one out
        raise ValueError(f"{path}: rrdtool fetch {cf} gave {len(data)} rows from {first}, not {rows} from {start}")
    return [(first + (index + 1) * step, tuple(row)) for index, row in enumerate(data[:rows])]
