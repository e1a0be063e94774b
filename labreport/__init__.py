"""labreport: measure a container lab for real and render an honest report.

One sample's path, folder by folder:

    lab.toml -> config -> build/ -> runtimes/ -> measure/ -> record/ -> analysis/ -> report/

- config: lab.toml -> a typed LabConfig (what a lab builds, runs and checks)
- build/: host builds, the scratch image, the OCI wasm image, their sizes, the build plan
- runtimes/: one module per way of running the program, behind one small protocol
- measure/: the plan and its checks, the session (engine, containerd), rounds, resume
- record/: the versioned measurement file (raw samples) and the output checks
- analysis/: statistics and the views computed once (startup, phases, serving, a lab's files)
- report/: what the commands print: the Markdown report with its charts, terminal tables
- inventory/: what is on this host: doctor's components, the leftover audit
- host/: the ground floor every step drives (processes, files, endpoints, engines, ctr,
  private daemons, shims); it imports nothing of labreport but errors

cli.py declares the options and calls commands/, one module per command, each returning data
or raising; options.py holds the option types and the one error exit; errors.py the errors a
user sees, each with its exit code.
"""

__version__ = "0.1.0"
