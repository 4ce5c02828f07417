"""D-RISE with fewer forwards (mmattnvis.methods.drise_auto): the convergence rule, the mask
sampling schemes, plain D-RISE unchanged, and ``--drise-masks auto`` through tools/cam_vis.py."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmattnvis.methods.drise import (
    DRISE,
    Predictions,
    RandomMasks,
    drise_saliency,
)
from mmattnvis.methods.drise_auto import (
    SAMPLINGS,
    ConvergenceMonitor,
    SampledMasks,
    drise_saliency_auto,
    make_masks,
    pearson,
)
from mmattnvis.utils.errors import UserInputError

from conftest import ROOT

BOX = torch.tensor([[40., 20., 50., 30.]])


def region_detector(rows=slice(20, 30), cols=slice(40, 50)):
    """One fixed box whose score is the mean brightness of one region of channel 0."""

    def predict(batch):
        s = batch[:, 0, rows, cols].mean(dim=(1, 2))
        return [Predictions(BOX.clone(), s[i:i + 1], torch.tensor([2]))
                for i in range(batch.shape[0])]

    return predict


def _target():
    return Predictions(BOX.clone(), torch.ones(1), torch.tensor([2]))


# --------------------------------------------------------------------------- the rule
def _converging(n, truth, noise):
    """A map after ``n`` masks: the truth plus noise shrinking as 1 / sqrt(n) (two targets)."""
    return np.stack([truth + noise[0] * 3 / np.sqrt(n), -truth + noise[1] * 3 / np.sqrt(n)])


def test_monitor_stops_on_a_converging_sequence_and_records_the_changes():
    rng = np.random.default_rng(0)
    truth = rng.random((16, 16))
    mon = ConvergenceMonitor(tol=0.02, patience=2, min_masks=100)
    stop = None
    for n in range(50, 10001, 50):
        noise = rng.standard_normal((2, 16, 16))  # fresh noise: the map keeps moving
        if mon.update(n, _converging(n, truth, noise)):
            stop = n
            break
    assert stop is not None and 100 <= stop < 10000
    ns = [k for k, _ in mon.history]
    assert ns == list(range(50, stop + 1, 50))
    assert np.isnan(mon.history[0][1])  # no checkpoint at or below 25 masks yet
    # Stopped at the first of two checkpoints in a row below tol, and not before.
    changes = [c for _, c in mon.history]
    assert changes[-1] <= 0.02 and changes[-2] <= 0.02
    assert not any(a <= 0.02 and b <= 0.02 for a, b in zip(changes[1:-2], changes[2:-1]))
    assert mon.change == changes[-1]


def test_monitor_never_stops_on_maps_that_do_not_converge():
    rng = np.random.default_rng(1)
    mon = ConvergenceMonitor(tol=0.05, min_masks=100)
    assert not any(mon.update(n, rng.random((1, 8, 8))) for n in range(50, 2001, 50))
    assert all(c > 0.05 for _, c in mon.history[1:])


def test_monitor_reports_each_targets_change_and_stops_on_the_worst():
    """Two targets: one converges, one is noise. The rule does not stop (the worst decides),
    and each target's own change says which map converged."""
    rng = np.random.default_rng(3)
    truth = rng.random((16, 16))
    mon = ConvergenceMonitor(tol=0.05, min_masks=100)
    for n in range(50, 4001, 50):
        maps = np.stack([truth + rng.standard_normal((16, 16)) / np.sqrt(n),
                         rng.random((16, 16))])
        assert not mon.update(n, maps)
    own = mon.target_changes
    assert len(own) == 2 and own[0] < 0.05 < own[1]
    assert mon.change == max(own)


