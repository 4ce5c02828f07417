"""Issue 24.5: `cam` on a DETR's decoder (token) layers is a one-line error that names the
layers of that model which do give maps, and the layers it names work."""
import re

import pytest

from mmattnvis.cli import cam_vis

from conftest import DETR_CONFIG, ROOT

IMG = f'{ROOT}/demo/images/shapes_1.jpg'
SMALL = ['--cfg-options', 'test_dataloader.dataset.pipeline.1.scale=(160,160)']


def _cam(args, capfd):
    rc = cam_vis.main([str(a) for a in args])
    out, err = capfd.readouterr()
    return rc, err


@pytest.mark.parametrize('layer', ['decoder', 'decoder.layers.2'])
def test_detr_decoder_layer_is_a_one_line_error_naming_working_layers(layer, tmp_path, capfd):
    rc, err = _cam([IMG, DETR_CONFIG, 'none', '--target-layers', layer, '--score-thr', '0',
                    '--topk', '1', '--device', 'cpu', '--out-dir', tmp_path / 'o'] + SMALL,
                   capfd)
    line = err.strip().splitlines()[-1]
    assert rc == 2 and 'Traceback' not in err and len(err.strip().splitlines()) == 1
    assert line.startswith('error: target layer ' + layer) and 'no H x W grid' in line
    named = re.search(r'layers of this model with maps: (.*?)(, \.\.\.)?;', line).group(1)
    layers = named.split(', ')
    assert {'backbone', 'neck'} <= set(layers) and 'backbone.layer4' in layers
    assert not any(n.startswith(('decoder', 'encoder', 'positional_encoding', 'bbox_head'))
                   for n in layers)
    assert '--mode relevance' in line
    assert not (tmp_path / 'o').exists()
    if layer == 'decoder':  # a layer the message names gives a figure
        rc, err = _cam([IMG, DETR_CONFIG, 'none', '--target-layers', 'backbone.layer4',
                        '--score-thr', '0', '--topk', '1', '--device', 'cpu', '--out-dir',
                        tmp_path / 'ok'] + SMALL, capfd)
        assert rc == 0, err
        assert (tmp_path / 'ok' / 'shapes_1.png').is_file()


def test_dino_decoder_points_to_deformable_mode(tmp_path, capfd):
    rc, err = _cam([IMG, 'mmattnvis::shapes/dino_slim_shapes.py',
                    'mmattnvis::shapes/dino_slim_shapes.pth', '--target-layers', 'decoder',
                    '--device', 'cpu', '--out-dir', tmp_path / 'o'], capfd)
    line = err.strip().splitlines()[-1]
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert 'layers of this model with maps: backbone, neck' in line
    assert '--mode deformable' in line
