"""CREMA-D and Kinetics-Sounds: features, layouts, cache, loader and data-check, on tiny fixture
trees written in the real on-disk layouts (benchmarks/data/fixtures.py)."""
import json
import math
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from benchmarks.__main__ import main
from benchmarks.data import cache as cache_module
from benchmarks.data import load_data
from benchmarks.data.avsplit import LoaderOptions
from benchmarks.data.cache import FeatureShapeError, ensure_cache
from benchmarks.data.check import data_check
from benchmarks.data.cremad import CremaD
from benchmarks.data.fixtures import write_cremad_fixture, write_ks_fixture
from benchmarks.data.kinetics_sounds import KineticsSounds
from benchmarks.data.layouts import frame_files
from benchmarks.data.media import cremad_spectrogram, kinetics_fbank, read_audio, sample_frame_indices
from benchmarks.data.seeds import item_seeds
from benchmarks.grid.config import DataConfig
from benchmarks.core.strict import ConfigError

SMALL = 16  # frame size of the fixture tests: the pipeline is the same at 224, only slower
WRITERS = {"cremad": write_cremad_fixture, "kinetics_sounds": write_ks_fixture}
DATASETS = {"cremad": CremaD, "kinetics_sounds": KineticsSounds}


def fixture_params(dataset: str, root: Path, split_dir: Path, **extra) -> dict:
    return {"root": str(root), "split_dir": str(split_dir), "frame_size": SMALL, **extra}


def fixture_tree(tmp_path: Path, dataset: str, layout: str, **kwargs) -> dict:
    root = tmp_path / f"{dataset}-{layout}"
    return fixture_params(dataset, root, WRITERS[dataset](root, layout, **kwargs))


def params_of(dataset: str, raw: dict):
    return DATASETS[dataset].Params(**raw)


@pytest.fixture(autouse=True)
def quiet_left_out_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


# --- features -------------------------------------------------------------------------------------
def test_cremad_spectrogram_is_257x188_with_the_tone_at_its_bin():
    sr, freq = 22050, 1000.0
    wave = 0.5 * torch.sin(2 * math.pi * freq * torch.arange(int(1.3 * sr)) / sr)
    spec = cremad_spectrogram(wave)
    assert spec.shape == (257, 188)
    assert spec.mean(dim=1).argmax().item() == round(freq * 512 / sr) == 23


def test_cremad_spectrogram_tiles_clips_and_does_not_normalise():
    wave = torch.rand(22050) * 2 - 1  # 1 s: OGM-GE's ×3 tiling gives exactly 3 s
    tiled = torch.from_numpy(np.tile(wave.numpy(), 3)[:66150])
    assert torch.allclose(cremad_spectrogram(wave), cremad_spectrogram(tiled))
    assert torch.allclose(cremad_spectrogram(torch.zeros(5000)), torch.full((257, 188), math.log(1e-7)))
    assert torch.equal(cremad_spectrogram(3 * wave), cremad_spectrogram((3 * wave).clamp(-1, 1)))


def test_kinetics_fbank_is_1024x128_padded_and_normalised_with_audioset_stats():
    wave = torch.randn(3 * 16000) * 0.1
    fbank = kinetics_fbank(wave + 0.2)  # the mean is removed first
    raw = torchaudio.compliance.kaldi.fbank((wave - wave.mean()).unsqueeze(0), htk_compat=True,
                                            use_energy=False, window_type="hanning", num_mel_bins=128,
                                            dither=0.0, frame_shift=10)
    assert fbank.shape == (1024, 128)
    assert torch.allclose(fbank[:len(raw)], (raw + 4.503877) / (2 * 5.141276), atol=1e-4)
    assert torch.allclose(fbank[len(raw):], torch.full((1024 - len(raw), 128), 4.503877 / (2 * 5.141276)))
    assert kinetics_fbank(torch.randn(12 * 16000)).shape == (1024, 128)  # longer clips are cut