def test_monitor_compares_with_the_map_at_half_n():
    """The change at N is measured against the last checkpoint <= N / 2, not the previous one:
    a map that keeps turning (by the same angle each time N doubles) changes little between
    successive checkpoints but never converges, and is not taken as converged."""
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 64))
    a -= a.mean()
    b -= b.mean()
    b -= (a @ b) / (a @ a) * a  # zero-mean and orthogonal: Pearson = cos(angle)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    mon = ConvergenceMonitor(tol=0.05, patience=1, min_masks=0)
    for n in range(10, 2001, 10):
        theta = 0.6 * np.log(n)
        assert not mon.update(n, (np.cos(theta) * a + np.sin(theta) * b).reshape(1, 8, 8))
    successive = 1 - np.cos(0.6 * np.log(2000 / 1990))
    assert successive < 1e-4  # a rule on successive maps would have stopped long ago
    assert mon.change == pytest.approx(1 - np.cos(0.6 * np.log(2)), abs=1e-9)


@pytest.mark.parametrize('tol', [0.0, 1.0, -0.1])
def test_bad_tolerance(tol):
    with pytest.raises(UserInputError, match='--drise-tol must be in'):
        ConvergenceMonitor(tol)


# ------------------------------------------------------------------- saliency core (auto)
def test_auto_stops_before_the_cap_records_n_and_finds_the_region():
    image = torch.ones(1, 3, 64, 64)
    masks = make_masks(3000, 8, 0.5, (64, 64), 0, 'sobol')
    mon = ConvergenceMonitor(0.02)
    sal, n, converged = drise_saliency_auto(region_detector(), image, (0, 64, 0, 64), _target(),
                                            masks, mon, batch_size=50, check_every=50)
    assert converged and 100 <= n < 3000 and n % 50 == 0
    assert mon.history[-1][0] == n
    r, c = np.unravel_index(int(sal[0].argmax()), sal[0].shape)
    assert 20 <= r < 30 and 40 <= c < 50
    # The cap is honoured: a tolerance no map reaches in 200 masks stops at the cap.
    sal, n, converged = drise_saliency_auto(region_detector(), image, (0, 64, 0, 64), _target(),
                                            make_masks(200, 8, 0.5, (64, 64), 0, 'random'),
                                            ConvergenceMonitor(1e-9), batch_size=16,
                                            check_every=50)
    assert n == 200 and not converged


def test_auto_is_deterministic_and_independent_of_batching():
    image = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    det = region_detector(slice(5, 20), slice(10, 30))
    runs = [drise_saliency_auto(det, image, (0, 48, 0, 40), _target(),
                                make_masks(600, 6, 0.5, (48, 40), 3, 'sobol'),
                                ConvergenceMonitor(0.05), batch_size=b, check_every=50)
            for b in (7, 50, 7)]
    assert runs[0][1] == runs[1][1] == runs[2][1]
    assert torch.equal(runs[0][0], runs[2][0])
    assert torch.allclose(runs[0][0], runs[1][0], atol=1e-4)


# ------------------------------------------------------------------------------ samplers
@pytest.mark.parametrize('sampling', SAMPLINGS)
def test_samplers_keep_cells_with_probability_p_and_are_seeded(sampling):
    for p in (0.3, 0.5):
        m = make_masks(512, 8, p, (40, 56), 5, sampling)
        assert abs(float(m.grids.float().mean()) - p) < 0.02
        whole = m.batch(0, 512)
        assert whole.shape == (512, 40, 56)
        assert float(whole.min()) >= 0 and float(whole.max()) <= 1 + 1e-6
        assert abs(float(whole.mean()) - p) < 0.02
        assert int(m.shifts.min()) >= 0 and (m.shifts < torch.tensor(m.cell)).all()
        # Shifts cover every offset of a cell.
        assert len(torch.unique(m.shifts[:, 0])) == m.cell[0]
    again = make_masks(64, 8, 0.5, (40, 56), 5, sampling).batch(0, 64)
    assert torch.equal(make_masks(64, 8, 0.5, (40, 56), 5, sampling).batch(0, 64), again)
    assert not torch.equal(make_masks(64, 8, 0.5, (40, 56), 6, sampling).batch(0, 64), again)


