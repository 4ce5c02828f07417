"""What happens to detections when attention heads are turned off.

Detections with all heads on, with the first k heads off in every decoder layer (k = 1..H), and
with each single head off in every decoder layer; a grid of panels and a table (printed and saved
as CSV) of detections kept, lost and gained (IoU >= 0.5, same class) and the score changes.

    python tools/head_ablation.py IMG CONFIG CHECKPOINT [--part decoder_cross]
"""
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmattnvis.utils.cli import (  # noqa: E402
    DEVICE_HELP,
    OneLineArgumentParser,
    add_input_args,
    add_result_args,
    cli_main,
    order_inputs,
)
from mmattnvis.utils.validate import CfgOptionsAction, validate_cli_args  # noqa: E402


def parse_args(argv=None):
    parser = OneLineArgumentParser(description='Head ablation study for DETR-family detectors')
    add_input_args(parser)
    parser.add_argument('--part', default='decoder_cross',
                        choices=['decoder_cross', 'decoder_self', 'encoder'],
                        help='which attention to ablate (in every layer)')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--iou-thr', type=float, default=0.5, help='IoU to match detections')
    parser.add_argument('--out-dir', default='./output')
    parser.add_argument('--device', default='auto', help=DEVICE_HELP)
    parser.add_argument('--cell-width', type=int, default=320)
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    add_result_args(parser)
    parser.add_argument('--unsafe-load', action='store_true')
    return order_inputs(parser.parse_args(argv))


@cli_main
def main(argv=None) -> int:
    args = validate_cli_args(parse_args(argv))
    import csv
    import io

    import cv2
    import numpy as np

    from mmattnvis.apis import UnreadableImages, bgr_to_rgb, collect_images
    from mmattnvis.apis.ablation import (
        COLUMNS,
        AblationOptions,
        AblationRun,
        format_table,
        setting_detections,
    )
    from mmattnvis.apis.model import init_model_from_args
    from mmattnvis.apis.records import output_path, record_stem
    from mmattnvis.apis.run_sinks import RunSinks
    from mmattnvis.render.image import add_title, put_label, tile
    from mmattnvis.utils.cli import ProgressBar, write_image_atomic
    from mmattnvis.utils.fileio import write_text_atomic

    images = collect_images(args.img)
    model = init_model_from_args(args)
    run = AblationRun(model, AblationOptions(args.part, args.score_thr, args.iou_thr))
    sinks = RunSinks('ablation', args.save_results, args.report,
                     {'tool': 'head_ablation', 'config': args.config, 'part': args.part})
    root = args.img if osp.isdir(args.img) else osp.dirname(args.img)
    progress = ProgressBar(len(images))
    unreadable = UnreadableImages()
    for path in images:
        img = unreadable.load(path)
        if img is None:  # skipped, named at the end
            progress.update()
            continue
        record = run.run_images([img], [path])[0]
        rgb = bgr_to_rgb(img)
        rows, panels = [], []
        w = args.cell_width
        for setting in record.info['settings']:
            row = setting['row']
            rows.append(row)
            cell = cv2.resize(rgb, (w, max(1, round(rgb.shape[0] * w / rgb.shape[1]))),
                              interpolation=cv2.INTER_AREA)
            title = f"{setting['name']}: {row['detections']} det, -{row['lost']} +{row['gained']}"
            cell = _draw_predictions(cell, setting_detections(setting), w / rgb.shape[1],
                                     model.dataset_meta, title)
            panels.append(put_label(cell, title))
        table = io.StringIO(newline='')
        writer = csv.DictWriter(table, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(output_path(args.out_dir, path, root, '_ablation', '.csv'),
                          table.getvalue())
        cols = min(4, len(panels))
        grid = tile(panels + [np.full_like(panels[0], 255)] * (-len(panels) % cols),
                    -(-len(panels) // cols), cols, pad=3)
        write_image_atomic(output_path(args.out_dir, path, root, '_ablation'),
                           add_title(grid, f'{osp.basename(path)}: {args.part} heads off '
                                     f'(score > {args.score_thr}, IoU >= {args.iou_thr})'))
        sinks.add(record, record_stem(path, root))
        progress.update()
        print(f'\n{osp.basename(path)} ({args.part}, {run.n_heads} heads x {run.n_layers} '
              'layers)')
        print(format_table(rows))
    sinks.skipped(unreadable)
    report = sinks.close()
    unreadable.finish(len(images),
                      f'\nfigures and CSV tables written to {osp.abspath(args.out_dir)}'
                      + (f'; report: {report}' if report else ''))
    return 0


def _draw_predictions(cell, dets, scale: float, meta, title: str):
    """Boxes and labels at the cell's scale; labels of overlapping boxes are stacked so none
    covers another (nor the panel title)."""
    import cv2

    from mmattnvis.render.labels import draw_labelled_boxes
    if not dets:
        return cell
    classes = (meta or {}).get('classes') or ()
    palette = (meta or {}).get('palette') or [(220, 20, 60), (0, 130, 200), (60, 180, 75),
                                               (245, 130, 48), (145, 30, 180)]
    order = sorted(range(len(dets)), key=lambda i: -dets[i].score)
    boxes = [[float(v) * scale for v in dets[i].bbox] for i in order]
    labels = [dets[i].label for i in order]
    texts = [f'{classes[c] if c < len(classes) else c} {dets[i].score:.2f}'
             for c, i in zip(labels, order)]
    colors = [tuple(palette[c % len(palette)]) for c in labels]
    fs = max(0.35, min(1.0, cell.shape[1] / 640.0 * 0.6))  # render.image.put_label's size
    (tw, th), base = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, fs, 1 if fs < 0.8 else 2)
    return draw_labelled_boxes(cell, boxes, texts, colors,
                               occupied=[(0, 0, tw + 8, th + base + 8)])


if __name__ == '__main__':
    sys.exit(main())