def test_read_audio_mixes_channels_to_mono_and_resamples(tmp_path):
    left = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    stereo = np.stack([left, -left], axis=1) * 0.5 + 0.25
    soundfile.write(tmp_path / "stereo.wav", stereo, 16000, subtype="FLOAT")
    wave = read_audio(tmp_path / "stereo.wav", 22050)
    assert wave.dtype == torch.float32 and wave.shape == (22050,)
    assert torch.allclose(wave[50:-50], torch.full((22050 - 100,), 0.25), atol=2e-3)  # the tones cancel
    with pytest.raises(ValueError, match="stereo.wav"):
        (tmp_path / "stereo.wav").write_bytes(b"RIFF junk")
        read_audio(tmp_path / "stereo.wav", 22050)


# --- frame sampling -------------------------------------------------------------------------------
def test_evaluation_takes_segment_centres():
    assert sample_frame_indices(10, 3, train=False, generator=None) == [1, 4, 8]  # segments 0-2, 3-5, 6-9
    assert sample_frame_indices(3, 1, train=False, generator=None) == [1]
    assert sample_frame_indices(2, 3, train=False, generator=None) == [0, 0, 1]  # too few: repeated in order


def test_training_draws_one_frame_in_each_segment_and_hits_all():
    gen = torch.Generator().manual_seed(0)
    draws = [sample_frame_indices(10, 3, train=True, generator=gen) for _ in range(600)]
    segments = [range(0, 3), range(3, 6), range(6, 10)]
    for i, segment in enumerate(segments):
        assert {d[i] for d in draws} == set(segment)


# --- split lists ----------------------------------------------------------------------------------
def test_shipped_split_lists_have_the_published_counts():
    cremad = CremaD.clip_list(CremaD.Params())
    assert Counter(cremad.splits) == {"train": 6698, "test": 744}
    assert cremad.class_names == ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
    train = Counter(cremad.class_names[y] for y, s in zip(cremad.labels, cremad.splits) if s == "train")
    assert train == {"ANG": 1166, "DIS": 1142, "FEA": 1138, "HAP": 1148, "NEU": 973, "SAD": 1131}
    ks = KineticsSounds.clip_list(KineticsSounds.Params())
    assert Counter(ks.splits) == {"train": 14799, "test": 2597}
    assert len(ks.class_names) == 31 and set(ks.labels) == set(range(31))


# --- prepare, check, load for every layout --------------------------------------------------------
@pytest.mark.parametrize("dataset,layout", [("cremad", "raw"), ("cremad", "ogm_ge"), ("kinetics_sounds", "raw"),
                                            ("kinetics_sounds", "gewu")])
