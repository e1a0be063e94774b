"""What a measurement records: the versioned file's models (raw samples, memory, checks, the
environment) and the checks that decide whether a run's output counts."""
