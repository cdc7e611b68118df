"""The SLURM job scripts of docs/cluster/ run against stand-ins for isonet.py and scontrol.

The stand-ins are shell scripts on PATH (put there by the ``activate`` script the job sources); each
appends its command line to ``calls.txt``. The stand-in refine can stay running until told to
finish, so that the time-limit signal (USR1) arrives while it works, as on a cluster.
"""

import os
import signal
import stat
import subprocess
import time

import pytest
from conftest import REPO

CLUSTER = os.path.join(REPO, "docs", "cluster")
JOB_ID = "4242"

_ISONET = """#!/bin/bash
echo "isonet.py $*" >> "$FAKE/calls.txt"
if [ "$1" = refine ] && [ -n "${FAKE_WAIT:-}" ]; then
    trap 'echo "refine terminated" >> "$FAKE/calls.txt"; kill $sleeper 2>/dev/null; exit 143' TERM
    touch "$FAKE/refine_started"
    while [ ! -e "$FAKE/finish" ]; do sleep 0.05 & sleeper=$!; wait $sleeper; done
fi
[ "$1" = refine ] && exit "${FAKE_REFINE_STATUS:-0}"
exit "${FAKE_CHECK_STATUS:-0}"
"""
#: srun records its command line, then runs the command on "one node" (its options dropped).
_SRUN = """#!/bin/bash
echo "srun $*" >> "$FAKE/calls.txt"
while [[ $1 == -* ]]; do shift; done
exec "$@"
"""
_SCONTROL = """#!/bin/bash
echo "scontrol $*" >> "$FAKE/calls.txt"
exit "${FAKE_SCONTROL_STATUS:-0}"
"""


@pytest.fixture
def cluster(tmp_path):
    """A submit folder, stand-ins on PATH through ISONET_VENV/bin/activate, and the job's environment."""
    fake = tmp_path / "fake"
    (fake / "bin").mkdir(parents=True)
    for name, text in (("isonet.py", _ISONET), ("scontrol", _SCONTROL), ("sbatch", _SCONTROL.replace(
            "scontrol", "sbatch")), ("srun", _SRUN)):
        path = fake / "bin" / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    (fake / "bin" / "activate").write_text(f'export PATH="{fake / "bin"}:$PATH"\n')
    submit = tmp_path / "project"
    submit.mkdir()
    env = dict(os.environ, FAKE=str(fake), ISONET_VENV=str(fake), SLURM_SUBMIT_DIR=str(submit),
               SLURM_JOB_ID=JOB_ID, SLURM_CPUS_PER_TASK="16")
    return submit, fake, env


def _calls(fake):
    path = fake / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def _finished(submit, *iterations):
    (submit / "results").mkdir(exist_ok=True)
    for iteration in iterations:
        (submit / "results" / f"refine_iter{iteration:02d}.json").write_text("{}\n")


def _job(script, env, **extra):
    return subprocess.run(["bash", os.path.join(CLUSTER, script)], env=dict(env, **extra), capture_output=True,
                          text=True, timeout=60)


def test_fresh_start_runs_a_new_refine(cluster):
    submit, fake, env = cluster
    result = _job("refine.slurm", env)
    assert result.returncode == 0, result.stderr
    assert _calls(fake) == [
        "isonet.py check",
        "isonet.py refine subtomo.star --result_dir results --noise_level 0.05,0.1,0.15,0.2 "
        "--noise_start_iter 11,16,21,26 --seed 1 --iterations 30 --preprocessing_ncpus 16"]
    assert "new run in results" in result.stdout


def test_partial_run_continues_from_the_last_finished_iteration(cluster):
    submit, fake, env = cluster
    _finished(submit, 1, 2, 9, 12)
    (submit / "results" / "refine_iter13.json.tmp").write_text("")  # not a finished iteration
    result = _job("refine.slurm", env)
    assert result.returncode == 0, result.stderr
    assert _calls(fake)[-1] == ("isonet.py refine --continue_from results/refine_iter12.json --iterations 30 "
                                "--preprocessing_ncpus 16")
    assert "iteration 13 of 30" in result.stdout


def test_finished_run_resubmitted_exits_0_with_a_message(cluster):
    submit, fake, env = cluster
    _finished(submit, 29, 30)
    result = _job("refine.slurm", env)
    assert result.returncode == 0
    assert "already holds iteration 30 of 30; nothing to do" in result.stdout
    assert _calls(fake) == []  # not even a check: nothing started


def test_a_failure_is_the_job_status(cluster):
    submit, fake, env = cluster
    result = _job("refine.slurm", env, FAKE_REFINE_STATUS="2")
    assert result.returncode == 2 and len(_calls(fake)) == 2
    (fake / "calls.txt").unlink()
    result = _job("refine.slurm", env, FAKE_CHECK_STATUS="1")
    assert result.returncode == 1 and _calls(fake) == ["isonet.py check"]  # refine not started


