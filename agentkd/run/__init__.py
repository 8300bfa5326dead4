"""Run folders: the layout that owns every path, and the crash-safe trajectory file + job record."""

from agentkd.run.folder import RunFolder
from agentkd.run.layout import STUDENT_MARKER, TRAINED, RunLayout, is_trained_student

__all__ = ["RunFolder", "RunLayout", "STUDENT_MARKER", "TRAINED", "is_trained_student"]
