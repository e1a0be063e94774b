"""One module per command, each a function with typed arguments that returns data or raises a
LabreportError; cli.py declares the options, calls it and prints what it returns.

- common: the lab folder and config a command names, the engine and containerd it talks to
- doctor, build, init, measure, render, compare, cache, clean: the commands
"""
