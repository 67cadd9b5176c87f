"""Annotation readers on small fixture datasets written by the tests, in every format."""

import gzip
import json
import struct

import numpy as np
import pytest
import torch

from q2l import data
from q2l.data import Dataset


def write_jpeg(path, color=(200, 30, 30), size=(24, 16)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, quality=95)


# COCO ------------------------------------------------------------------------------------


@pytest.fixture
def coco(tmp_path):
    images = [{"id": 10, "file_name": "a.jpg"}, {"id": 3, "file_name": "b.jpg"}, {"id": 7, "file_name": "ünï çødé.jpg"}]
    cats = [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
    anns = [
        {"id": 1, "image_id": 10, "category_id": 18, "bbox": [0, 0, 1, 1]},
        {"id": 2, "image_id": 10, "category_id": 1},
        {"id": 3, "image_id": 10, "category_id": 1},
        {"id": 4, "image_id": 7, "category_id": 90},
    ]
    path = tmp_path / "instances_val.json"
    path.write_text(json.dumps({"info": {}, "images": images, "annotations": anns, "categories": cats}))
    for img in images:
        write_jpeg(tmp_path / "val" / img["file_name"])
    return path, tmp_path / "val"


def test_coco_labels_ordered_by_category_id(coco):
    path, root = coco
    ds = Dataset.coco(path, root)
    assert ds.classes == ["person", "dog", "toothbrush"]
    assert len(ds) == 3
    assert ds.targets.tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert ds.paths[2].endswith("ünï çødé.jpg")
    image, target = ds[2]
    assert image.shape == (3, 16, 24) and image.dtype == torch.uint8
    assert target.tolist() == [0, 0, 1]


def test_coco_annotated_only_drops_unlabelled_images(coco):
    path, root = coco
    ds = Dataset.coco(path, root, annotated_only=True)
    assert len(ds) == 2
    assert ds.targets.tolist() == [[1, 1, 0], [0, 0, 1]]


def test_coco_errors_name_the_problem(tmp_path, coco):
    path, root = coco
    doc = json.loads(path.read_text())
    doc["annotations"].append({"image_id": 3, "category_id": 5})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="unknown category id 5"):
        Dataset.coco(bad, root)
    bad.write_text('{"images": [}')
    with pytest.raises(ValueError, match="not a COCO instances file.*line 1"):
        Dataset.coco(bad, root)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        Dataset.coco(tmp_path / "missing.json", root)
    bad.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "x"}]}))
    with pytest.raises(ValueError, match="empty"):
        Dataset.coco(bad, root)


# VOC -------------------------------------------------------------------------------------


def voc_xml(objects):
    body = "".join(
        f"<object><name>{n}</name><pose>Left</pose><difficult>{int(d)}</difficult><bndbox><xmin>1</xmin></bndbox></object>"
        for n, d in objects
    )
    return f"<annotation><folder>VOC2007</folder><filename>x.jpg</filename>{body}</annotation>"


@pytest.fixture
def voc(tmp_path):
    root = tmp_path / "VOC2007"
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "Annotations").mkdir()
    files = {
        "000001": [("dog", False), ("person", True)],
        "000002": [("cat", True), ("cat", False)],
        "000003": [],
    }
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(files) + "\n")
    for name, objs in files.items():
        (root / "Annotations" / f"{name}.xml").write_text(voc_xml(objs))
    return root


@pytest.mark.parametrize("policy,value", [("ignore", -1), ("positive", 1), ("negative", 0)])
def test_voc_difficult_policies(voc, policy, value):
    ds = Dataset.voc(voc, "trainval", difficult=policy)
    assert ds.classes == list(data.VOC_CLASSES)
    c = {name: i for i, name in enumerate(ds.classes)}
    t = ds.targets
    assert t[0, c["dog"]] == 1 and t[0, c["person"]] == value
    assert t[1, c["cat"]] == 1  # a non-difficult instance wins
    assert t[2].abs().sum() == 0  # an image without objects is all negative
    assert ds.paths[0].endswith("JPEGImages/000001.jpg")


