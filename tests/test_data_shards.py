"""WebDataset tar shards: reading, writing, splitting over ranks, resuming, bad input."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from q2l import data
from q2l.data import Dataset, Loader, write_shards
from q2l.errors import InvalidArgumentError, InvalidTypeError

CLASSES = ["cat", "dog", "bird"]


def make_tar(path, members):
    """A shard as WebDataset's own writer lays it out: ``(name, bytes)`` in order."""
    with tarfile.open(path, "w") as t:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
    return path


def jpeg(seed=0, size=(24, 16)):
    from PIL import Image

    buf = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def scenes_shards(tmp_path):
    source = Dataset.scenes(n=20, size=32, seed=1)
    paths = write_shards(source, tmp_path, prefix="train", samples_per_shard=6)
    return source, paths, tmp_path


def test_written_shards_read_back_pixel_for_pixel(scenes_shards):
    source, paths, root = scenes_shards
    assert [p.name for p in paths] == [f"train-00000{k}.tar" for k in range(4)]
    assert (root / "classes.txt").read_text().split("\n")[:-1] == source.classes
    shards = Dataset.shards(root / "train-{000000..000003}.tar")  # classes.txt found beside them
    assert shards.classes == source.classes and len(shards) == 20
    torch.testing.assert_close(shards.targets, source.targets, rtol=0, atol=0)
    for i in (0, 7, 19):
        torch.testing.assert_close(shards[i][0], source[i][0], rtol=0, atol=0)
    assert shards.skipped == []