def _start_waiting_job(env, fake, script="refine.slurm", **extra):
    job = subprocess.Popen(["bash", os.path.join(CLUSTER, script)], env=dict(env, FAKE_WAIT="1", **extra),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(600):  # the stand-in refine is running once it made this file
        if (fake / "refine_started").exists():
            return job
        time.sleep(0.05)
    job.kill()
    raise AssertionError("the stand-in refine did not start")


def _wait_for_call(fake, text):
    for _ in range(600):
        if any(text in line for line in _calls(fake)):
            return
        time.sleep(0.05)
    raise AssertionError(f"no call with {text!r}: {_calls(fake)}")


@pytest.mark.parametrize("script", ["refine.slurm", "refine_multinode.slurm"])
def test_time_limit_signal_requeues_the_job_and_stops_refine(cluster, script):
    submit, fake, env = cluster
    job = _start_waiting_job(env, fake, script)
    job.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@300 sends 5 minutes before the limit
    stdout, _ = job.communicate(timeout=60)
    assert job.returncode == 0
    calls = _calls(fake)
    assert f"scontrol requeue {JOB_ID}" in calls and calls[-1] == "refine terminated"
    assert f"requeueing job {JOB_ID}" in stdout


def test_requeue_refused_lets_refine_finish(cluster):
    submit, fake, env = cluster
    job = _start_waiting_job(env, fake, FAKE_SCONTROL_STATUS="1")
    job.send_signal(signal.SIGUSR1)
    _wait_for_call(fake, "scontrol requeue")
    (fake / "finish").write_text("")  # refine ends by itself, successfully
    stdout, _ = job.communicate(timeout=60)
    assert job.returncode == 0 and "refine terminated" not in _calls(fake)
    assert "'scontrol requeue' failed" in stdout


MULTINODE_REFINE = "srun --kill-on-bad-exit=1 isonet.py refine"


def test_multinode_job_runs_one_refine_per_task_through_srun(cluster):
    """A new run, then a continued one, then nothing to do: as refine.slurm, with refine started by srun."""
    submit, fake, env = cluster
    result = _job("refine_multinode.slurm", env)
    assert result.returncode == 0, result.stderr
    new_run = ("subtomo.star --result_dir results --noise_level 0.05,0.1,0.15,0.2 --noise_start_iter 11,16,21,26 "
               "--seed 1 --batch_size 32 --iterations 30 --preprocessing_ncpus 16")
    assert _calls(fake) == ["isonet.py check", f"{MULTINODE_REFINE} {new_run}", f"isonet.py refine {new_run}"]
    (fake / "calls.txt").unlink()
    _finished(submit, 1, 7)
    assert _job("refine_multinode.slurm", env).returncode == 0
    assert _calls(fake)[1] == (f"{MULTINODE_REFINE} --continue_from results/refine_iter07.json --iterations 30 "
                               "--preprocessing_ncpus 16")
    (fake / "calls.txt").unlink()
    _finished(submit, 30)
    result = _job("refine_multinode.slurm", env)
    assert result.returncode == 0 and "nothing to do" in result.stdout and _calls(fake) == []
    (submit / "results" / "refine_iter30.json").unlink()
    assert _job("refine_multinode.slurm", env, FAKE_REFINE_STATUS="1").returncode == 1  # refine's status


ARRAY_TASK_COMMANDS = {
    "deconv_array.slurm": "isonet.py deconv tomograms.star --tomo_idx 7 --deconv_folder deconv --ncpu 16",
    "make_mask_array.slurm": "isonet.py make_mask tomograms.star --tomo_idx 7 --mask_folder mask",
    "predict_array.slurm": "isonet.py predict tomograms.star results/model_iter30.h5 --tomo_idx 7 "
                           "--output_dir corrected_tomos",
}


@pytest.mark.parametrize("script", sorted(ARRAY_TASK_COMMANDS))
def test_array_task_processes_its_tomogram_in_the_shared_star(script, cluster):
    """Task N runs the command on rlnIndex N of tomograms.star itself: every task of the array updates the one
    STAR file (each writes only its own row, see update_star_rows), so no copy of it is made."""
    submit, fake, env = cluster
    (submit / "tomograms.star").write_text("data_\nloop_\n_rlnIndex #1\n1\n7\n")
    result = _job(script, env, SLURM_ARRAY_TASK_ID="7", SLURM_ARRAY_JOB_ID="99")
    assert result.returncode == 0, result.stderr
    assert _calls(fake) == [ARRAY_TASK_COMMANDS[script]]
    assert sorted(os.listdir(submit)) == ["tomograms.star"]
    unset = _job(script, {k: v for k, v in env.items() if k != "SLURM_ARRAY_TASK_ID"})
    assert unset.returncode != 0 and "sbatch --array" in unset.stderr
    assert len(_calls(fake)) == 1  # nothing run without a task id


@pytest.mark.parametrize("script", ["refine.slurm", "refine_multinode.slurm", *sorted(ARRAY_TASK_COMMANDS)])
def test_cluster_doc_shows_the_tested_scripts(script):
    """docs/cluster.md quotes each script whole, so the text people copy is the one tested here."""
    with open(os.path.join(REPO, "docs", "cluster.md")) as handle:
        doc = handle.read()
    with open(os.path.join(CLUSTER, script)) as handle:
        assert f"```bash\n{handle.read()}```" in doc