def test_voc_errors(voc):
    (voc / "Annotations" / "000003.xml").write_text(voc_xml([("unicorn", False)]))
    with pytest.raises(ValueError, match=r"000003\.xml:1: unknown class \"unicorn\""):
        Dataset.voc(voc, "trainval")
    (voc / "Annotations" / "000003.xml").write_text("<annotation><object>")
    with pytest.raises(ValueError, match="000003.xml: malformed XML"):
        Dataset.voc(voc, "trainval")
    with pytest.raises(FileNotFoundError, match="test.txt"):
        Dataset.voc(voc, "test")
    with pytest.raises(ValueError, match="difficult must be"):
        Dataset.voc(voc, "trainval", difficult="maybe")


# NUS-WIDE --------------------------------------------------------------------------------


@pytest.fixture
def nus(tmp_path):
    (tmp_path / "ImageList").mkdir()
    (tmp_path / "TrainTestLabels").mkdir()
    (tmp_path / "Concepts81.txt").write_text("airport\nanimal\nbeach\n")
    (tmp_path / "ImageList" / "TrainImagelist.txt").write_text("actor\\0001_1.jpg\nsky\\0002_2.jpg\n")
    for concept, values in {"airport": "0\n1\n", "animal": "1\n1\n", "beach": "0\n0\n"}.items():
        (tmp_path / "TrainTestLabels" / f"Labels_{concept}_Train.txt").write_text(values)
    return tmp_path


def test_nus_wide(nus):
    ds = Dataset.nus_wide(nus, "train")
    assert ds.classes == ["airport", "animal", "beach"]
    assert ds.targets.tolist() == [[0, 1, 0], [1, 1, 0]]
    assert ds.paths[0].endswith("Flickr/actor/0001_1.jpg")


def test_nus_wide_errors(nus):
    (nus / "TrainTestLabels" / "Labels_beach_Train.txt").write_text("0\n")
    with pytest.raises(ValueError, match="Labels_beach_Train.txt: 1 labels for the 2 images"):
        Dataset.nus_wide(nus, "train")
    (nus / "TrainTestLabels" / "Labels_beach_Train.txt").write_text("0\nyes\n")
    with pytest.raises(ValueError, match="Labels_beach_Train.txt:2: expected 0 or 1"):
        Dataset.nus_wide(nus, "train")
    with pytest.raises(ValueError, match="split must be"):
        Dataset.nus_wide(nus, "val")


# Open Images -----------------------------------------------------------------------------


def test_open_images(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "ImageID,Source,LabelName,Confidence\n"
        "img1,verification,/m/cat,1\n"
        "img1,verification,/m/dog,0\n"
        "img2,crowdsource,/m/dog,1\n"
    )
    ds = Dataset.open_images(labels, tmp_path / "images")
    assert ds.classes == ["/m/cat", "/m/dog"]
    assert ds.targets.tolist() == [[1, 0], [-1, 1]]
    assert ds.paths[1].endswith("images/img2.jpg")
    classes = tmp_path / "classes.csv"
    classes.write_text("LabelName,DisplayName\n/m/dog,Dog\n/m/cat,Cat\n/m/x,Cat\n")
    named = Dataset.open_images(labels, tmp_path / "images", classes)
    assert named.classes == ["Dog", "Cat (/m/cat)", "Cat (/m/x)"]
    assert named.targets.tolist() == [[0, 1, -1], [1, -1, -1]]
    classes.write_text("/m/dog,Dog\n")
    with pytest.raises(ValueError, match=r"labels.csv:2: unknown class \"/m/cat\""):
        Dataset.open_images(labels, tmp_path / "images", classes)
    labels.write_text("ImageID,LabelName,Confidence\nimg1,/m/cat,0.5\n")
    with pytest.raises(ValueError, match="labels.csv:2: Confidence must be 0 or 1"):
        Dataset.open_images(labels, tmp_path / "images")
    labels.write_text("ImageID,Label\nimg1,/m/cat\n")
    with pytest.raises(ValueError, match="header must name"):
        Dataset.open_images(labels, tmp_path / "images")