def test_image_files_are_copied_byte_for_byte(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.jpg").write_bytes(jpeg(i))
    (tmp_path / "list.csv").write_text("image,labels,unknown\n0.jpg,cat,\n1.jpg,dog;bird,cat\n2.jpg,,\n")
    listed = Dataset.from_list(tmp_path / "list.csv", classes=CLASSES)
    (shard,) = write_shards(listed, tmp_path / "out")
    with tarfile.open(shard) as t:
        names = t.getnames()
        assert names[:2] == ["000000.jpg", "000000.json"]
        assert t.extractfile("000001.jpg").read() == (tmp_path / "1.jpg").read_bytes()
        assert json.loads(t.extractfile("000001.json").read()) == {"labels": ["dog", "bird"], "unknown": ["cat"]}
    back = Dataset.shards(shard, classes=CLASSES)
    torch.testing.assert_close(back.targets, listed.targets, rtol=0, atol=0)


def test_shards_from_other_writers_cls_and_json(tmp_path):
    """Shards as WebDataset users make them: .cls indices, .json lists of names or indices,
    extra members ignored, folders in keys, upper-case extensions."""
    img = jpeg()
    make_tar(
        tmp_path / "a.tar",
        [
            ("x/s0.jpg", img),
            ("x/s0.cls", b"0 2"),
            ("x/s0.txt", b"a caption"),
            ("x/s1.JPEG", img),
            ("x/s1.json", json.dumps(["dog", 0]).encode()),
        ],
    )
    make_tar(tmp_path / "b.tar", [("s2.jpg", img), ("s2.json", b'{"labels": ["bird"], "unknown": ["cat"]}')])
    d = Dataset.shards([tmp_path / "a.tar", str(tmp_path / "b.tar")], classes=CLASSES)
    assert d.targets.tolist() == [[1, 0, 1], [1, 1, 0], [-1, 0, 1]]
    assert d[1][0].shape == (3, 16, 24)
    classes = tmp_path / "names.txt"
    classes.write_text("cat\ndog\n\nbird\n")
    assert Dataset.shards(tmp_path / "{a,b}.tar", classes=classes).classes == CLASSES


@pytest.mark.parametrize(
    "members,says",
    [
        ([("k.jpg", b"JPEG")], "k: no labels"),
        ([("k.json", b"[0]")], "k: no image member"),
        ([("k.jpg", b"JPEG"), ("k.json", b'["horse"]')], 'unknown class "horse"'),
        ([("k.jpg", b"JPEG"), ("k.cls", b"7")], "class index 7 is out of range"),
        ([("k.jpg", b"JPEG"), ("k.json", b"{oops")], "malformed JSON"),
        ([("k.jpg", b"JPEG"), ("k.json", b"[0]"), ("j.jpg", b"JPEG"), ("j.cls", b"0"), ("k.cls", b"0")], "not next"),
    ],
)
def test_bad_members_name_shard_and_member_or_are_skipped(tmp_path, members, says):
    img = jpeg()
    good = [("ok.jpg", img), ("ok.cls", b"1")]
    path = make_tar(tmp_path / "s.tar", good + members)
    with pytest.raises(ValueError, match=says) as info:
        Dataset.shards(path, classes=CLASSES)
    assert "s.tar:" in str(info.value)
    d = Dataset.shards(path, classes=CLASSES, on_error="skip")
    assert len(d) >= 1 and len(d.skipped) == 1 and says in d.skipped[0][1]
    assert d.targets[0].tolist() == [0, 1, 0]


def test_truncated_shard_names_the_member_and_keeps_what_came_before(tmp_path):
    img = jpeg()
    path = make_tar(tmp_path / "t.tar", [("a.jpg", img), ("a.cls", b"0"), ("b.jpg", img), ("b.cls", b"1")])
    whole = path.read_bytes()
    path.write_bytes(whole[: whole.index(img, whole.index(img) + 1) + 100])  # into b.jpg
    with pytest.raises(ValueError, match=r"t\.tar: truncated shard: member b\.jpg needs bytes"):
        Dataset.shards(path, classes=CLASSES)
    d = Dataset.shards(path, classes=CLASSES, on_error="skip")
    assert len(d) == 1 and "truncated" in d.skipped[0][1]
    # Nothing left at all is an error even when skipping.
    path.write_bytes(whole[:700])
    with pytest.raises(ValueError, match="no samples"):
        Dataset.shards(path, classes=CLASSES, on_error="skip")


def test_bad_arguments(tmp_path, scenes_shards):
    _, paths, root = scenes_shards
    with pytest.raises(FileNotFoundError):
        Dataset.shards(root / "missing-{0..1}.tar", classes=CLASSES)
    (tmp_path / "lone").mkdir()
    lone = make_tar(tmp_path / "lone" / "s.tar", [("a.jpg", jpeg()), ("a.cls", b"0")])
    with pytest.raises(InvalidArgumentError, match="classes.txt"):
        Dataset.shards(lone)
    with pytest.raises(InvalidTypeError, match="urls"):
        Dataset.shards(3)
    with pytest.raises(ValueError, match="backwards"):
        Dataset.shards(root / "train-{3..1}.tar", classes=CLASSES)
    with pytest.raises(ValueError, match="on_error"):
        Dataset.shards(paths[0], on_error="ignore")
    with pytest.raises(InvalidArgumentError, match="samples_per_shard"):
        write_shards(Dataset.scenes(n=2, size=16), tmp_path / "o", samples_per_shard=0)
    with pytest.raises(InvalidTypeError, match="dataset"):
        write_shards("not a dataset", tmp_path / "o")
    folder = Dataset.scenes(n=4, size=16)
    with pytest.raises(ValueError, match="shuffle_buffer applies to tar shards"):
        Loader(folder, data.eval_transform(16), shuffle_buffer=10)


def _loader(d, **kw):
    return Loader(d, data.train_transform(32), batch_size=3, shuffle=True, seed=5, return_indices=True, **kw)


def test_two_ranks_of_two_workers_see_every_sample_once(scenes_shards):
    _, _, root = scenes_shards
    d = Dataset.shards(root / "train-{000000..000003}.tar")
    for epoch in range(2):
        seen = []
        for rank in range(2):
            loader = _loader(d, rank=rank, world_size=2, num_threads=2, shuffle_buffer=4)
            loader.set_epoch(epoch)
            seen += [i for _, _, idx in loader for i in idx.tolist()]
        assert sorted(seen) == list(range(20)), epoch


def test_resume_continues_with_the_next_unseen_batch(scenes_shards):
    _, _, root = scenes_shards
    d = Dataset.shards(root / "train-{000000..000003}.tar")
    loader = _loader(d, num_threads=2)
    full = list(_loader(d, num_threads=2))
    it = iter(loader)
    first = [next(it) for _ in range(3)]
    state = loader.state_dict()
    assert state == {"epoch": 0, "step": 3}
    del it
    resumed = _loader(d, num_threads=1)  # another thread count: same batches
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(first) + len(rest) == len(full)
    for (a, ta, ia), (b, tb, ib) in zip(first + rest, full, strict=True):
        assert torch.equal(ia, ib) and torch.equal(a, b) and torch.equal(ta, tb)
    assert resumed.state_dict() == {"epoch": 0, "step": len(full)}
    assert next(i for _, _, i in resumed).tolist() != full[0][2].tolist(), "the next iteration is epoch 1"
    with pytest.raises(InvalidArgumentError, match="step"):
        resumed.load_state_dict({"epoch": 0, "step": len(full) + 1})
    with pytest.raises(InvalidTypeError, match="epoch"):
        resumed.load_state_dict({"step": 0})


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 7), min_size=1, max_size=5).filter(any),
    world=st.integers(1, 3),
    buffer=st.integers(0, 9),
    shuffle=st.booleans(),
    epoch=st.integers(0, 3),
)
def test_shard_order_pads_as_distributed_sampler(tmp_path_factory, sizes, world, buffer, shuffle, epoch):
    root = tmp_path_factory.mktemp("sweep")
    img = jpeg(size=(8, 8))
    for k, n in enumerate(sizes):
        make_tar(root / f"s{k}.tar", [m for i in range(n) for m in ((f"{k}_{i}.jpg", img), (f"{k}_{i}.cls", b"0"))])
    d = Dataset.shards([root / f"s{k}.tar" for k in range(len(sizes))], classes=CLASSES)
    total = sum(sizes)
    kw = dict(shuffle=shuffle, world_size=world, shuffle_buffer=buffer)
    orders = [Loader(d, data.eval_transform(8), rank=r, **kw).indices(epoch) for r in range(world)]
    per = -(-total // world)
    assert all(len(o) == per for o in orders)
    flat = [i for o in orders for i in o]
    assert set(flat) == set(range(total)) and len(flat) - len(set(flat)) == per * world - total


def test_q2l_train_and_evaluate_on_shards(tmp_path, capsys):
    import tiny_run
    from q2l.app.cli import main

    tiny = {k: v for k, v in tiny_run.TINY.items() if k not in ("dataset", "train_size", "val_size")}
    size = tiny.get("img_size", 32)
    write_shards(Dataset.scenes(n=48, size=size, seed=1), tmp_path / "sh", prefix="train", samples_per_shard=16)
    write_shards(Dataset.scenes(n=16, size=size, seed=2, split="val"), tmp_path / "sh", prefix="val")
    flags = tiny_run.flags({**tiny, "epochs": 1, "output": str(tmp_path / "run")})
    train = ["--data", f"shards:{tmp_path}/sh/train-{{000000..000002}}.tar"]
    val = ["--val-data", f"shards:{tmp_path / 'sh' / 'val-000000.tar'}"]
    assert main(["train", *flags, *train, *val]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run" / "last.pt"), *val]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 16 and report["classes"] == list(data.SCENE_CLASSES)
    assert main(["train", *flags, "--data", "tar:x.tar"]) == 2
    assert "--data takes shards:PATTERN" in capsys.readouterr().err
    assert main(["train", *flags, *train]) == 2
    assert "--val-data" in capsys.readouterr().err
