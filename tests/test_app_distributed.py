"""``q2l train`` on two gloo processes: identical weights on both ranks, and an evaluation
equal to a single-process one."""

import json
import os
import socket

import torch
import torch.multiprocessing as mp

import tiny_run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# 45 validation images: uneven over 2 ranks, so the padding must be left out.
CONFIG = {**tiny_run.TINY, "train_size": 96, "val_size": 45, "epochs": 1, "batch_size": 8, "device": "cpu"}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    from q2l.app import resolve
    from q2l.app.train import Trainer

    trainer = Trainer(resolve({**CONFIG, "output": os.path.join(out, "run")}), quiet=True)
    try:
        trainer.fit()
        torch.save(
            {"model": trainer.model.state_dict(), "ema": trainer.ema.module.state_dict(), "history": trainer.history},
            os.path.join(out, f"rank{rank}.pt"),
        )
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_train_in_lockstep(tmp_path):
    from q2l import data
    from q2l.app import commands, resolve
    from q2l.app.train import evaluate

    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2))
    for key in ("model", "ema"):
        for name, value in r0[key].items():
            assert torch.equal(value, r1[key][name]), (key, name)
    assert r0["history"][0]["mAP"] == r1["history"][0]["mAP"]
    # Only rank 0 wrote, and its checkpoint holds the shared weights.
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1
    model, _cfg, _ = commands.load_model(str(tmp_path / "run" / "last.pt"), which="model")
    for name, value in model.state_dict().items():
        assert torch.equal(value, r0["model"][name]), name
    # The distributed evaluation equals one process over the whole validation set.
    _, val = __import__("q2l.app.build", fromlist=["datasets"]).datasets(resolve(CONFIG))
    single = evaluate(model, data.Loader(val, data.eval_transform(32), batch_size=64), torch.device("cpu"))
    assert abs(single["mAP"] - json.loads(rows[0])["mAP"]) < 1e-9
