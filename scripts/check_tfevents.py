"""Reads metarec's TensorBoard runs with TensorBoard's own event loader and prints every tag.

Not part of CI (it needs the `tensorboard` package): a manual check that the hand-written
writer in crates/metarec-report produces files TensorBoard reads.

    python3 -m venv /tmp/tbvenv && /tmp/tbvenv/bin/pip install tensorboard
    /tmp/tbvenv/bin/python scripts/check_tfevents.py runs/

Exits with status 1 if a run has no scalars or a file cannot be read.
"""

import os
import sys

from tensorboard.backend.event_processing import event_accumulator


def main(logdir):
    runs = 0
    for root, _dirs, files in sorted(os.walk(logdir)):
        if not any("tfevents" in f for f in files):
            continue
        acc = event_accumulator.EventAccumulator(root, size_guidance={"scalars": 0, "histograms": 0})
        acc.Reload()
        tags = acc.Tags()
        scalars = tags.get("scalars", [])
        if not scalars:
            print(f"{root}: no scalars", file=sys.stderr)
            return 1
        runs += 1
        print(f"{os.path.relpath(root, logdir)}")
        for tag in scalars:
            events = acc.Scalars(tag)
            first, last = events[0], events[-1]
            print(f"  {tag}: {len(events)} points, step {first.step} = {first.value:.6g} ... "
                  f"step {last.step} = {last.value:.6g}")
        for tag in tags.get("histograms", []):
            h = acc.Histograms(tag)[-1]
            print(f"  {tag} (histogram): step {h.step}, {h.histogram_value.num:.0f} values, "
                  f"min {h.histogram_value.min:.4g}, max {h.histogram_value.max:.4g}")
    print(f"{runs} runs read")
    return 0 if runs else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "runs"))
