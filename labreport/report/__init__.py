"""What a person reads, all formatted from the analysis views (hyperfine's export/): the Markdown
report (context, filters, render and --check, charts), the terminal's tables (terminal) and
compare's table (compare_table).
"""

DEFAULT_TEMPLATE = "report.md.j2"  # here, not in render: the CLI needs it without importing that
