"""What is on this host, for the commands that ask: every component labreport can use, found or
why not (components: `doctor`, and the versions a measurement records), and what labreport keeps
or left behind (leftovers: `clean`, the test command's audit).
"""
