import pickle

import numpy as np
import pytest
import torch

from landscape.data import CIFAR10_MEAN, CIFAR10_STD, DIGITS_MEAN, DIGITS_STD, load_data
from landscape.errors import LandscapeError


def test_digits_split_and_normalization():
    tr, te = load_data("digits", "train"), load_data("digits", "test")
    assert (len(tr), len(te)) == (1437, 360)
    assert tr.x.shape == (1437, 1, 8, 8) and tr.y.dtype == torch.int64
    assert abs(float(tr.x.mean())) < 1e-3 and abs(float(tr.x.std()) - 1) < 1e-3
    from sklearn.datasets import load_digits

    d = load_digits()
    # every training image is a real digit image, normalized with the fixed constants
    raw = (tr.x[0, 0] * DIGITS_STD[0] + DIGITS_MEAN[0]) * 16
    match = np.where((np.abs(d.images - raw.numpy()).reshape(len(d.images), -1).max(1) < 1e-4))[0]
    assert len(match) >= 1 and d.target[match[0]] == int(tr.y[0])


def _write_cifar(folder, n_per_batch=6):
    folder.mkdir(parents=True)
    rng = np.random.RandomState(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.randint(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = rng.randint(0, 10, size=n_per_batch).tolist()
        d = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
             b"filenames": [f"img{i}.png".encode() for i in range(n_per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)  # the official files are protocol-2 pickles
        batches[name] = (data, labels)
    return batches


@pytest.mark.parametrize("use_parent", [False, True])
def test_cifar10_reads_the_real_pickle_format(tmp_path, use_parent):
    batches = _write_cifar(tmp_path / "cifar-10-batches-py")
    root = tmp_path if use_parent else tmp_path / "cifar-10-batches-py"
    tr = load_data(f"cifar10:{root}", "train")
    te = load_data(f"cifar10:{root}", "test")
    assert tr.x.shape == (30, 3, 32, 32) and te.x.shape == (6, 3, 32, 32)
    data, labels = batches["data_batch_2"]
    img = data[1].reshape(3, 32, 32).astype(np.float32) / 255
    expect = (img - np.array(CIFAR10_MEAN, dtype=np.float32)[:, None, None]) / \
        np.array(CIFAR10_STD, dtype=np.float32)[:, None, None]
    np.testing.assert_allclose(tr.x[7].numpy(), expect, rtol=0, atol=1e-6)
    assert tr.y[7] == labels[1] and te.y.tolist() == batches["test_batch"][1]
    assert len(load_data(f"cifar10:{root}", "train", samples=4)) == 4


def test_cifar10_missing_and_corrupt_files(tmp_path):
    _write_cifar(tmp_path / "c")
    (tmp_path / "c" / "data_batch_3").unlink()
    with pytest.raises(LandscapeError, match="data_batch_3"):
        load_data(f"cifar10:{tmp_path / 'c'}", "train")
    (tmp_path / "c" / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(LandscapeError, match="corrupt"):
        load_data(f"cifar10:{tmp_path / 'c'}", "test")
    with pytest.raises(LandscapeError, match="not found"):
        load_data(f"cifar10:{tmp_path / 'nope'}")


def test_cifar10_pickle_that_would_run_code_is_refused(tmp_path):
    folder = tmp_path / "c"
    _write_cifar(folder)

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(LandscapeError, match="corrupt"):
        load_data(f"cifar10:{folder}", "test")


def test_imagefolder(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for ci, c in enumerate(["cat", "dog"]):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((40, 50, 3), 60 * ci + i, dtype=np.uint8)).save(tmp_path / split / c / f"{i}.png")
    d = load_data(f"imagefolder:{tmp_path}", "test", image_size=32)
    assert d.x.shape == (4, 3, 32, 32) and d.y.tolist() == [0, 0, 1, 1] and d.num_classes == 2
    (tmp_path / "train" / "dog" / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(LandscapeError, match="bad.jpg"):
        load_data(f"imagefolder:{tmp_path}", "train", image_size=32)


@pytest.mark.parametrize("spec", ["mnist", "cifar10", "synthetic:0", "synthetic:x"])
def test_bad_specs(spec):
    with pytest.raises(LandscapeError):
        load_data(spec)


def test_synthetic_is_seeded():
    a, b = load_data("synthetic:16"), load_data("synthetic:16")
    assert torch.equal(a.x, b.x) and a.x.shape == (16, 3, 32, 32)
    assert load_data("synthetic:4", in_channels=1).x.shape == (4, 1, 8, 8)
    with pytest.raises(LandscapeError, match="--samples"):
        load_data("digits", samples=0)


def _write_cifar100(folder, str_keys=False, n=5):
    folder.mkdir(parents=True)
    rng = np.random.RandomState(1)
    out = {}
    for name in ("train", "test"):
        data = rng.randint(0, 256, size=(n, 3072), dtype=np.uint8)
        fine, coarse = rng.randint(0, 100, size=n).tolist(), rng.randint(0, 20, size=n).tolist()
        d = {"filenames": [f"x{i}.png" for i in range(n)], "batch_label": name, "fine_labels": fine,
             "coarse_labels": coarse, "data": data}
        if not str_keys:  # the official files: a Python 2 pickle, bytes keys after encoding="bytes"
            d = {k.encode(): (v.encode() if isinstance(v, str) else v) for k, v in d.items()}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
        out[name] = (data, fine)
    return out


@pytest.mark.parametrize("str_keys", [False, True])
def test_cifar100_pickles_with_bytes_or_str_keys(tmp_path, str_keys):
    from landscape.datasets.cifar import CIFAR100_MEAN, CIFAR100_STD

    written = _write_cifar100(tmp_path / "cifar-100-python", str_keys)
    te = load_data(f"cifar100:{tmp_path}", "test")
    data, fine = written["test"]
    assert te.x.shape == (5, 3, 32, 32) and te.y.tolist() == fine and te.num_classes == 100
    img = data[3].reshape(3, 32, 32).astype(np.float32) / 255
    expect = (img - np.array(CIFAR100_MEAN, dtype=np.float32)[:, None, None]) / \
        np.array(CIFAR100_STD, dtype=np.float32)[:, None, None]
    np.testing.assert_allclose(te.x[3].numpy(), expect, rtol=0, atol=1e-6)


def _idx(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


@pytest.mark.parametrize("kind,gz,layout", [("mnist", False, "flat"), ("mnist", True, "torchvision"),
                                            ("fashion-mnist", True, "flat")])
def test_mnist_idx_files(tmp_path, kind, gz, layout):
    import gzip

    rng = np.random.RandomState(2)
    folder = tmp_path / ({"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[kind] + "/raw"
                         if layout == "torchvision" else "")
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", 7), ("t10k", 3)):
        x, y = rng.randint(0, 256, size=(n, 28, 28)), rng.randint(0, 10, size=n)
        arrays[prefix] = (x, y)
        for name, arr in ((f"{prefix}-images-idx3-ubyte", x), (f"{prefix}-labels-idx1-ubyte", y)):
            raw = _idx(arr)
            if gz:
                with gzip.open(folder / (name + ".gz"), "wb") as f:
                    f.write(raw)
            else:
                (folder / name).write_bytes(raw)
    tr = load_data(f"{kind}:{tmp_path}", "train", normalization="none")
    x, y = arrays["train"]
    assert tr.x.shape == (7, 1, 28, 28) and tr.y.tolist() == y.tolist()
    np.testing.assert_array_equal(tr.x[:, 0].numpy(), (x.astype(np.float32) / 255))
    te = load_data(f"{kind}:{tmp_path}", "test")
    mean, std = ((0.1307,), (0.3081,)) if kind == "mnist" else ((0.2860,), (0.3530,))
    assert te.mean == mean and te.std == std
    np.testing.assert_allclose(te.x[1, 0].numpy(), (arrays["t10k"][0][1] / 255 - mean[0]) / std[0], atol=1e-6)


def test_mnist_truncated_and_missing(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(np.zeros((4, 28, 28)))[:-10])
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(np.zeros(4)))
    with pytest.raises(LandscapeError, match="truncated"):
        load_data(f"mnist:{tmp_path}")
    with pytest.raises(LandscapeError, match="t10k-images-idx3-ubyte"):
        load_data(f"mnist:{tmp_path}", "test")


def test_imagefolder_keeps_its_own_size_and_never_upscales_silently(tmp_path):
    from PIL import Image

    for ci, c in enumerate(["a", "b"]):
        (tmp_path / c).mkdir()
        for i in range(2):
            Image.fromarray(np.full((32, 32, 3), 100 * ci + i, dtype=np.uint8)).save(tmp_path / c / f"{i}.png")
    d = load_data(f"imagefolder:{tmp_path}", normalization="none")
    assert d.x.shape == (4, 3, 32, 32)
    assert float(d.x[3, 0, 5, 5]) == pytest.approx(101 / 255)
    Image.fromarray(np.zeros((40, 48, 3), dtype=np.uint8)).save(tmp_path / "b" / "big.png")
    with pytest.raises(LandscapeError, match="differ in size.*32x32 and 48x40.*--image-size"):
        load_data(f"imagefolder:{tmp_path}")
    assert load_data(f"imagefolder:{tmp_path}", image_size=16).x.shape == (5, 3, 16, 16)


def test_normalization_choices():
    from landscape.datasets.normalization import REFERENCE_MEAN, REFERENCE_STD

    # the reference implementation's constants, pinned (cifar10/dataloader.py)
    assert REFERENCE_MEAN == (125.3 / 255, 123.0 / 255, 113.9 / 255)
    assert REFERENCE_STD == (63.0 / 255, 62.1 / 255, 66.7 / 255)
    raw = load_data("synthetic:4", normalization="none")
    ref = load_data("synthetic:4", normalization="reference")
    m = torch.tensor(REFERENCE_MEAN).view(1, 3, 1, 1)
    s = torch.tensor(REFERENCE_STD).view(1, 3, 1, 1)
    assert torch.equal(ref.x, (raw.x - m) / s) and ref.mean == REFERENCE_MEAN
    half = load_data("synthetic:4", normalization="0.5/0.25")
    assert torch.equal(half.x, (raw.x - 0.5) / 0.25) and half.std == (0.25,) * 3
    custom = load_data("digits", samples=3, normalization="0.1/0.2")
    plain = load_data("digits", samples=3, normalization="none")
    assert torch.allclose(custom.x, (plain.x - 0.1) / 0.2)
    # default: a checkpoint's recorded normalization comes first
    rec = load_data("digits", samples=3, recorded_normalization={"mean": [0.0], "std": [2.0]})
    assert torch.equal(rec.x, plain.x / 2.0)


@pytest.mark.parametrize("choice,needle", [("reference", "3-channel"), ("0.1,0.2/0.3", "2 mean and 1 std"),
                                           ("0.5", "bad --normalization"), ("a/b", "numbers"),
                                           ("0.5/0", "positive"), ("imagenet", "bad --normalization")])
def test_bad_normalization(choice, needle):
    with pytest.raises(LandscapeError, match=needle):
        load_data("digits", samples=2, normalization=choice)


def test_register_dataset(tmp_path):
    from landscape.datasets import RawImages, register_dataset

    def tiny(arg, split):
        n = int(arg)
        return RawImages(np.full((n, 1, 4, 4), 0.5, dtype=np.float32), np.arange(n) % 2, f"tiny:{n}", 2, (0.25,),
                         (0.5,))

    register_dataset("tiny-test", tiny, overwrite=True)
    d = load_data("tiny-test:3", "test")
    assert d.x.shape == (3, 1, 4, 4) and float(d.x[0, 0, 0, 0]) == 0.5 and d.split == "test"
    register_dataset("tiny-ready", lambda arg, split: (torch.ones(2, 3), torch.tensor([0, 1])), overwrite=True)
    assert torch.equal(load_data("tiny-ready:x").x, torch.ones(2, 3))
    with pytest.raises(LandscapeError, match="model-ready"):
        load_data("tiny-ready:x", normalization="none")
    with pytest.raises(LandscapeError, match="already registered"):
        register_dataset("tiny-test", tiny)