# List files ------------------------------------------------------------------------------


def test_csv_list(tmp_path):
    lst = tmp_path / "train.csv"
    lst.write_text('image,labels,unknown\nphotos/a.jpg,cat;dog,\n"photos/b, c.jpg",,bird\nfotos/ü.jpg,dog,\n')
    ds = Dataset.from_list(lst)
    assert ds.classes == ["bird", "cat", "dog"]
    assert ds.targets.tolist() == [[0, 1, 1], [-1, 0, 0], [0, 0, 1]]
    assert ds.paths[1] == str(tmp_path / "photos" / "b, c.jpg")
    fixed = Dataset.from_list(lst, classes=["dog", "cat", "bird", "fish"])
    assert fixed.targets.tolist() == [[1, 1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0]]
    with pytest.raises(ValueError, match=r"train.csv:2: unknown class \"cat\""):
        Dataset.from_list(lst, classes=["dog", "bird"])
    lst.write_text("image,labels\na.jpg,cat\nb.jpg,cat,extra\n")
    with pytest.raises(ValueError, match="train.csv:3: malformed CSV row"):
        Dataset.from_list(lst)
    lst.write_text("file_name,tags\na.jpg,cat\n")
    with pytest.raises(ValueError, match="header must have an image column"):
        Dataset.from_list(lst)


def test_jsonl_list(tmp_path):
    lst = tmp_path / "train.jsonl"
    lst.write_text(
        '{"image": "a.jpg", "labels": ["cat"]}\n\n{"image": "/abs/b.jpg", "labels": [], "unknown": ["dog"]}\n'
    )
    ds = Dataset.from_list(lst, image_root=tmp_path / "imgs")
    assert ds.classes == ["cat", "dog"]
    assert ds.targets.tolist() == [[1, 0], [0, -1]]
    assert ds.paths == [str(tmp_path / "imgs" / "a.jpg"), "/abs/b.jpg"]
    lst.write_text('{"image": "a.jpg", "labels": ["cat"]}\n{"image": "b.jpg", "labels": "cat"}\n')
    with pytest.raises(ValueError, match='train.jsonl:2: "labels" must be a list'):
        Dataset.from_list(lst)
    lst.write_text('{"image": "a.jpg"}\n{"image": \n')
    with pytest.raises(ValueError, match="train.jsonl:2: malformed JSON"):
        Dataset.from_list(lst)
    lst.write_text("")
    with pytest.raises(ValueError, match="empty"):
        Dataset.from_list(lst)
    with pytest.raises(ValueError, match=".csv or .jsonl"):
        Dataset.from_list(tmp_path / "list.txt")


# In memory and generated -----------------------------------------------------------------


