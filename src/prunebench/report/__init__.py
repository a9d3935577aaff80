"""Reports: statistics, Markdown/LaTeX tables and plots, built from an experiment's store."""

from prunebench.report.stats import Comparison, Summary, summarize, welch
from prunebench.report.writer import summary_table, write_report

__all__ = ["Comparison", "Summary", "summarize", "summary_table", "welch", "write_report"]
