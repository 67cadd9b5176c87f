"""The loader: determinism, DistributedSampler semantics, bad data, shutdown, devices."""

import gc
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import requires_cuda
from q2l import data
from q2l.data import Dataset, Loader


def threads_now() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.fixture(scope="module")
def scenes():
    return Dataset.scenes(n=45, size=40, seed=3)


def collect(loader, epoch=None):
    if epoch is not None:
        loader.set_epoch(epoch)
    return [tuple(t.clone() for t in batch) for batch in loader]


def test_batches_shapes_and_targets(scenes):
    loader = Loader(scenes, data.eval_transform(32), batch_size=8, return_indices=True)
    batches = collect(loader)
    assert len(batches) == len(loader) == 6
    images, targets, indices = batches[0]
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
    assert targets.dtype == torch.float32 and torch.equal(targets, scenes.targets[:8])
    assert indices.tolist() == list(range(8))
    assert batches[-1][0].shape[0] == 5
    assert torch.cat([b[2] for b in batches]).tolist() == list(range(45))


@pytest.mark.parametrize("threads", [1, 3])
def test_same_batches_whatever_the_thread_count(scenes, threads):
    tf = data.train_transform(32, flip=True)
    ref = collect(Loader(scenes, tf, batch_size=7, shuffle=True, seed=5, num_threads=2), epoch=4)
    got = collect(Loader(scenes, tf, batch_size=7, shuffle=True, seed=5, num_threads=threads, prefetch=3), epoch=4)
    assert all(torch.equal(a, b) for x, y in zip(ref, got, strict=False) for a, b in zip(x, y, strict=False))


def test_epochs_and_seeds_change_order_and_augmentation(scenes):
    tf = data.train_transform(32)
    loader = Loader(scenes, tf, batch_size=45, shuffle=True, return_indices=True)
    e0, e1 = collect(loader, 0)[0], collect(loader, 1)[0]
    assert not torch.equal(e0[2], e1[2])
    assert sorted(e0[2].tolist()) == list(range(45))
    assert torch.equal(collect(loader, 0)[0][0], e0[0])
    other_seed = collect(Loader(scenes, tf, batch_size=45, shuffle=True, seed=1, return_indices=True), 0)[0]
    assert not torch.equal(other_seed[2], e0[2])
    # Without set_epoch, each iteration moves on by itself (like a shuffling DataLoader).
    auto = Loader(scenes, tf, batch_size=45, shuffle=True, return_indices=True)
    first, second = next(iter(auto))[2], next(iter(auto))[2]
    assert torch.equal(first, e0[2]) and torch.equal(second, e1[2])


