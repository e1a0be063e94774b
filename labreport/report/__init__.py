"""What a person reads, all formatted from the analysis views (hyperfine's export/): the Markdown
report (context, filters, render and --check, charts) and its HTML page (html), the terminal's
tables (terminal) and compare's table (compare_table).
"""

import enum

DEFAULT_TEMPLATE = "report.md.j2"  # here, not in render: the CLI needs it without importing that


class ReportFormat(enum.StrEnum):
    MD = "md"  # report.md and its chart files
    HTML = "html"  # one self-contained page, charts inline
