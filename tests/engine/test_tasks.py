"""The task objects: what differs between classification and detection is said once, in engine/tasks.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cnnattn
from cnnattn.engine import TrainConfig
from cnnattn.engine.tasks import Classification, Detection, get_task


def test_each_task_states_its_outputs_metrics_and_defaults() -> None:
    classify, detect = get_task("classify"), get_task("detect")
    assert isinstance(classify, Classification) and isinstance(detect, Detection)
    assert (classify.outputs(10), detect.outputs(10)) == (10, 11)  # detectors count the background
    assert (classify.monitor, detect.monitor) == ("val/top1", "val/AP")
    assert not classify.frozen_bn(TrainConfig()) and detect.frozen_bn(TrainConfig(task="detect"))
    assert not detect.frozen_bn(TrainConfig(task="detect", freeze_bn=False))
    with pytest.raises(ValueError, match="unknown task 'segment'; choose one of classify, detect"):
        get_task("segment")


def test_no_task_name_is_compared_outside_the_task_objects() -> None:
    """``task == "detect"`` and the like appear nowhere in the source: callers ask the task object."""
    pattern = re.compile(r"""task\s*[!=]=\s*["'](classify|detect)["']""")
    source = Path(cnnattn.__file__).parent
    found = [f"{p.relative_to(source)}:{n}" for p in source.rglob("*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]  # fmt: skip
    assert found == []