def test_from_arrays():
    images = np.random.default_rng(0).integers(0, 255, (5, 8, 6, 3), dtype=np.uint8)
    targets = np.array([[1, 0], [0, 1], [-1, 1], [0, 0], [1, 1]])
    ds = Dataset.from_arrays(images, targets, ["a", "b"])
    img, t = ds[2]
    assert torch.equal(img, torch.from_numpy(images[2]).permute(2, 0, 1))
    assert t.tolist() == [-1, 1]
    gray = Dataset.from_arrays(images[..., 0], targets, ["a", "b"])
    assert torch.equal(gray[1][0][2], torch.from_numpy(images[1, ..., 0]))
    with pytest.raises(ValueError, match="images must be uint8, got float32"):
        Dataset.from_arrays(images.astype(np.float32), targets, ["a", "b"])
    with pytest.raises(ValueError, match="images must be uint8, got float16"):
        Dataset.from_arrays(torch.from_numpy(images).half(), targets, ["a", "b"])
    with pytest.raises(ValueError, match=r"targets must be \[N, C\]"):
        Dataset.from_arrays(images, targets[:4], ["a", "b"])
    with pytest.raises(ValueError, match="1, 0 or -1"):
        Dataset.from_arrays(images, targets * 2, ["a", "b"])
    with pytest.raises(ValueError, match="appears twice"):
        Dataset.from_arrays(images, targets, ["a", "a"])
    with pytest.raises(IndexError):
        ds[5]


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[::-1],  # negative strides, which torch.from_numpy refuses
        lambda a: a[:, ::-1, ::2] if a.ndim == 4 else a[:, ::-1],
        np.asfortranarray,
        lambda a: a.astype(a.dtype.newbyteorder(">")) if a.dtype.itemsize > 1 else a,
    ],
)
def test_from_arrays_reads_any_strides(view):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (4, 9, 8, 3), dtype=np.uint8)
    targets = rng.integers(-1, 2, (4, 3))
    ours = Dataset.from_arrays(view(images), view(targets), ["a", "b", "c"])
    dense = [np.ascontiguousarray(view(a)) for a in (images, targets)]
    copied = Dataset.from_arrays(*dense, ["a", "b", "c"])
    for i in range(4):
        assert all(torch.equal(x, y) for x, y in zip(ours[i], copied[i], strict=True))


def test_generated_scenes_are_deterministic_and_labelled():
    a = Dataset.scenes(n=20, size=48, seed=1)
    b = Dataset.scenes(n=20, size=48, seed=1)
    val = Dataset.scenes(n=20, size=48, seed=1, split="val")
    assert torch.equal(a[7][0], b[7][0]) and not torch.equal(a[7][0], val[7][0])
    assert a.classes == list(data.SCENE_CLASSES)
    counts = a.targets.sum(1)
    assert counts.min() >= 1 and counts.max() <= 4
    for i in range(20):
        objs = a.objects(i)
        assert {c for c, _ in objs} == set(torch.nonzero(a.targets[i]).flatten().tolist())
        for _, (x0, y0, x1, y1) in objs:
            assert 0 <= (x0 + x1) / 2 <= 48 and x1 > x0 and y1 > y0
    with pytest.raises(ValueError, match="split must be"):
        Dataset.scenes(n=4, split="dev")
    with pytest.raises(ValueError, match="only known for generated"):
        Dataset.from_arrays(np.zeros((1, 4, 4), np.uint8), [[1]], ["a"]).objects(0)


