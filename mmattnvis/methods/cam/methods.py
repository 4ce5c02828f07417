"""The ``--method`` table: CAM names -> ``grad-cam`` classes, with EigenCAM's sign fixed."""
import functools

import numpy as np

from ...utils.errors import UserInputError

#: ``--method`` names and the ``grad-cam`` classes they stand for. ``eigencam`` and
#: ``eigengradcam`` are grad-cam's classes with the principal component's sign fixed (see
#: :func:`_sign_corrected`); ``eigencam-unsigned`` / ``eigengradcam-unsigned`` are the originals.
CAM_METHODS = {
    'gradcam': 'GradCAM',
    'gradcam++': 'GradCAMPlusPlus',
    'xgradcam': 'XGradCAM',
    'eigencam': 'EigenCAM',
    'eigengradcam': 'EigenGradCAM',
    'segeigencam': 'SegEigenCAM',
    'layercam': 'LayerCAM',
    'hirescam': 'HiResCAM',
    'ablationcam': 'AblationCAM',
    'randomcam': 'RandomCAM',
    'eigencam-unsigned': 'EigenCAM',
    'eigengradcam-unsigned': 'EigenGradCAM',
}
_SIGN_CORRECTED = ('eigencam', 'eigengradcam')


def _squash(name: str) -> str:
    return name.lower().replace('_', '').replace('-', '')


#: Spellings users type (any case, with or without ``-`` / ``_``) -> :data:`CAM_METHODS` keys.
_SPELLINGS = {_squash(k): k for k in CAM_METHODS}
_SPELLINGS.update(gradcamplusplus='gradcam++', gradcampp='gradcam++')


@functools.lru_cache(maxsize=None)
def _sign_corrected(base: type) -> type:
    """``base`` (EigenCAM or EigenGradCAM) with the sign of its principal component fixed.

    An SVD's first component is defined only up to sign, so grad-cam's EigenCAM can light the
    background instead of the objects. The subclass orients the projection so that its
    larger-magnitude extreme is positive, with grad-cam's own
    ``get_2d_projection_with_sign_correction`` (Seg-Eigen-CAM, Chung & Ying 2025, Eq. 13).
    One class per base, so ``cam_class`` returns the same class on every call.
    """
    from pytorch_grad_cam import EigenGradCAM
    weigh_by_grads = issubclass(base, EigenGradCAM)

    def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads,
                      eigen_smooth):
        return principal_projection(grads * activations if weigh_by_grads else activations)

    return type(f'SignCorrected{base.__name__}', (base, ),
                dict(get_cam_image=get_cam_image, __doc__=_sign_corrected.__doc__))


def principal_projection(batch: np.ndarray) -> np.ndarray:
    """``(B, C, H, W)`` -> ``(B, H, W)``: each item projected on the first principal component of
    its channels, oriented so that the larger-magnitude extreme is positive.

    The same as grad-cam's ``get_2d_projection_with_sign_correction`` but with the economy SVD
    (``full_matrices=False``): only the first right-singular vector is used, and the full
    ``HW x HW`` left factor made one 80x80 map take ~20 s.
    """
    batch = np.nan_to_num(np.asarray(batch, dtype=np.float32), nan=0.0)
    out = []
    for act in batch:
        x = act.reshape(act.shape[0], -1).T
        x = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        proj = (x @ vt[0]).reshape(act.shape[1:])
        out.append(-proj if abs(proj.min()) > abs(proj.max()) else proj)
    return np.asarray(out, dtype=np.float32)


def cam_class(method: str):
    """The ``grad-cam`` class for a ``--method`` name (one-line error for an unknown one)."""
    key = _SPELLINGS.get(_squash(method))
    if key is None:
        raise UserInputError(f'unknown CAM method {method!r}; choose {", ".join(CAM_METHODS)}')
    import pytorch_grad_cam
    cls = getattr(pytorch_grad_cam, CAM_METHODS[key])
    return _sign_corrected(cls) if key in _SIGN_CORRECTED else cls