def test_antithetic_pairs_are_complements_and_cover_uniformly():
    m = make_masks(100, 8, 0.5, (40, 56), 0, 'antithetic').batch(0, 100)
    assert torch.allclose(m[0::2] + m[1::2], torch.ones(50, 40, 56), atol=1e-6)
    # p != 0.5: (u, 1 - u) keeps each mask's keep probability p and correlates the pair
    # negatively (a cell kept in the first is kept in the second only if u in (1 - p, p)).
    g = make_masks(2000, 8, 0.3, (40, 56), 0, 'antithetic').grids.float()
    assert abs(float(g[1::2].mean()) - 0.3) < 0.02
    assert float((g[0::2] * g[1::2]).mean()) == 0.0


def test_coverage_more_uniform_than_random():
    """Per pixel, the share of the N masks that keep it: plain random masks scatter around p;
    Sobol masks scatter less, antithetic ones not at all (the coverage noise of plain D-RISE)."""
    spread = {}
    for sampling in SAMPLINGS:
        cov = torch.stack([make_masks(256, 16, 0.5, (64, 80), s, sampling).batch(0, 256).mean(0)
                           for s in range(3)])
        spread[sampling] = float(cov.std(dim=(1, 2)).mean())
    assert spread['sobol'] < 0.75 * spread['random']
    assert spread['antithetic'] < 1e-6 and spread['sobol-antithetic'] < 1e-6
    # Sobol: each cell kept in exactly half of the first 2^k masks.
    g = make_masks(256, 16, 0.5, (64, 80), 0, 'sobol').grids.float()
    assert torch.equal(g.mean(0), torch.full_like(g.mean(0), 0.5))


def test_sampled_masks_need_fewer_masks_on_a_constructed_detector():
    """On the region detector (score linear in the mask), the centred Sobol map at 200 masks
    is closer to the 2000-mask plain map than plain and centred random maps at 200 masks, and
    antithetic pairs are no better than half as many Sobol masks (same seeds for all)."""
    image = torch.ones(1, 3, 64, 64)
    args = (region_detector(), image, (0, 64, 0, 64), _target())
    ref = drise_saliency(*args, RandomMasks(2000, 8, 0.5, (64, 64), 9), 250)[0].numpy()
    plain = [drise_saliency(*args, RandomMasks(200, 8, 0.5, (64, 64), s), 200)[0].numpy()
             for s in range(3)]

    def centred(n, sampling):
        return [pearson(drise_saliency(*args, make_masks(n, 8, 0.5, (64, 64), s, sampling), 200,
                                       center=True)[0].numpy(), ref) for s in range(3)]

    sobol = centred(200, 'sobol')
    assert np.mean(sobol) > np.mean(centred(200, 'random')) > np.mean(
        [pearson(m, ref) for m in plain])
    assert min(sobol) > 0.9
    # Linear score: an antithetic pair's second weight mirrors the first.
    np.testing.assert_allclose(centred(200, 'sobol-antithetic'), centred(100, 'sobol'),
                               atol=0.01)


def test_unknown_sampling():
    with pytest.raises(UserInputError, match='--drise-sampling'):
        SampledMasks(4, 2, 0.5, (8, 8), 0, 'halton')


# --------------------------------------------------------------------- plain unchanged
def test_plain_drise_unchanged():
    """A number of masks without --drise-sampling gives the masks and maps of plain D-RISE."""
    a = make_masks(20, 4, 0.5, (30, 41), 3)
    b = RandomMasks(20, 4, 0.5, (30, 41), seed=3)
    assert type(a) is RandomMasks and torch.equal(a.batch(0, 20), b.batch(0, 20))
    assert torch.equal(make_masks(20, 4, 0.5, (30, 41), 3, 'random').batch(0, 20),
                       b.batch(0, 20))
    # Pinned: the first masks of seed 0 as they were before this change.
    g = RandomMasks(3, 2, 0.5, (4, 4), seed=0)
    assert g.grids.flatten().tolist() == [True, False, True, True, True, False, True, False,
                                          True, False, True, True]
    assert g.shifts.tolist() == [[0, 0], [1, 0], [0, 0]]
    d = DRISE(16, 4, 0.5, progress=False)
    assert d.sampling == 'random' and d.num_masks == 16 and not d.auto


