"""What every job shares: the progress it reports to, how it stops, and running its episodes under Ctrl-C.

A job (CollectJob, IndexJob, TrainJob, EvalJob) is pure data that runs itself: `job.execute(progress)`. The
command line draws `progress` with Rich; a library caller may leave it out (nothing is drawn)."""

from agentkd.jobs.interrupt import run_interruptibly
from agentkd.jobs.progress import SILENT, Progress, SilentProgress
from agentkd.jobs.stages import Job, Stage
from agentkd.jobs.stopping import kept_note, stopping_cleanly

__all__ = ["SILENT", "Job", "Progress", "SilentProgress", "Stage", "kept_note", "run_interruptibly",
           "stopping_cleanly"]
