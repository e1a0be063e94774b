"""`labreport measure`: from the chosen runtimes to the raw measurement file.

- plan: the options and output checked before any build; which runtimes take part
- session: the engine and containerd in use (host's, private, or the target), passed explicitly
- run: one measurement (select, build, prepare, rounds, memory and checks, write)
- rounds: interleaved rounds, every output checked; resume: partial files and --resume
- progress: what the run reports, and the bars that show it
"""
