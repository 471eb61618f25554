"""scripts/train_ncuts.sh schedules its runs right: the untrained run (which builds the caches) alone and
first, each seed's head before the runs that start from it, at most JOBS runs at a time, and a failed run
fails the script. The training command is replaced by a stub that logs when each run starts and ends."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STUB = """#!/usr/bin/env bash
out=$(sed -E 's/.*--out ([^ ]+).*/\\1/' <<<"$*")
seed=$(sed -nE 's/.*--seed ([0-9]+).*/\\1/p' <<<"$*")
echo "start $out ${seed:--} $(date +%s.%N) $*" >>"$EVENTS"
sleep 0.3
echo "end $out ${seed:--} $(date +%s.%N)" >>"$EVENTS"
[ "$out ${seed:--}" != "${FAIL_RUN:-}" ]
"""


def _run(tmp_path: Path, jobs: int, **env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    if shutil.which("bash") is None:
        pytest.skip("the training script needs bash")
    (tmp_path / "scripts").mkdir(exist_ok=True)
    shutil.copy(ROOT / "scripts" / "train_ncuts.sh", tmp_path / "scripts" / "train_ncuts.sh")
    stub = tmp_path / "stub.sh"
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    events = tmp_path / "events.txt"
    environ = {
        **os.environ,
        "MATBACKPROP": str(stub),
        "EVENTS": str(events),
        "JOBS": str(jobs),
        "SEEDS": "0 1 2",
        **env,
    }
    proc = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "train_ncuts.sh")],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, [line.split() for line in events.read_text().splitlines()]


def _spans(events: list[list[str]]) -> dict[tuple[str, str], tuple[float, float, str]]:
    starts = {(e[1], e[2]): (float(e[3]), " ".join(e[4:])) for e in events if e[0] == "start"}
    ends = {(e[1], e[2]): float(e[3]) for e in events if e[0] == "end"}
    assert starts.keys() == ends.keys()
    return {k: (t, ends[k], args) for k, (t, args) in starts.items()}


def test_parallel_schedule_keeps_every_dependency_and_the_job_limit(tmp_path):
    proc, events = _run(tmp_path, jobs=2, E2E_BLOCKS="1", PREFIX="p")
    assert proc.returncode == 0, proc.stderr
    spans = _spans(events)
    assert len(spans) == 10  # untrained + 3 heads + 3 frozen + 3 end to end
    untrained = spans.pop(("runs/p-untrained", "-"))
    assert "--threads 2" in untrained[2]  # alone, with every job's thread
    assert all(untrained[1] <= start for start, _, _ in spans.values())
    for s in "012":
        head_end = spans[("runs/p-head", s)][1]
        assert spans[("runs/p-frozen", s)][0] >= head_end
        assert spans[("runs/p-e2e-exact", s)][0] >= head_end
        assert "--train-blocks 1" in spans[("runs/p-e2e-exact", s)][2]
        assert f"--init-from runs/p-head/seed{s}" in spans[("runs/p-e2e-exact", s)][2]
    times = sorted([(a, 1) for a, _, _ in spans.values()] + [(b, -1) for _, b, _ in spans.values()])
    running, most = 0, 0
    for _, step in times:
        running += step
        most = max(most, running)
    assert most == 2
    assert (tmp_path / "runs" / "p-logs" / "p-e2e-exact-seed2.log").is_file()


def test_one_job_runs_in_the_order_of_the_table(tmp_path):
    proc, events = _run(tmp_path, jobs=1)
    assert proc.returncode == 0, proc.stderr
    order = [(e[1], e[2]) for e in events if e[0] == "start"]
    assert order[0] == ("runs/ncuts-rank-untrained", "-")
    assert [o[0] for o in order[1:]] == ["runs/ncuts-rank-head"] * 3 + ["runs/ncuts-rank-frozen"] * 3 + [
        "runs/ncuts-rank-e2e-exact"
    ] * 3
    spans = _spans(events)
    assert all("--train-blocks 2" in spans[("runs/ncuts-rank-e2e-exact", s)][2] for s in "012")
    assert all(a >= b for (a, _, _), (_, b, _) in zip(list(spans.values())[1:], list(spans.values())[:-1]))


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failed_run_fails_the_script_after_the_others_ran(tmp_path, jobs):
    proc, events = _run(tmp_path, jobs=jobs, FAIL_RUN="runs/ncuts-rank-head 1")
    assert proc.returncode != 0
    started = {(e[1], e[2]) for e in events if e[0] == "start"}
    assert {("runs/ncuts-rank-head", s) for s in "012"} <= started
    assert ("runs/ncuts-rank-frozen", "0") not in started  # nothing after a failed stage
