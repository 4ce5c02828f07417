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

from mmattnvis.utils.cli import (OneLineArgumentParser, add_input_args,  # noqa: E402
                                 cli_main, order_inputs)
from mmattnvis.utils.validate import CfgOptionsAction, validate_cli_args  # noqa: E402

COLUMNS = ('variant', 'detections', 'kept', 'lost', 'gained', 'mean_score_change',
           'min_score_change')


def parse_args(argv=None):
    parser = OneLineArgumentParser(description='Head ablation study for DETR-family detectors')
    add_input_args(parser)
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
    return order_inputs(parser.parse_args(argv))


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
            w = args.cell_width
            cell = cv2.resize(rgb, (w, max(1, round(rgb.shape[0] * w / rgb.shape[1]))),
                              interpolation=cv2.INTER_AREA)
            title = f"{name}: {row['detections']} det, -{row['lost']} +{row['gained']}"
            cell = _draw_predictions(cell, pred, w / rgb.shape[1], model.dataset_meta, title)
            panels.append(put_label(cell, title))
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


def _draw_predictions(cell, pred, scale: float, meta, title: str):
    """Boxes and labels at the cell's scale; labels of overlapping boxes are stacked so none
    covers another (nor the panel title)."""
    import cv2

    from mmattnvis.render.labels import draw_labelled_boxes
    if len(pred) == 0:
        return cell
    classes = (meta or {}).get('classes') or ()
    palette = (meta or {}).get('palette') or [(220, 20, 60), (0, 130, 200), (60, 180, 75),
                                               (245, 130, 48), (145, 30, 180)]
    order = pred.scores.argsort(descending=True).tolist()
    boxes = (pred.bboxes[order].numpy() * scale).tolist()
    labels = [int(pred.labels[i]) for i in order]
    texts = [f'{classes[c] if c < len(classes) else c} {float(pred.scores[i]):.2f}'
             for c, i in zip(labels, order)]
    colors = [tuple(palette[c % len(palette)]) for c in labels]
    fs = max(0.35, min(1.0, cell.shape[1] / 640.0 * 0.6))  # render.image.put_label's size
    (tw, th), base = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, fs, 1 if fs < 0.8 else 2)
    return draw_labelled_boxes(cell, boxes, texts, colors,
                               occupied=[(0, 0, tw + 8, th + base + 8)])


if __name__ == '__main__':
    sys.exit(main())
