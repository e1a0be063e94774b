"""`labreport measure`: from the chosen runtimes to the raw measurement file.

- plan: the options and output checked before any build; which runtimes take part
- session: the engine and containerd in use (host's, private, or the target), passed explicitly;
  environment: what the measurement records of the host, the engine and the sources
- run: one measurement in one screen (select, begin or resume, build, prepare, rounds, serve,
  write)
- rounds: interleaved rounds, every output checked, then what each runtime serves
- resume: Resume, partial files and --resume; progress: what the run reports, and the bars
"""
