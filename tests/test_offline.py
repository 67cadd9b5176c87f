"""A run reaches no network and writes nothing outside its output folder: ``q2l train``,
``predict``, ``evaluate`` and ``export`` with sockets blocked, HOME an empty folder, the
working directory and TMPDIR watched (torch's own compile cache allowed); under strace
where it works, no internet socket is even connected (onnxruntime's telemetry resolves its
host from C++, past Python's socket)."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

import tiny_run
from q2l import data

#: Run as ``python RUNNER ARGS...``: Python's sockets refuse, then ``q2l ARGS...``.
RUNNER = textwrap.dedent(
    """
    import socket, sys

    def refuse(*args, **kwargs):
        sys.stderr.write(f"NETWORK ATTEMPT {args[:2]!r}\\n")
        raise OSError("network unreachable (blocked by the test)")

    for name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        setattr(socket, name, refuse)
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse

    from q2l.app.cli import main

    sys.exit(main(sys.argv[1:]))
    """
)


def _strace() -> str | None:
    tool = shutil.which("strace")
    if tool is None:
        return None
    probe = subprocess.run([tool, "-f", "-qq", "-o", os.devnull, "true"], capture_output=True)
    return tool if probe.returncode == 0 else None  # ptrace may be refused in a container


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_commands_stay_offline_and_inside_their_output(tmp_path):
    home, work, tmpdir, tools = (tmp_path / n for n in ("home", "work", "tmp", "tools"))
    for d in (home, work, tmpdir, tools):
        d.mkdir()
    (tools / "runner.py").write_text(RUNNER)
    image = tools / "scene.png"
    Image.fromarray(data.Dataset.scenes(n=1, size=32, split="val")[0][0].permute(1, 2, 0).numpy()).save(image)
    np.save(tools / "emb.npy", np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "MPL", "ORT_", "HF_", "TORCH_HOME"))}
    env |= {"HOME": str(home), "TMPDIR": str(tmpdir)}
    strace = _strace()
    out = work / "out"
    commands = [
        ["train", *tiny_run.flags({**tiny_run.TINY, "epochs": 1}), "--output", str(out / "run")],
        [
            "train",
            *tiny_run.flags({**tiny_run.TINY, "epochs": 1}),
            *("--head", "ml-decoder", "--label-embeddings", str(tools / "emb.npy")),
            *("--output", str(out / "zsl")),
        ],
        ["predict", str(out / "zsl" / "best.pt"), str(image)],
        ["evaluate", str(out / "run" / "best.pt"), "--output", str(out / "report.json")],
        ["export", str(out / "run" / "best.pt"), "--format", "safetensors", "--output", str(out / "folder")],
    ]
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401

        commands.append(["export", str(out / "zsl" / "best.pt"), "--output", str(out / "model.onnx")])
    except ImportError:
        pass
    before = {d: _files(d) for d in (home, work, tmpdir)}
    for i, args in enumerate(commands):
        cmd = [sys.executable, str(tools / "runner.py"), *args]
        trace = tools / f"trace{i}.txt"
        if strace is not None:
            cmd = [strace, "-f", "-qq", "-e", "trace=connect", "-o", str(trace), *cmd]
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"q2l {args[0]}: {proc.stderr[-2000:]}"
        assert "NETWORK ATTEMPT" not in proc.stderr, f"q2l {args[0]} tried the network: {proc.stderr[-2000:]}"
        if strace is not None:
            inet = [line for line in trace.read_text().splitlines() if "AF_INET" in line]
            assert not inet, f"q2l {args[0]} connected a socket: {inet[:3]}"
    # torch.export makes torch's compile cache folder (TORCHINDUCTOR_CACHE_DIR, by default
    # $TMPDIR/torchinductor_$USER) as every torch.export and torch.compile does: torch's
    # documented cache, allowed like a cache of the user's own.
    allowed = [out, *tmpdir.glob("torchinductor_*")]
    for folder, old in before.items():
        new = sorted(p for p in _files(folder) - old if not any(a in (p, *p.parents) for a in allowed))
        assert not new, f"q2l wrote outside its output folder: {[os.fspath(p) for p in new[:5]]}"
    assert (out / "run" / "curves.png").is_file() and (out / "folder" / "model.safetensors").is_file()
