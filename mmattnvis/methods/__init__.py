"""Methods: one small class per way of making a map, in typed families (see :mod:`.base`)."""
from ..structures import Detection, Map2D
from .ablation import HeadAblation, first_k_heads, single_head
from .attention import (
    DecoderCrossAttention,
    DeformableSamplingPoints,
    EncoderSelfAttention,
    detections_for_queries,
    fuse_heads,
)
from .base import AttentionMaps, ChannelReduction, Explainer, MapMethod, build_method
from .featmap import (
    CHANNEL_REDUCTIONS,
    PixelWiseMax,
    RawChannels,
    SelectMax,
    SqueezeMean,
    TopKChannels,
    build_reduction,
    check_arrangement,
)

__all__ = [
    'Map2D', 'MapMethod', 'ChannelReduction', 'AttentionMaps', 'Explainer', 'build_method',
    'CHANNEL_REDUCTIONS', 'PixelWiseMax', 'RawChannels', 'SelectMax',
    'SqueezeMean', 'TopKChannels', 'build_reduction', 'check_arrangement', 'HeadAblation',
    'first_k_heads', 'single_head', 'DecoderCrossAttention', 'DeformableSamplingPoints',
    'EncoderSelfAttention', 'Detection', 'detections_for_queries', 'fuse_heads',
    'CheferRelevance', 'attention_rollout', 'DRISE', 'ODAM', 'BoxOcclusion'
]
from .drise import DRISE  # noqa: E402
from .occlusion import BoxOcclusion  # noqa: E402
from .odam import ODAM  # noqa: E402
from .relevance import CheferRelevance  # noqa: E402
from .rollout import attention_rollout  # noqa: E402
