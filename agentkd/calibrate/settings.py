"""The settings of a calibration, written once (the command line reads them without loading the library)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CalibrationReference = Literal["solved", "all"]


class CalibrationSettings(BaseModel):
    """What `agentkd calibrate` chooses for and on."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    policy: str = "cascade-confidence"
    """The cascade to calibrate, as a policy name (its agreement becomes confidence), e.g. cascade-k2 or
    cascade-sft."""
    target: float = Field(0.95, gt=0.0, le=1.0)
    """Estimated step accuracy the cascade must keep: the threshold with the largest student share at or above it
    is chosen (a deferred step counts as the teacher's, a student-taken one as right when it gives the teacher's
    result)."""
    reference: CalibrationReference = "solved"
    """Which of the teacher's dev episodes score the student: `solved` (the tasks the teacher solved; where it failed,
    its steps are no reference worth matching and the cascade cannot do worse than the teacher there; every task
    when it solved none) or `all`."""
    margin: float = Field(0.03, ge=0.0, le=1.0)
    """Episode checks (`--check-thresholds`): a threshold qualifies when the cascade's success on the dev tasks is at
    least the teacher's on them minus this; the cheapest qualifying one is chosen."""