def test_prepare_check_and_load_every_layout(tmp_path, dataset, layout):
    raw = fixture_tree(tmp_path, dataset, layout, clips_per_class=2)
    report = data_check(dataset, raw)
    assert report.ok, str(report)
    assert report.layout == layout and report.cache.name.startswith(f"{dataset}-{layout}-")
    audio_shape = (1, 257, 188) if dataset == "cremad" else (1, 1024, 128)
    frames = 1 if dataset == "cremad" else 3
    assert report.shapes == {"audio": audio_shape, "visual": (frames, 3, SMALL, SMALL)}

    data = load_data(DataConfig(name=dataset, params=raw, val_fraction=0.5))
    n_classes = 6 if dataset == "cremad" else 3
    assert (len(data.train), len(data.val), len(data.test)) == (n_classes, n_classes, 2 * n_classes)
    assert data.channels == {"audio": 1, "visual": 3} and data.num_classes == n_classes
    assert not data.val.sampling.train and data.train.sampling.train
    batch = next(data.train.batches(3, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert batch.inputs["audio"].shape == (3, *audio_shape) and batch.inputs["audio"].dtype == torch.float32
    assert batch.inputs["visual"].shape == (3, frames, 3, SMALL, SMALL)
    unimodal = load_data(DataConfig(name=dataset, params=raw, val_fraction=0.5), modalities=("visual",))
    assert set(next(unimodal.val.batches(2)).inputs) == {"visual"}


def test_labels_follow_the_split_files(tmp_path):
    raw = fixture_tree(tmp_path, "cremad", "ogm_ge", clips_per_class=1)
    cache = ensure_cache(CremaD, params_of("cremad", raw))
    names = [cache.class_names[y] for y in cache.labels]
    assert names == [clip.split("_")[2] for clip in cache.index["clips"]]  # CREMA-D names hold the emotion
    raw = fixture_tree(tmp_path, "kinetics_sounds", "gewu", clips_per_class=1)
    cache = ensure_cache(KineticsSounds, params_of("kinetics_sounds", raw))
    listed = {}
    for split in ("train", "test"):
        lines = (Path(raw["split_dir"]) / f"{split}.txt").read_text(encoding="utf-8-sig").split()
        listed.update({clip: int(label) for clip, _, label in (line.split(",") for line in lines)})
    assert dict(zip(cache.index["clips"], cache.labels.tolist())) == listed


def test_mmpareto_fbank_mismatch_names_file_and_shapes_then_matching_features_load(tmp_path):
    raw = fixture_tree(tmp_path, "cremad", "mmpareto", clips_per_class=1)
    with pytest.raises(FeatureShapeError, match=r"\.pt: .*\(1024, 128\).*\(257, 188\)"):
        data_check("cremad", raw)
    assert not list((Path(raw["root"]) / ".geomreg-cache").iterdir())
    for pt in Path(raw["root"], "audio").glob("*.pt"):  # spectrograms of the configured pipeline instead
        np.save(pt.with_suffix(".npy"), cremad_spectrogram(torch.randn(16000) * 0.1).numpy())
        pt.unlink()
    assert data_check("cremad", raw).ok


def test_gewu_frames_sort_by_number(tmp_path):
    names = [f"frame_0000{t}.jpg" for t in range(1, 12)]  # GeWu's names: frame_000010 after frame_00009
    for name in reversed(names):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in frame_files(tmp_path)] == names


# --- problems are reported by name ----------------------------------------------------------------
def test_missing_and_corrupt_files_are_each_reported_by_name(tmp_path):
    raw = fixture_tree(tmp_path, "cremad", "ogm_ge", clips_per_class=1)
    root = Path(raw["root"])
    missing, bad_wav, bad_jpg = CremaD.clip_list(params_of("cremad", raw)).clips[:3]
    (root / "AudioWAV" / f"{missing}.wav").unlink()
    (root / "AudioWAV" / f"{bad_wav}.wav").write_bytes(b"not a wav")
    jpg = sorted((root / "Image-01-FPS" / bad_jpg).iterdir())[0]
    jpg.write_bytes(b"not a jpeg")
    report = data_check("cremad", raw)
    assert not report.ok and set(report.problems) == {missing, bad_wav, bad_jpg}
    assert set(report.unreadable) == {bad_wav, bad_jpg} and set(report.missing) == {missing}
    assert f"{missing}.wav" in report.problems[missing] and "missing" in report.problems[missing]
    assert f"{bad_wav}.wav" in report.problems[bad_wav] and str(jpg) in report.problems[bad_jpg]
    assert all(clip in str(report) for clip in (missing, bad_wav, bad_jpg)) and "NOT OK" in str(report)


def test_missing_root_and_unknown_layout_name_what_is_expected(tmp_path):
    with pytest.raises(ConfigError, match="data.params.root"):
        CremaD.load(CremaD.Params())
    with pytest.raises(FileNotFoundError) as err:
        CremaD.load(CremaD.Params(root=str(tmp_path)))
    assert all(f"{name} (" in str(err.value) for name in ("raw", "ogm_ge", "mmpareto"))
    assert "<root>/VideoFlash/{clip}.flv" in str(err.value)


# --- the cache ------------------------------------------------------------------------------------
def test_interrupted_prepare_leaves_no_cache(tmp_path, monkeypatch):
    raw = fixture_tree(tmp_path, "kinetics_sounds", "gewu")
    real, calls = cache_module.decode_clip, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(cache_module, "decode_clip", failing)
    with pytest.raises(KeyboardInterrupt):
        ensure_cache(KineticsSounds, params_of("kinetics_sounds", raw))
    assert list((Path(raw["root"]) / ".geomreg-cache").iterdir()) == []


def test_second_load_reads_the_cache_without_decoding(tmp_path, monkeypatch):
    raw = fixture_tree(tmp_path, "kinetics_sounds", "raw")
    first = KineticsSounds.load(params_of("kinetics_sounds", raw))[1]

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache_module, "decode_clip", no_decoding)
    second = KineticsSounds.load(params_of("kinetics_sounds", raw))[1]
    a, b = next(first.batches(8)), next(second.batches(8))
    assert all(torch.equal(a.inputs[m], b.inputs[m]) for m in a.inputs) and torch.equal(a.labels, b.labels)
    with pytest.raises(AssertionError, match="decoded again"):  # another preprocessing param: a new cache
        KineticsSounds.load(params_of("kinetics_sounds", {**raw, "num_mel_bins": 64}))


