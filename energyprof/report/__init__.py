"""Self-contained HTML reports of a run, of runs compared and of a sweep (`energyprof report`, the pages' download
buttons): the headline figures with their provenance, the same Altair charts as the dashboard (energyprof.charts),
the main tables, the machine and the parameters, in one file that opens offline with every user text escaped."""

from energyprof.report.compare import compare_report
from energyprof.report.document import ReportError
from energyprof.report.run import run_report
from energyprof.report.sweep import UnknownSweep, sweep_report

__all__ = ["ReportError", "UnknownSweep", "compare_report", "run_report", "sweep_report"]