def write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def test_fashion_scenes_from_idx_fixture(tmp_path):
    rng = np.random.default_rng(0)
    items = rng.integers(0, 255, (12, 28, 28), dtype=np.uint8)
    labels = np.arange(12) % 10
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", items)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    ds = Dataset.fashion_mnist_scenes(split="test", n=30, size=56, grid=2, root=tmp_path)
    assert ds.classes == list(data.FASHION_CLASSES)
    for i in range(30):
        objs = ds.objects(i)
        assert 1 <= len(objs) <= 4
        cells = {tuple(b) for _, b in objs}
        assert len(cells) == len(objs)  # distinct cells
        assert {c for c, _ in objs} == set(torch.nonzero(ds.targets[i]).flatten().tolist())
    with pytest.raises(FileNotFoundError, match="train-images"):
        Dataset.fashion_mnist_scenes(split="train", root=tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:5])
    with pytest.raises(ValueError, match="5 labels for 12 images"):
        Dataset.fashion_mnist_scenes(split="test", root=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bnot gzip")
    with pytest.raises(ValueError, match="corrupt gzip"):
        Dataset.fashion_mnist_scenes(split="test", root=tmp_path)


def test_fashion_scenes_item_classes_and_cell_labels(tmp_path):
    items = np.random.default_rng(1).integers(1, 255, (30, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", items)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(30) % 10)
    scenes = dict(split="test", n=40, size=56, grid=2, root=tmp_path)
    plain = Dataset.fashion_mnist_scenes(**scenes)
    # Held-out classes never appear, by name or index, and the label table keeps all ten.
    seen = Dataset.fashion_mnist_scenes(**scenes, item_classes=["Bag", 0])
    assert seen.classes == list(data.FASHION_CLASSES)
    assert set(torch.nonzero(seen.targets)[:, 1].tolist()) == {0, 8}
    cells = Dataset.fashion_mnist_scenes(**scenes, cell_labels=True)
    assert cells.num_classes == 40 and cells.classes[:2] == ["T-shirt/top @ r0c0", "T-shirt/top @ r0c1"]
    for i in range(40):
        # The same scene: each item is one (class, cell) label, and its class is present.
        assert torch.equal(cells[i][0], plain[i][0])
        labels = torch.nonzero(cells.targets[i]).flatten().tolist()
        assert sorted(c for c, _ in cells.objects(i)) == labels
        assert {c // 4 for c in labels} == set(torch.nonzero(plain.targets[i]).flatten().tolist())
        for label, (x0, y0, _, _) in cells.objects(i):
            assert label % 4 == (y0 // 28) * 2 + x0 // 28
    with pytest.raises(ValueError, match="unknown Fashion-MNIST class 'Hat'"):
        Dataset.fashion_mnist_scenes(**scenes, item_classes=["Hat"])
    with pytest.raises(ValueError, match="item_classes must be >= 0 and <= 9, got 10"):
        Dataset.fashion_mnist_scenes(**scenes, item_classes=[10])
    with pytest.raises(ValueError, match=r"no item of the allowed classes \[\]"):
        Dataset.fashion_mnist_scenes(**scenes, item_classes=[])
    with pytest.raises(TypeError, match="cell_labels must be a bool"):
        Dataset.fashion_mnist_scenes(**scenes, cell_labels=1)


def test_hidden_annotations_hide_the_asked_fraction_reproducibly():
    ds = Dataset.scenes(n=400, size=32)
    full = ds.targets
    hidden = ds.with_hidden_annotations(0.5, seed=3)
    t = hidden.targets
    assert (t == -1).sum().item() == round(0.5 * full.numel())
    kept = t != -1
    assert torch.equal(t[kept], full[kept])
    # Positives and negatives are hidden alike, about in proportion.
    share = (full[~kept] == 1).float().mean().item()
    assert abs(share - full.mean().item()) < 0.03  # 4.5 standard deviations
    assert torch.equal(ds.with_hidden_annotations(0.5, seed=3).targets, t)
    assert not torch.equal(ds.with_hidden_annotations(0.5, seed=4).targets, t)
    assert torch.equal(ds.with_hidden_annotations(0.0).targets, full)
    assert (ds.with_hidden_annotations(1.0).targets == -1).all()
    assert torch.equal(hidden[5][1], t[5]) and torch.equal(hidden[5][0], ds[5][0])
    # The loader hands the unknown targets on.
    _, batch = next(iter(data.Loader(hidden, data.eval_transform(32), batch_size=400)))
    assert torch.equal(batch, t)
    assert "50% of annotations hidden (seed 3)" in repr(hidden)
    for bad, error, message in (
        (1.5, ValueError, r"fraction must be in \[0, 1\], got 1.5"),
        (float("nan"), ValueError, "fraction must be a finite number"),
        ("half", TypeError, "fraction must be a number"),
        (True, TypeError, "fraction must be a number"),
    ):
        with pytest.raises(error, match=message):
            ds.with_hidden_annotations(bad)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        ds.with_hidden_annotations(0.5, seed=-1)


@pytest.mark.skipif(not data.FASHION_MNIST_ROOT.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_scenes_from_the_real_files():
    train = Dataset.fashion_mnist_scenes(split="train", n=200, size=112)
    test = Dataset.fashion_mnist_scenes(split="test", n=200, size=112)
    assert len(train) == len(test) == 200
    img, _ = test[0]
    assert img.shape == (3, 112, 112) and img.float().mean() > 5
    assert not torch.equal(train[0][0], test[0][0])
