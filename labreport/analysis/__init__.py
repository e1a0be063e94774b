"""From raw samples to what they show, computed once when rendering: statistics (tested against
scipy and by simulation), per-runtime views of measurement files, and `compare`.

- stats: medians with exact intervals, paired and unpaired verdicts, warnings
- views: samples grouped by runtime and target, their summaries, phases and warnings
- compare: NEW against OLD, runtime by runtime
"""
