"""Model-zoo sweep: build every shipped MMDet / MMYOLO detection config with random weights, run
one small test-mode forward with feature-map (and, for DETRs, attention) capture, render one
panel, and record ``pass`` / ``fail`` / ``skip`` per config (``tools/zoo_check.py``).

``skip`` means the config needs something this machine cannot have (an optional package, CUDA,
an external file) or is not a detector at all; anything else that goes wrong is ``fail``.

Modules, by role: :mod:`.discovery` (which configs), :mod:`.classify` (pass / fail / skip),
:mod:`.sandbox` (no downloads), :mod:`.config_edits` and :mod:`.forward` (making and running one
check), :mod:`.check` (one config end to end), :mod:`.pool` (one process per config) and
:mod:`.report` (the matrix files).
"""
from .check import check_config, init_weights_quietly
from .classify import (
    DownloadAttempted,
    NeedsExternalData,
    NotADetector,
    classify_exception,
    one_line,
)
from .config_edits import (
    check_is_detector,
    check_no_external_inputs,
    lighten_test_cfg,
    shrink_test_pipeline,
)
from .discovery import (
    PACKAGES,
    ConfigEntry,
    Record,
    discover_configs,
    locate_config,
    package_config_root,
)
from .forward import build_detector, forward_and_check, synthetic_image
from .pool import PRELOAD, run_sweep
from .report import STATUSES, read_matrix, render_markdown, summarize, versions_note, write_matrix
from .sandbox import no_downloads

__all__ = [
    'PACKAGES', 'STATUSES', 'Record', 'ConfigEntry', 'NotADetector', 'NeedsExternalData',
    'DownloadAttempted', 'package_config_root', 'discover_configs', 'locate_config', 'one_line',
    'classify_exception', 'no_downloads', 'check_is_detector', 'check_no_external_inputs',
    'shrink_test_pipeline', 'lighten_test_cfg', 'synthetic_image', 'build_detector',
    'forward_and_check', 'check_config', 'init_weights_quietly', 'PRELOAD', 'run_sweep',
    'summarize', 'render_markdown', 'write_matrix', 'read_matrix', 'versions_note'
]
