"""Training under faults: killed at random moments (checkpoint writes included) it always
resumes to the weights of an uninterrupted run; a full disk keeps the previous checkpoint."""

import random
import resource
import subprocess
import sys
import time

import torch

import tiny_run
from q2l.app import checkpoint as ckpt_io
from q2l.app import resolve
from q2l.app.train import Trainer

CONFIG = {**tiny_run.TINY, "seed": 3}
FLAGS = tiny_run.flags(CONFIG)
EPOCHS = 4


def _train(out, epochs=EPOCHS, resume=False, **popen):
    cmd = [sys.executable, "-m", "q2l", "train", *FLAGS, "--epochs", str(epochs), "--output", str(out)]
    if resume:
        cmd += ["--resume", str(out / "last.pt")]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)


def _weights(path):
    state = torch.load(path, weights_only=True)
    return state["epoch"], state["model"], state["ema"]


def _epoch(path):
    return ckpt_io.load(str(path))["epoch"] if path.exists() else 0


def _wait_for_epoch(proc, path, epoch):
    """Waits until the checkpoint at `path` has `epoch` epochs or `proc` ends."""
    seen = None
    while proc.poll() is None:
        stamp = path.stat().st_mtime_ns if path.exists() else None
        if stamp != seen:
            seen = stamp
            if _epoch(path) >= epoch:
                return
        time.sleep(0.01)


def _kill_at(proc, deadline):
    """Kills `proc` at `deadline` unless it ends first; says whether it was killed."""
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        return True
    assert proc.returncode == 0, proc.stderr.read()
    return False


def test_random_kills_always_resume_to_the_uninterrupted_weights(tmp_path):
    started = time.time()
    ref = _train(tmp_path / "ref")
    _wait_for_epoch(ref, tmp_path / "ref" / "last.pt", 1)
    first = time.time() - started
    assert ref.wait(timeout=300) == 0, ref.stderr.read()
    epoch_time = (time.time() - started - first) / (EPOCHS - 1)
    ref_epoch, ref_model, ref_ema = _weights(tmp_path / "ref" / "last.pt")
    assert ref_epoch == EPOCHS

    # Kill moments follow the run's own progress, not fixed seconds, so that a fast machine
    # cannot finish before the kills: once during start-up, then each run a random moment
    # after its first new checkpoint (mid-epoch, or during the next checkpoint's write).
    out = tmp_path / "killed"
    rng = random.Random(0)
    proc = _train(out)
    kills = _kill_at(proc, time.time() + rng.uniform(0.2, 0.5) * first)
    while _epoch(out / "last.pt") < EPOCHS:
        proc = _train(out, resume=(out / "last.pt").exists())
        _wait_for_epoch(proc, out / "last.pt", _epoch(out / "last.pt") + 1)
        killed = _kill_at(proc, time.time() + rng.uniform(0.0, 1.0) * epoch_time)
        kills += killed
        _epoch(out / "last.pt")  # whatever the moment, the checkpoint loads
        if not killed:
            break
        # A write cut short leaves at most a stray temporary file, which never counts.
        (out / "last.pt.tmp").write_bytes(b"half a checkpoint")
    proc = _train(out, resume=True)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert kills >= 2
    epoch, model, ema = _weights(out / "last.pt")
    assert epoch == EPOCHS
    for key in ref_model:
        assert torch.equal(model[key], ref_model[key]), key
        assert torch.equal(ema[key], ref_ema[key]), key


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path):
    out = tmp_path / "run"
    Trainer(resolve({**CONFIG, "epochs": 2, "output": str(out)}), quiet=True).fit(stop_after=1)
    before = (out / "last.pt").read_bytes()
    limit = 512 * 1024  # logs and plots fit; a checkpoint (several MB) does not
    assert len(before) > 2 * limit

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = _train(out, epochs=2, resume=True, preexec_fn=small_files)
    assert proc.wait(timeout=300) == 2
    err = proc.stderr.read().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("q2l train: error: could not write checkpoint"), err
    assert "the previous checkpoint" in err[0] and "is unchanged" in err[0]
    assert (out / "last.pt").read_bytes() == before
    assert not (out / "last.pt.tmp").exists()
    assert ckpt_io.load(str(out / "last.pt"))["epoch"] == 1
