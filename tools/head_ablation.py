"""What happens to detections when attention heads are turned off.

Detections with all heads on, with the first k heads off in every decoder layer (k = 1..H), and
with each single head off in every decoder layer; a grid of panels and a table (printed and saved
as CSV) of detections kept, lost and gained (IoU >= 0.5, same class) and the score changes.

    python tools/head_ablation.py IMG CONFIG CHECKPOINT [--part decoder_cross]
"""
import csv
import io
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmattnvis.utils.cli import OneLineArgumentParser, cli_main  # noqa: E402
from mmattnvis.utils.validate import CfgOptionsAction, validate_cli_args  # noqa: E402

COLUMNS = ('variant', 'detections', 'kept', 'lost', 'gained', 'mean_score_change',
           'min_score_change')


def parse_args(argv=None):
    parser = OneLineArgumentParser(description='Head ablation study for DETR-family detectors')
    parser.add_argument('img', help='image file or directory')
    parser.add_argument('config', help='config file (or mmdet:: path)')
    parser.add_argument('checkpoint', help='checkpoint file ("none": random weights)')
    parser.add_argument('--part', default='decoder_cross',
                        choices=['decoder_cross', 'decoder_self', 'encoder'],
                        help='which attention to ablate (in every layer)')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--iou-thr', type=float, default=0.5, help='IoU to match detections')
    parser.add_argument('--out-dir', default='./output')
    parser.add_argument('--device', default='cuda:0')
    parser.add_argument('--cell-width', type=int, default=320)
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    parser.add_argument('--unsafe-load', action='store_true')
    return parser.parse_args(argv)


def format_table(rows) -> str:
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in COLUMNS]
    lines = ['  '.join(c.ljust(w) for c, w in zip(COLUMNS, widths))]
    lines += ['  '.join(_fmt(r[c]).ljust(w) for c, w in zip(COLUMNS, widths)) for r in rows]
    return '\n'.join(lines)


def _fmt(v) -> str:
    return f'{v:+.3f}' if isinstance(v, float) else str(v)


@cli_main
def main(argv=None) -> int:
    args = validate_cli_args(parse_args(argv))
    import cv2
    import numpy as np
    from mmengine.utils import ProgressBar

    from mmattnvis.apis import (UnreadableImages, bgr_to_rgb, build_test_pipeline,
                                collect_images, prepare_batch, run_test_step)
    from mmattnvis.apis.model import init_model_from_args
    from mmattnvis.capture.attention import check_detr_family
    from mmattnvis.methods.ablation import (HeadAblation, all_heads, compare_detections,
                                            first_k_heads, single_head)
    from mmattnvis.render.image import add_title, put_label, tile
    from mmattnvis.utils.cli import write_image_atomic
    from mmattnvis.utils.fileio import write_text_atomic
    from mmattnvis.utils.errors import UserInputError
    from mmattnvis.visualization import FeatMapVisualizer

    images = collect_images(args.img)
    model = init_model_from_args(args)
    check_detr_family(model)
    heads = all_heads(model, args.part)
    if not heads:
        raise UserInputError(f'{type(model).__name__} has no {args.part} attention')
    n_heads = max(heads.values())
    variants = [('all heads on', {})]
    variants += [(f'first {k} off', first_k_heads(model, k, args.part))
                 for k in range(1, n_heads + 1)]
    variants += [(f'head {h} off', single_head(model, h, args.part)) for h in range(n_heads)]
    pipeline = build_test_pipeline(model.cfg)
    vis = FeatMapVisualizer(name=f'mmattnvis_ablation_{id(args)}')
    vis.dataset_meta = model.dataset_meta
    progress = ProgressBar(len(images))
    unreadable = UnreadableImages()
    for path in images:
        img = unreadable.load(path)
        if img is None:  # skipped, named at the end
            progress.update()
            continue
        data = prepare_batch([img], pipeline, [path])
        rgb = bgr_to_rgb(img)
        rows, panels, base = [], [], None
        for name, plan in variants:
            with HeadAblation(model, plan):
                pred = run_test_step(model, data)[0].pred_instances.cpu()
            pred = pred[pred.scores > args.score_thr]
            base = pred if base is None else base
            row = {'variant': name, **compare_detections(base, pred, args.iou_thr)}
            rows.append(row)
            drawn = rgb if len(pred) == 0 else vis.draw_instances_on(rgb, _sample(pred), -1)
            w = args.cell_width
            cell = cv2.resize(drawn, (w, max(1, round(drawn.shape[0] * w / drawn.shape[1]))),
                              interpolation=cv2.INTER_AREA)
            put_label(cell, f"{name}: {row['detections']} det, -{row['lost']} +{row['gained']}")
            panels.append(cell)
        stem = osp.splitext(osp.basename(path))[0]
        table = io.StringIO(newline='')
        writer = csv.DictWriter(table, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(osp.join(args.out_dir, f'{stem}_ablation.csv'), table.getvalue())
        cols = min(4, len(panels))
        grid = tile(panels + [np.full_like(panels[0], 255)] * (-len(panels) % cols),
                    -(-len(panels) // cols), cols, pad=3)
        write_image_atomic(osp.join(args.out_dir, f'{stem}_ablation.png'),
                           add_title(grid, f'{osp.basename(path)}: {args.part} heads off '
                                     f'(score > {args.score_thr}, IoU >= {args.iou_thr})'))
        progress.update()
        print(f'\n{osp.basename(path)} ({args.part}, {n_heads} heads x {len(heads)} layers)')
        print(format_table(rows))
    unreadable.finish(len(images),
                      f'\nfigures and CSV tables written to {osp.abspath(args.out_dir)}')
    return 0


def _sample(pred):
    from mmdet.structures import DetDataSample
    s = DetDataSample()
    s.pred_instances = pred
    return s


if __name__ == '__main__':
    sys.exit(main())
