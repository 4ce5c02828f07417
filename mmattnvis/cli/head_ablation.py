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
    add_figure_args,
    add_input_args,
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
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    add_figure_args(parser, heat=False)
    parser.add_argument('--unsafe-load', action='store_true')
    return order_inputs(parser.parse_args(argv))


@cli_main
def main(argv=None) -> int:
    args = validate_cli_args(parse_args(argv))
    import csv
    import io

    import cv2

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
    from mmattnvis.render.layout import Panel, Sheet
    from mmattnvis.render.options import FigureOptions
    from mmattnvis.utils.cli import ProgressBar
    from mmattnvis.utils.fileio import write_text_atomic
    from mmattnvis.visualization.figure_output import write_figure

    figure_opts = FigureOptions.from_args(args)

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
            boxes = _boxes(setting_detections(setting), w / rgb.shape[1], model.dataset_meta)
            panels.append(Panel(cell, boxes, caption=title))
        table = io.StringIO(newline='')
        writer = csv.DictWriter(table, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(output_path(args.out_dir, path, root, '_ablation', '.csv'),
                          table.getvalue())
        sheet = Sheet(panels, min(4, len(panels)), pad=3,
                      title=f'{osp.basename(path)}: {args.part} heads off '
                      f'(score > {args.score_thr}, IoU >= {args.iou_thr})')
        write_figure(output_path(args.out_dir, path, root, '_ablation',
                                 figure_opts.extension()), sheet, figure_opts)
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


def _boxes(dets, scale: float, meta) -> list:
    """Boxes and labels (``bird 0.69``) at the cell's scale, highest score first; the figure
    places the labels so that none covers another (nor the panel's caption)."""
    from mmattnvis.render.layout import BoxItem, label_text, palette_color
    classes = (meta or {}).get('classes') or ()
    palette = (meta or {}).get('palette')
    out = []
    for d in sorted(dets, key=lambda d: -d.score):
        name = classes[d.label] if d.label < len(classes) else str(d.label)
        out.append(BoxItem([float(v) * scale for v in d.bbox], palette_color(d.label, palette),
                           label_text(name, d.score)))
    return out


if __name__ == '__main__':
    sys.exit(main())