@pytest.mark.parametrize(
    "n,world,drop_last,shuffle",
    [(45, 4, False, False), (45, 4, True, False), (10, 3, False, True), (2, 4, False, True), (45, 1, False, True)],
)
def test_sharding_follows_distributed_sampler(scenes, n, world, drop_last, shuffle):
    from torch.utils.data.distributed import DistributedSampler

    ds = Dataset.scenes(n=n, size=32)
    per_rank = []
    for rank in range(world):
        loader = Loader(
            ds,
            data.eval_transform(16),
            batch_size=4,
            shuffle=shuffle,
            drop_last=drop_last,
            rank=rank,
            world_size=world,
            seed=9,
        )
        order = loader.indices(epoch=2)
        sampler = DistributedSampler(
            list(range(n)), num_replicas=world, rank=rank, shuffle=shuffle, drop_last=drop_last
        )
        assert len(order) == len(sampler)
        if not shuffle:
            assert order == list(sampler)  # the same indices, padding included
        per_rank.append(order)
        got = [i for _, _, idx in _with_indices(loader, 2) for i in idx.tolist()]
        batches = len(order) // 4 if drop_last else -(-len(order) // 4)
        assert got == order[: len(got)] and len(got) == min(len(order), batches * 4)
    flat = sorted(i for o in per_rank for i in o)
    if drop_last:
        assert len(set(flat)) == len(flat) == (n // world) * world
    else:
        assert set(flat) == set(range(n))
        assert len(flat) == -(-n // world) * world  # padded by repeating the first indices


def _with_indices(loader, epoch):
    loader.return_indices = True
    loader.set_epoch(epoch)
    return list(loader)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    names = []
    for i in range(10):
        name = f"img_{i}.jpg" if i % 2 else f"ïmg {i}.png"
        Image.fromarray(rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8)).save(tmp_path / name)
        names.append(name)
    (tmp_path / "list.csv").write_text(
        "image,labels\n" + "".join(f"{n},{'a' if i % 3 else 'b'}\n" for i, n in enumerate(names))
    )
    return tmp_path, names


def test_files_through_the_loader(folder):
    root, _names = folder
    ds = Dataset.from_list(root / "list.csv")
    images, targets = next(iter(Loader(ds, data.eval_transform(24), batch_size=10)))
    assert images.shape == (10, 3, 24, 24)
    assert targets[:, 0].tolist() == [0, 1, 1, 0, 1, 1, 0, 1, 1, 0]


def test_a_corrupt_image_raises_naming_the_file(folder):
    root, names = folder
    (root / names[3]).write_bytes((root / names[3]).read_bytes()[:100])
    ds = Dataset.from_list(root / "list.csv")
    loader = Loader(ds, data.eval_transform(24), batch_size=4)
    with pytest.raises(data.ImageError, match=names[3]):
        list(loader)
    (root / names[3]).unlink()
    with pytest.raises(FileNotFoundError, match=names[3]):
        list(loader)


def test_skip_policy_warns_and_counts(folder):
    root, names = folder
    (root / names[3]).write_bytes(b"not an image")
    (root / names[8]).unlink()
    ds = Dataset.from_list(root / "list.csv")
    loader = Loader(ds, data.eval_transform(24), batch_size=4, on_error="skip", return_indices=True)
    with pytest.warns(UserWarning, match="skipped image") as record:
        batches = list(loader)
    assert len(record) == 2
    assert [b[0].shape[0] for b in batches] == [3, 4, 1]
    assert sorted(i for i, _ in loader.skipped) == [3, 8]
    kept = torch.cat([b[2] for b in batches]).tolist()
    assert kept == [0, 1, 2, 4, 5, 6, 7, 9]
    assert torch.equal(torch.cat([b[1] for b in batches]), ds.targets[kept])


def test_a_batch_with_every_image_skipped_is_dropped_and_counted(folder):
    root, names = folder
    for i in (4, 5, 6, 7):  # the whole second batch
        (root / names[i]).write_bytes(b"not an image")
    ds = Dataset.from_list(root / "list.csv")
    loader = Loader(ds, data.eval_transform(24), batch_size=4, on_error="skip", return_indices=True)
    with pytest.warns(UserWarning, match="dropped batch 1: every image in it was skipped"):
        batches = list(loader)
    assert [b[0].shape[0] for b in batches] == [4, 2]
    assert torch.cat([b[2] for b in batches]).tolist() == [0, 1, 2, 3, 8, 9]
    assert loader.dropped_batches == 1 and sorted(i for i, _ in loader.skipped) == [4, 5, 6, 7]
    assert loader.state_dict()["step"] == 3


def test_bad_arguments(scenes):
    tf = data.eval_transform(16)
    with pytest.raises(ValueError, match="batch_size"):
        Loader(scenes, tf, batch_size=0)
    with pytest.raises(ValueError, match="rank"):
        Loader(scenes, tf, rank=4, world_size=4)
    with pytest.raises(ValueError, match="on_error"):
        Loader(scenes, tf, on_error="ignore")
    with pytest.raises(ValueError, match="no batches"):
        Loader(scenes, tf, batch_size=46, drop_last=True)
    with pytest.raises(TypeError, match="Compose"):
        Loader(scenes, lambda x: x)
    with pytest.raises(TypeError, match="q2l.data.Dataset"):
        Loader(list(range(3)), tf)
    with pytest.raises(ValueError, match="prefetch"):
        Loader(scenes, tf, prefetch=0)


def test_stopping_early_and_garbage_collection_leave_no_threads(scenes):
    loader = Loader(Dataset.scenes(n=400, size=64), data.train_transform(64), batch_size=4, num_threads=2, prefetch=4)
    next(iter(loader))  # the pool's threads now exist
    gc.collect()
    base = threads_now()
    for _ in range(5):
        for i, _batch in enumerate(loader):
            if i == 2:
                break
    it = iter(loader)
    next(it)
    del it
    gc.collect()
    assert threads_now() == base
    del loader
    gc.collect()
    assert threads_now() <= base


def test_pin_memory_without_cuda_warns(scenes):
    if torch.cuda.is_available():
        pytest.skip("CUDA present: pinning works")
    with pytest.warns(UserWarning, match="pin_memory"):
        Loader(scenes, data.eval_transform(16), pin_memory=True)


@requires_cuda
def test_pinned_batches_reach_the_gpu_unchanged(scenes):
    loader = Loader(scenes, data.eval_transform(32), batch_size=16, pin_memory=True)
    plain = Loader(scenes, data.eval_transform(32), batch_size=16)
    for (a, t), (b, _) in zip(loader, plain, strict=False):
        assert a.is_pinned() and t.is_pinned()
        assert torch.equal(a.to("cuda", non_blocking=True).cpu(), b)


def test_uint8_output_normalised_on_the_device_equals_float_output(scenes, device):
    f32 = next(iter(Loader(scenes, data.eval_transform(32), batch_size=9)))[0]
    u8 = next(iter(Loader(scenes, data.eval_transform(32, output="uint8"), batch_size=9)))[0]
    on_device = data.transforms.normalize_on_device(u8.to(device))
    assert on_device.device.type == device
    torch.testing.assert_close(on_device.cpu(), f32, atol=1e-5, rtol=1e-5)


def test_loader_feeds_the_head_and_loss(scenes):
    import q2l

    head = q2l.Query2LabelHead(
        num_classes=10,
        in_channels=3,
        d_model=32,
        nhead=4,
        num_encoder_layers=0,
        num_decoder_layers=1,
        dim_feedforward=64,
    )
    loss_fn = q2l.AsymmetricLoss.from_preset("query2label")
    images, targets = next(iter(Loader(scenes, data.eval_transform(32), batch_size=8)))
    loss = loss_fn(head(images), targets)
    loss.backward()
    assert torch.isfinite(loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert repr(Loader(scenes, data.eval_transform(32))).startswith("Loader(Dataset(scenes")