def test_an_index_that_does_not_tell_unreadable_from_missing_clips_is_decoded_again(tmp_path, monkeypatch):
    raw = fixture_tree(tmp_path, "cremad", "ogm_ge", clips_per_class=1)
    first = ensure_cache(CremaD, params_of("cremad", raw))
    older = {k: v for k, v in first.index.items() if k != "unreadable"}  # as written before the split
    (first.path / "index.json").write_text(json.dumps(older))
    again = ensure_cache(CremaD, params_of("cremad", raw))
    assert again.path == first.path and again.index == first.index  # the same cache, written anew

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache_module, "decode_clip", no_decoding)
    assert ensure_cache(CremaD, params_of("cremad", raw)).index == first.index


def test_cache_index_records_params_layout_and_clips(tmp_path):
    raw = fixture_tree(tmp_path, "cremad", "raw", clips_per_class=1)
    cache = ensure_cache(CremaD, params_of("cremad", raw))
    index = json.loads((cache.path / "index.json").read_text())
    assert index["layout"] == "raw" and index["preprocessing"]["hop_length"] == 353
    assert cache.path.name.endswith(index["key"]) and len(index["clips"]) == 12
    assert np.load(cache.path / "n_frames.npy").tolist() == [2, 3] * 6  # 1-fps frames of 2 and 3 s videos


# --- the loader -----------------------------------------------------------------------------------
def test_batches_are_the_same_with_0_and_2_workers(tmp_path):
    raw = fixture_tree(tmp_path, "kinetics_sounds", "gewu", clips_per_class=2)
    p = params_of("kinetics_sounds", raw)

    def epochs(workers: int) -> list:
        train = KineticsSounds.load(p, LoaderOptions(num_workers=workers))[0]
        gen = torch.Generator().manual_seed(0)
        return [b for _ in range(2) for b in train.batches(4, shuffle=True, generator=gen)]

    serial, parallel = epochs(0), epochs(2)
    assert len(serial) == len(parallel) == 4
    for a, b in zip(serial, parallel):
        assert torch.equal(a.labels, b.labels)
        assert all(torch.equal(a.inputs[m], b.inputs[m]) for m in ("audio", "visual"))
    assert not torch.equal(serial[0].inputs["visual"], serial[2].inputs["visual"])  # epochs differ


def numpy_item_seed(epoch_seed: int, row: int) -> int:
    return int(np.random.SeedSequence([epoch_seed, row]).generate_state(1, np.uint64)[0] >> 1)


def test_item_seeds_are_numpys_seed_sequence():
    rng = np.random.default_rng(0)
    rows = [0, 1, 2**32 - 1, *rng.integers(0, 2**32, 200).tolist()]
    for epoch_seed in [0, 1, 2**32 - 1, 2**32, 2**62 - 1, 2**96 - 1, *rng.integers(0, 2**62, 20).tolist()]:
        assert item_seeds(epoch_seed, rows) == [numpy_item_seed(epoch_seed, row) for row in rows]
    for epoch_seed, row in [(2**96, 0), (0, 2**32), (-1, 0)]:  # more words than the pool, or negative
        with pytest.raises(ValueError):
            item_seeds(epoch_seed, [row])


