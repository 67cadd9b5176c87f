"""MultilabelMetrics across two gloo ranks equals a single-process evaluation."""

import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    rng = np.random.default_rng(11)
    scores = rng.standard_normal((101, 7)).astype(np.float32)
    targets = (rng.random((101, 7)) < 0.3).astype(np.int64)
    targets[0] = 1
    return scores, targets


def _worker(rank: int, port: int, out_dir: str) -> None:
    import q2l.metrics as m

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        scores, targets = _data()
        acc = m.MultilabelMetrics(definition="step", threshold=0.0)
        # Uneven shards: rank 0 gets 40 rows, rank 1 gets 61.
        lo, hi = (0, 40) if rank == 0 else (40, 101)
        acc.update(scores[lo:hi], targets[lo:hi])
        report = acc.compute()
        torch.save({"AP": report["AP"], "OF1": report["OF1"]}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_ranks_equal_one_process(tmp_path):
    import q2l.metrics as m

    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    scores, targets = _data()
    expected = m.average_precision(scores, targets, definition="step")
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(got["AP"], expected)
        assert got["OF1"] == m.threshold_metrics(scores, targets, 0.0)["OF1"]
