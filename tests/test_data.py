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