def per_item_reference(arrays, row: int, epoch_seed: int, sampling) -> dict:
    """One item built item by item with torchvision's ops (resized_crop on the uint8 frame, flip, then
    ``(x.float() / 255 - mean) / std``), from the same draws: an oracle of the batched fetch."""
    from torchvision.transforms.v2.functional import horizontal_flip, resized_crop

    from benchmarks.data.avsplit import CROP_DRAWS, IMAGENET_MEAN, IMAGENET_STD, crop_box

    generator = torch.Generator().manual_seed(numpy_item_seed(epoch_seed, row))
    stored = arrays.frames(row)
    chosen = sample_frame_indices(len(stored), sampling.frames_per_clip, sampling.train, generator)
    draws = torch.rand(len(chosen), CROP_DRAWS + 1, generator=generator, dtype=torch.float64).tolist()
    frames = []
    for frame, d in zip(stored[chosen], draws):
        frame = resized_crop(frame, *crop_box(*frame.shape[-2:], d[:CROP_DRAWS]), [sampling.frame_size] * 2,
                             antialias=True)
        frames.append(horizontal_flip(frame) if d[-1] < 0.5 else frame)
    visual = (torch.stack(frames).float() / 255 - IMAGENET_MEAN) / IMAGENET_STD
    audio = torch.from_numpy(arrays.audio(row).astype(np.float32)).unsqueeze(0)
    return {"audio": audio, "visual": visual, "label": torch.tensor(arrays.labels[row])}


@pytest.mark.parametrize("frame_size", [SMALL, 224])
def test_the_batched_fetch_gives_the_per_item_values(tmp_path, frame_size):
    raw = {**fixture_tree(tmp_path, "cremad", "ogm_ge", clips_per_class=1), "frame_size": frame_size}
    train = CremaD.load(params_of("cremad", raw))[0]
    gen = torch.Generator().manual_seed(3)
    batch = next(train.batches(5, shuffle=True, generator=gen))
    gen = torch.Generator().manual_seed(3)  # the order and the epoch seed, as batches() draws them
    order = torch.randperm(len(train), generator=gen)
    epoch_seed = int(torch.randint(2**62, (), generator=gen))
    for k, row in enumerate(train.rows[order][:5].tolist()):
        want = per_item_reference(train.arrays, row, epoch_seed, train.sampling)
        torch.testing.assert_close(batch.inputs["visual"][k], want["visual"], rtol=0, atol=1e-6)  # float32 rounding
        assert torch.equal(batch.inputs["audio"][k], want["audio"])
        assert torch.equal(batch.labels[k], want["label"])
    assert batch.inputs["visual"].is_contiguous() and batch.labels.dtype == torch.int64


def format_1_frames(dataset, p, clips: list[str]) -> list[torch.Tensor]:
    """Each cache row's frames as the planar cache (format 1) stored them: decoded again, n × 3 × S × S."""
    from benchmarks.data.cache import CachePlan, locate_sources, read_frames

    plan = CachePlan.make(dataset, Path(p.root), p)
    sources = {plan.clips.clips[i]: src for i, src in locate_sources(plan).found}
    return [read_frames(sources[clip], p.frame_size) for clip in clips]


def format_1_crop(frame: torch.Tensor, size: int, draws: list[float]) -> torch.Tensor:
    import torch.nn.functional as F
    from torchvision.transforms.v2.functional import horizontal_flip

    from benchmarks.data.avsplit import CROP_DRAWS, crop_box

    top, left, h, w = crop_box(frame.shape[-2], frame.shape[-1], draws[:CROP_DRAWS])
    crop = frame[None, :, top:top + h, left:left + w].contiguous(memory_format=torch.channels_last)
    resized = F.interpolate(crop, size=[size, size], mode="bilinear", antialias=True)[0]
    return horizontal_flip(resized) if draws[CROP_DRAWS] < 0.5 else resized


