"""From raw samples to what they show, computed once when rendering: statistics (tested against
scipy and by simulation), the views of measurement files by topic, and `compare`.

- stats: medians with exact intervals, paired and unpaired verdicts, warnings
- sources: the files read; startup: per runtime and target, summaries, warnings, comparisons;
  phases: the shims' timelines; serving: levels and percentiles from raw latencies
- lab: one lab's files read together (records merged, lookups); compare: NEW against OLD
"""
