"""What a person reads, all formatted from the analysis views: the Markdown report (Jinja
context, filters, render and --check), its charts, and the terminal tables.

- context: what templates see; filters: numbers with units; render: templates -> report.md
- charts: reproducible SVG; terminal: measure's summary, doctor's table, compare's table
"""

DEFAULT_TEMPLATE = "report.md.j2"  # here, not in render: the CLI needs it without importing that
