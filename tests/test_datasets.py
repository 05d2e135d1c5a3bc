import numpy as np
import pytest
import torch

from quantnas.data.benchmarks import load_benchmark_sets
from quantnas.data.bicubic import downscale_uint8
from quantnas.data.datasets import SRTrainDataset, SRValDataset, make_loader
from quantnas.data.images import load_rgb, save_rgb
from quantnas.data.prepare import patch_starts, prepare_patches
from quantnas.data.sources import EMBEDDED_TRAIN, EMBEDDED_VAL, embedded_images, resolve_images
from quantnas.errors import QuantNASError


def _img(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _u8(t):
    return np.round(t.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)


def _find(haystack, needle):
    """Return all (top, left) where needle occurs in haystack."""
    h, w = needle.shape[:2]
    hits = []
    for top in range(haystack.shape[0] - h + 1):
        for left in range(haystack.shape[1] - w + 1):
            if np.array_equal(haystack[top : top + h, left : left + w], needle):
                hits.append((top, left))
    return hits


def test_embedded_splits_are_disjoint_rgb():
    assert not set(EMBEDDED_TRAIN) & set(EMBEDDED_VAL)
    val = embedded_images("val")
    assert [n for n, _ in val] == ["astronaut", "coffee", "chelsea"]
    for _, arr in val:
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
    with pytest.raises(QuantNASError, match="unknown embedded split 'tests'"):
        embedded_images("tests")


def _thumb(arr: np.ndarray, size: int = 24) -> np.ndarray:
    """Gray thumbnail by block averaging (centre square crop), zero-mean unit-norm."""
    g = arr.astype(np.float64).mean(axis=2)
    s = min(g.shape) // size * size
    top, left = (g.shape[0] - s) // 2, (g.shape[1] - s) // 2
    g = g[top : top + s, left : left + s].reshape(size, s // size, size, s // size).mean((1, 3))
    g -= g.mean()
    return g / (np.linalg.norm(g) + 1e-12)


def test_embedded_test_split_is_apart_from_train_and_val():
    from quantnas.data.sources import EMBEDDED_TEST

    assert EMBEDDED_TEST == ("grace_hopper", "camera", "coins", "brick")
    assert not set(EMBEDDED_TEST) & (set(EMBEDDED_TRAIN) | set(EMBEDDED_VAL))
    test = embedded_images("test")
    assert [n for n, _ in test] == list(EMBEDDED_TEST)
    shapes = {n: a.shape for n, a in test}
    assert shapes["grace_hopper"] == (600, 512, 3) and shapes["camera"] == (512, 512, 3)
    for _, arr in test:
        assert arr.dtype == np.uint8 and arr.shape[2] == 3 and arr.std() > 20  # real photos
    # no test photo is a near-duplicate (crop/shift of the same scene) of a train/val photo
    seen = [_thumb(a) for _, a in embedded_images("train") + embedded_images("val")]
    for name, arr in test:
        corr = max(float((_thumb(arr) * t).sum()) for t in seen)
        assert corr < 0.45, name
    # the check itself catches a real near-duplicate: the right motorcycle view vs the left
    import skimage.data

    right = skimage.data.stereo_motorcycle()[1]
    assert max(float((_thumb(right) * t).sum()) for t in seen) > 0.6
    # data.benchmarks=embedded:test reports the photos as one set named by its role
    sets = load_benchmark_sets("embedded:test", scale=4)
    assert list(sets) == ["test"] and len(sets["test"]) == 4
    name, lr, hr = sets["test"][0]
    assert name == "grace_hopper" and tuple(hr.shape) == (3, 600, 512)
    assert tuple(lr.shape) == (3, 150, 128)


def test_embedded_train_loads_motorcycle_left():
    train = dict(embedded_images("train"))
    assert list(train) == list(EMBEDDED_TRAIN)
    assert train["stereo_motorcycle"].shape == (500, 741, 3)
    assert all(a.shape[2] == 3 and a.dtype == np.uint8 for a in train.values())


def test_resolve_images_folder_and_errors(tmp_path):
    save_rgb(tmp_path / "b.png", _img(20, 24))
    save_rgb(tmp_path / "a.png", _img(16, 16, 1))
    names = [n for n, _ in resolve_images(tmp_path)]
    assert names == ["a", "b"]
    with pytest.raises(QuantNASError, match="a.png is 16x16"):
        resolve_images(str(tmp_path), min_size=18)
    with pytest.raises(QuantNASError, match="does not exist"):
        resolve_images(tmp_path / "nope")
    with pytest.raises(QuantNASError, match="unknown embedded split"):
        resolve_images("embedded:foo")


def test_train_crop_aligned_and_lr_is_downscale():
    img = _img(37, 45)
    ds = SRTrainDataset([("x", img)], scale=4, lr_crop=5, augment=False, repeat=3)
    assert len(ds) == 3
    torch.manual_seed(0)
    for i in range(6):
        lr, hr = ds[i % 3]
        assert lr.dtype == torch.float32 and hr.shape == (3, 20, 20) and lr.shape == (3, 5, 5)
        assert 0.0 <= float(hr.min()) and float(hr.max()) <= 1.0
        hr8 = _u8(hr)
        np.testing.assert_array_equal(_u8(lr), downscale_uint8(hr8, 4))
        hits = _find(img, hr8)
        assert hits and all(t % 4 == 0 and left % 4 == 0 for t, left in hits)


def test_train_positions_cover_all_aligned_offsets():
    img = _img(12, 12)
    ds = SRTrainDataset([("x", img)], scale=4, lr_crop=2, augment=False)
    torch.manual_seed(1)
    seen = {_find(img, _u8(ds[0][1]))[0] for _ in range(60)}
    assert seen == {(0, 0), (0, 4), (4, 0), (4, 4)}


def test_train_augment_is_a_dihedral_transform_and_deterministic():
    img = _img(16, 16, 3)
    ds = SRTrainDataset([("x", img)], scale=4, lr_crop=4, augment=True)
    variants = {
        np.ascontiguousarray(v).tobytes()
        for k in range(4)
        for v in (np.rot90(img, k), np.rot90(img[:, ::-1], k))
    }
    torch.manual_seed(7)
    first = [ds[0] for _ in range(20)]
    seen = set()
    for lr, hr in first:
        hr8 = _u8(hr)
        assert hr8.tobytes() in variants
        np.testing.assert_array_equal(_u8(lr), downscale_uint8(hr8, 4))
        seen.add(hr8.tobytes())
    assert len(seen) > 3
    torch.manual_seed(7)
    again = [ds[0] for _ in range(20)]
    for (a_lr, a_hr), (b_lr, b_hr) in zip(first, again, strict=True):
        assert torch.equal(a_lr, b_lr) and torch.equal(a_hr, b_hr)


def test_train_too_small_image_raises():
    with pytest.raises(QuantNASError, match=r"training image small is 30x50.*HR crop 32x32"):
        SRTrainDataset([("small", _img(30, 50))], scale=4, lr_crop=8)


def test_loader_batches():
    ds = SRTrainDataset([("a", _img(32, 32)), ("b", _img(40, 36))], scale=2, lr_crop=6, repeat=3)
    loader = make_loader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert len(batches) == 1  # 6 items, drop_last
    lr, hr = batches[0]
    assert lr.shape == (4, 3, 6, 6) and hr.shape == (4, 3, 12, 12)


def test_val_dataset_crops_and_downscales():
    hr = _img(27, 34)
    ds = SRValDataset([("pic", hr)], scale=4)
    assert ds.scale == 4 and len(ds) == 1
    name, lr_t, hr_t = ds[0]
    assert name == "pic"
    np.testing.assert_array_equal(_u8(hr_t), hr[:24, :32])
    np.testing.assert_array_equal(_u8(lr_t), downscale_uint8(hr[:24, :32], 4))


@pytest.mark.parametrize("lr_name", ["pic", "picx4"])
def test_val_dataset_uses_given_lr(lr_name):
    hr = _img(16, 20)
    lr = _img(4, 5, 9)
    ds = SRValDataset([("pic", hr)], scale=4, lr_images=[(lr_name, lr)])
    np.testing.assert_array_equal(_u8(ds[0][1]), lr)


def test_val_dataset_lr_errors():
    hr = _img(16, 20)
    with pytest.raises(QuantNASError, match=r"LR image pic is 4x4, expected 4x5"):
        SRValDataset([("pic", hr)], scale=4, lr_images=[("pic", _img(4, 4))])
    with pytest.raises(QuantNASError, match="no LR image for HR pic"):
        SRValDataset([("pic", hr)], scale=4, lr_images=[("other", _img(4, 5))])


def _bench_tree(tmp_path):
    root = tmp_path / "bench"
    save_rgb(root / "S5" / "HR" / "baby.png", _img(16, 20))
    save_rgb(root / "S5" / "LR" / "babyx4.png", _img(4, 5, 2))
    save_rgb(root / "S14" / "HR" / "zebra.png", _img(18, 22, 3))
    return root


def test_load_benchmark_sets(tmp_path):
    root = _bench_tree(tmp_path)
    yml = root / "sets.yaml"
    yml.write_text("S5: {hr: S5/HR, lr: S5/LR}\nS14:\n  hr: " + str(root / "S14" / "HR") + "\n")
    sets = load_benchmark_sets(yml, scale=4)
    assert list(sets) == ["S5", "S14"]
    np.testing.assert_array_equal(_u8(sets["S5"][0][1]), _img(4, 5, 2))
    name, lr, hr = sets["S14"][0]
    assert name == "zebra" and hr.shape == (3, 16, 20) and lr.shape == (3, 4, 5)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("S5: [unclosed", "malformed YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("S5: {lr: S5/LR}\n", "S5 is missing the 'hr' key"),
        ("S5: {hr: S5/HR, LR: S5/LR}\n", "S5 has unknown key 'LR'"),
        ("S5: {hr: S5/nothere}\n", "S5.hr folder .*nothere does not exist"),
        ("S5: {hr: S5/HR, lr: S5/HR}\n", "LR image baby is 16x20, expected 4x5"),
    ],
)
def test_benchmark_yaml_errors(tmp_path, text, pattern):
    root = _bench_tree(tmp_path)
    yml = root / "bad.yaml"
    yml.write_text(text)
    with pytest.raises(QuantNASError, match=pattern) as info:
        load_benchmark_sets(yml, scale=4)
    assert "bad.yaml" in str(info.value)
    assert "\n" not in str(info.value)


def test_benchmark_yaml_missing_file(tmp_path):
    with pytest.raises(QuantNASError, match="benchmark sets file .*none.yaml does not exist"):
        load_benchmark_sets(tmp_path / "none.yaml", scale=4)


def test_patch_starts_by_hand():
    # stride 68, patch 200: 0, 68, 136, 204, 272 (+200 = 472 < 500) then flush at 300.
    assert patch_starts(500, 200, 68) == [0, 68, 136, 204, 272, 300]
    # 0, 68, 136, 204 (+200 = 404 < 430) then flush at 230.
    assert patch_starts(430, 200, 68) == [0, 68, 136, 204, 230]
    assert patch_starts(404, 200, 68) == [0, 68, 136, 204]
    assert patch_starts(150, 200, 68) == []


def test_prepare_patches_counts_and_content(tmp_path):
    src = tmp_path / "src"
    big = _img(500, 430, 4)
    save_rgb(src / "big.png", big)
    save_rgb(src / "small.png", _img(100, 100))  # skipped: smaller than a patch
    n = prepare_patches(src, tmp_path / "out", patch=200, stride=70, scale=4)
    # stride 70 -> 68: rows 6 x cols 5 = 30 tiles.
    assert n == 30
    files = sorted((tmp_path / "out").glob("*.png"))
    assert len(files) == 30 and files[0].name == "big_s001.png" and files[-1].name == "big_s030.png"
    np.testing.assert_array_equal(load_rgb(files[1]), big[0:200, 68:268])
    np.testing.assert_array_equal(load_rgb(files[-1]), big[300:500, 230:430])


def test_prepare_rounds_patch_to_scale(tmp_path):
    save_rgb(tmp_path / "src" / "a.png", _img(30, 30))
    n = prepare_patches(tmp_path / "src", tmp_path / "out", patch=15, stride=15, scale=4)
    # patch 12, stride 12: starts 0, 12 (+12 = 24 < 30) then flush 18 -> 3 x 3.
    assert n == 9
    assert load_rgb(tmp_path / "out" / "a_s001.png").shape == (12, 12, 3)


def test_prepare_errors(tmp_path):
    save_rgb(tmp_path / "src" / "a.png", _img(30, 30))
    with pytest.raises(QuantNASError, match="no image in .* is at least 200x200"):
        prepare_patches(tmp_path / "src", tmp_path / "out")
    with pytest.raises(QuantNASError, match="does not exist"):
        prepare_patches(tmp_path / "missing", tmp_path / "out")


def test_embedded_name_lists():
    from quantnas.data.sources import EMBEDDED_ALL, embedded_names

    assert embedded_names("val") == ("astronaut", "coffee", "chelsea")
    assert embedded_names("rocket, coffee") == ("rocket", "coffee")
    assert set(EMBEDDED_ALL) == (
        set(embedded_names("train")) | set(embedded_names("val")) | set(embedded_names("test"))
    )
    imgs = resolve_images("embedded:coffee,rocket")
    assert [n for n, _ in imgs] == ["coffee", "rocket"]
    with pytest.raises(QuantNASError, match="unknown embedded split 'cat'.*comma-separated"):
        resolve_images("embedded:coffee,cat")