def test_auto_defaults_and_bad_options():
    d = DRISE('auto', progress=False)
    assert d.auto and d.sampling == 'sobol' and d.max_masks == 4000
    with pytest.raises(UserInputError, match='--drise-masks takes a number or auto'):
        DRISE('many')
    with pytest.raises(UserInputError, match='--drise-max-masks must be >= 100'):
        DRISE('auto', max_masks=60)
    with pytest.raises(UserInputError, match='--drise-sampling'):
        DRISE('auto', sampling='halton')


# ------------------------------------------------------------------------------ user path
CONFIG = 'mmattnvis::shapes/yolov5_n_shapes.py'
WEIGHTS = 'mmattnvis::shapes/yolov5_n_shapes.pth'


@pytest.fixture(scope='module')
def shapes_image(tmp_path_factory):
    import cv2

    from mmattnvis.datasets.shapes import make_shapes_image
    path = tmp_path_factory.mktemp('drise_auto') / 'shapes.png'
    cv2.imwrite(str(path), make_shapes_image(np.random.default_rng(3))[0])
    return path


def _cam_vis(*args):
    env = dict(__import__('os').environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'cam_vis.py'),
                           *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


def test_cam_vis_drise_masks_auto(shapes_image, tmp_path):
    """As a user types it: the records store the N used and the scheme, and each detection's
    map peaks inside its box; the N is printed."""
    out = _cam_vis(shapes_image, CONFIG, WEIGHTS, '--method', 'drise', '--drise-masks', 'auto',
                   '--drise-grid', '8', '--topk', '1', '--device', 'cpu',
                   '--out-dir', tmp_path / 'o',
                   '--save-results', tmp_path / 'R')
    assert out.returncode == 0, out.stderr
    assert 'D-RISE auto:' in out.stdout and 'masks (converged' in out.stdout
    assert (tmp_path / 'o' / 'shapes.png').is_file()
    from mmattnvis.sinks.records import load_record
    [path] = [p for p in (tmp_path / 'R').rglob('*.json') if p.name != 'index.json']
    record = load_record(str(path))
    maps = {k: m for k, m in record.maps.items() if k.startswith('d')}
    assert maps
    boxes = {d.rank: d.bbox for d in record.detections}
    for name, m in maps.items():
        meta = m.meta
        assert meta['sampling'] == 'sobol' and meta['converged'] is True
        assert meta['fast'] is True  # auto runs the masked passes on the checked copy
        assert 100 <= meta['num_masks'] < 4000 and meta['num_masks'] % 50 == 0
        assert meta['change'] <= meta['tol'] == 0.1 and meta['map_converged'] is True
        assert f'{meta["num_masks"]} masks' in out.stdout
        x0, y0, x1, y1 = boxes[meta['detection']]
        r, c = np.unravel_index(int(np.argmax(m.data)), m.data.shape)
        assert x0 <= c <= x1 and y0 <= r <= y1, name
    doc = json.loads(path.read_text())
    assert any(e['meta'].get('num_masks') for e in doc['maps'])


@pytest.mark.parametrize('args,message', [
    (['--drise-masks', 'lots'], 'expected a number or auto'),
    (['--drise-masks', 'auto', '--drise-tol', '0'], '--drise-tol must be in (0, 1)'),
    (['--drise-masks', 'auto', '--drise-max-masks', '10'], '--drise-max-masks must be >= 100'),
    (['--drise-sampling', 'halton'], "invalid choice: 'halton'"),
])
def test_cam_vis_auto_bad_input(args, message, shapes_image, tmp_path, capfd):
    from mmattnvis.cli import cam_vis
    with pytest.raises(SystemExit) if 'halton' in args or 'lots' in args else _nothing():
        rc = cam_vis.main([str(shapes_image), CONFIG, WEIGHTS, '--method', 'drise',
                           '--device', 'cpu', '--out-dir', str(tmp_path / 'o'), *args])
        assert rc == 2
    err = capfd.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'o').exists()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