def format_1_batches(split, planar: list[torch.Tensor], batch_size: int, shuffle: bool, generator) -> list[dict]:
    """``split.batches(batch_size, shuffle, generator)`` as the loader of the planar cache made them (with
    the crop placed by its own draws, not the flip's), kept as the oracle: frames read from the planar
    copy, numpy's SeedSequence and the draws item by item."""
    from benchmarks.data.avsplit import CROP_DRAWS, NORMALIZE_SCALE, NORMALIZE_SHIFT

    s, n = split.sampling, len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    epoch_seed = int(torch.randint(2**62, (), generator=generator)) if s.train else 0
    rows = split.rows[order].tolist()
    batches = []
    for start in range(0, n, batch_size):
        keys = rows[start:start + batch_size]
        visual = torch.empty(len(keys), s.frames_per_clip, 3, s.frame_size, s.frame_size)
        for clip, row in zip(visual, keys):
            item = torch.Generator().manual_seed(numpy_item_seed(epoch_seed, row))
            stored = planar[row]
            chosen = sample_frame_indices(len(stored), s.frames_per_clip, s.train, item)
            frames = stored[chosen]
            if s.train and s.augment:
                draws = torch.rand(len(chosen), CROP_DRAWS + 1, generator=item, dtype=torch.float64).tolist()
                frames = [format_1_crop(frame, s.frame_size, d) for frame, d in zip(frames, draws)]
            for target, frame in zip(clip, frames):
                torch.addcmul(NORMALIZE_SHIFT, frame, NORMALIZE_SCALE, out=target)
        audio = torch.from_numpy(np.stack([split.arrays.audio(row) for row in keys])).float().unsqueeze(1)
        batches.append({"audio": audio, "visual": visual, "label": torch.from_numpy(split.arrays.labels[keys])})
    return batches


def assert_same_bits(got: list, want: list[dict]) -> None:
    assert len(got) == len(want)
    for batch, expected in zip(got, want):
        for name, value in {**batch.inputs, "label": batch.labels}.items():
            other = expected[name]
            assert value.dtype == other.dtype and value.shape == other.shape and value.stride() == other.stride()
            as_int = torch.int32 if value.dtype == torch.float32 else value.dtype
            assert torch.equal(value.view(as_int), other.view(as_int)), name


@pytest.mark.parametrize("dataset,layout,frame_size", [("cremad", "ogm_ge", 224), ("kinetics_sounds", "gewu", SMALL)])
def test_batches_are_bit_for_bit_those_of_the_planar_cache(tmp_path, dataset, layout, frame_size):
    """The channels-last cache, the item seeds of a whole epoch at once and a batch's draws taken before its
    image work give the batches of the planar cache's loader, augmented and for evaluation, to the bit."""
    raw = {**fixture_tree(tmp_path, dataset, layout, clips_per_class=2), "frame_size": frame_size}
    p = params_of(dataset, raw)
    train, test, _ = DATASETS[dataset].load(p)
    planar = format_1_frames(DATASETS[dataset], p, ensure_cache(DATASETS[dataset], p).index["clips"])
    assert all(torch.equal(train.arrays.frames(row), frames) for row, frames in enumerate(planar))
    gen, oracle_gen = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    for _ in range(3):  # epochs: other orders and epoch seeds
        assert_same_bits(list(train.batches(4, shuffle=True, generator=gen)),
                         format_1_batches(train, planar, 4, True, oracle_gen))
    for split in (test, train.for_evaluation()):
        assert_same_bits(list(split.batches(5)), format_1_batches(split, planar, 5, False, None))


