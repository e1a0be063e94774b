"""labreport: measure a container lab for real and render an honest report.

One sample's path, folder by folder:

    lab.toml -> config -> build/ -> runtimes/ -> measure/ -> record/ -> analysis/ -> report/

- config: lab.toml -> a typed LabConfig (what a lab builds, runs and checks)
- build/: host builds, the scratch image, the OCI wasm image, their sizes, the build plan
- runtimes/: one module per way of running the program, behind one small protocol
- measure/: the plan and its checks, the session (engine, containerd), rounds, resume
- record/: the versioned measurement file (raw samples) and the output checks
- analysis/: statistics and per-runtime views computed once, compare
- report/: the Jinja context, filters, render and --check, charts, terminal tables
- host/: what every step drives (processes, files, engines, ctr, private daemons, shims,
  doctor, environment facts)

cli.py parses options and calls one function per command; errors.py holds the errors a user
sees, each with its exit code.
"""

__version__ = "0.1.0"