def test_crop_box_is_torchvisions_random_resized_crop():
    """The rule by hand (a fitting first try; all tries failing: the central crop), and the distribution
    of area fraction, aspect ratio and position against torchvision's get_params."""
    from torchvision.transforms import RandomResizedCrop

    from benchmarks.data.avsplit import CROP_DRAWS, crop_box

    # area fraction 0.08 + 0.92·0.18478 = 0.25 of 224², aspect exp(log(3/4) + log(16/9)·0.5) = 1: 112 × 112
    assert crop_box(224, 224, [0.18478260869565216, 0.5] * 10 + [0.5, 0.25]) == (56, 28, 112, 112)
    assert crop_box(224, 224, [0.999999, 0.0] * 10 + [0.3, 0.7]) == (0, 0, 224, 224)  # never fits: whole frame
    assert crop_box(100, 300, [0.999999, 0.0] * 10 + [0.0, 0.0]) == (0, 83, 100, 133)  # ratio clamped to 4/3
    with pytest.raises(ValueError, match="22 uniforms, got 23"):  # e.g. the flip's draw taken for the left edge
        crop_box(224, 224, [0.5] * 23)
    ours = torch.tensor([crop_box(180, 240, torch.rand(CROP_DRAWS, generator=torch.Generator().manual_seed(i),
                                                      dtype=torch.float64).tolist()) for i in range(3000)])
    torch.manual_seed(0)
    frame = torch.zeros(3, 180, 240)
    theirs = torch.tensor([RandomResizedCrop.get_params(frame, (0.08, 1.0), (3 / 4, 4 / 3)) for _ in range(3000)])
    for boxes in (ours, theirs):
        assert ((boxes[:, 0] + boxes[:, 2] <= 180) & (boxes[:, 1] + boxes[:, 3] <= 240)).all()
    summary = lambda b: torch.stack([b[:, 2] * b[:, 3] / (180 * 240), (b[:, 3] / b[:, 2]).log(),
                                     b[:, 0] / 180, b[:, 1] / 240]).double()
    for a, b in zip(summary(ours), summary(theirs)):
        assert abs(a.mean() - b.mean()) < 0.02 and abs(a.std() - b.std()) < 0.02


def test_a_pass_interrupted_by_another_fails_loudly_with_workers(tmp_path):
    raw = fixture_tree(tmp_path, "kinetics_sounds", "gewu", clips_per_class=2)
    train = KineticsSounds.load(params_of("kinetics_sounds", raw), LoaderOptions(num_workers=2))[0]
    outer = train.batches(2)
    next(outer)
    assert len(list(train.batches(2))) == 3  # a new pass takes over the workers
    with pytest.raises(RuntimeError, match="iterated again"):
        next(outer)


def test_evaluation_batches_are_deterministic_and_unaugmented(tmp_path):
    raw = fixture_tree(tmp_path, "kinetics_sounds", "gewu")
    test = KineticsSounds.load(params_of("kinetics_sounds", raw))[1]
    first, again = next(test.batches(8)), next(test.batches(8, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(first.inputs["visual"], again.inputs["visual"])
    stored = test.arrays.frames(int(test.rows[0])).float() / 255
    centres = sample_frame_indices(len(stored), 3, train=False, generator=None)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert torch.allclose(first.inputs["visual"][0], (stored[centres] - mean) / std)


# --- command line ---------------------------------------------------------------------------------
def test_cli_prepare_and_data_check(tmp_path, capsys):
    raw = fixture_tree(tmp_path, "kinetics_sounds", "gewu")
    sets = ["--set", f"split_dir={raw['split_dir']}", "--set", f"frame_size={SMALL}"]
    out = str(tmp_path / "out")
    assert main(["prepare", "kinetics_sounds", "--raw", raw["root"], "--out", out, *sets]) == 0
    assert "prepared 6 clips" in capsys.readouterr().out
    assert main(["data-check", "kinetics_sounds", "--root", raw["root"], *sets]) == 0
    assert capsys.readouterr().out.rstrip().endswith("ok")
    next((Path(raw["root"]) / "audio").glob("*.npy")).unlink()
    sets += ["--set", "cache_dir=" + str(tmp_path / "fresh")]
    assert main(["data-check", "kinetics_sounds", "--root", raw["root"], *sets]) == 1


def test_a_crops_place_is_drawn_apart_from_its_flip(tmp_path):
    """Where a crop sits across the frame does not depend on whether it is flipped: the left edge's draw is
    the box's own, not the flip's (each group's mean relative position is about 1/2)."""
    from benchmarks.data.avsplit import ClipItems

    raw = fixture_tree(tmp_path, "cremad", "ogm_ge", clips_per_class=1)
    train = CremaD.load(params_of("cremad", raw))[0]
    items = ClipItems(train.arrays, train.modalities, train.sampling)
    width = train.arrays.frames(0).shape[-1]
    place = {True: [], False: []}
    for seed in range(400):
        (_, left, _, w), flip = items.draw(0, seed)[1][0]
        place[flip].append((left + 0.5) / (width - w + 1))
    for flipped, where in place.items():
        assert len(where) > 150 and 0.42 < float(np.mean(where)) < 0.58, (flipped, np.mean(where))
