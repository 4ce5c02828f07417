"""``grad-cam`` internals that :mod:`mmattnvis.methods.cam` builds on.

grad-cam computes a CAM for ``model(input_tensor)`` with its own ``ActivationsAndGradients``
recorder, which ``BaseCAM.__init__`` creates (and which registers hooks on the target layers at
once). Detectors need a recorder that understands multi-level outputs, so
:func:`replace_recorder` releases grad-cam's recorder right after construction and puts ours in
its place (an attribute of that CAM instance only).

Also relied on: ``BaseCAM.compute_cam_per_layer`` / ``aggregate_multi_layers`` and the
``uses_gradients`` flag (one forward, one gradient per target), the signature of
``get_cam_image`` (overridden for the sign-corrected EigenCAM), and ``AblationLayer``'s
``set_next_batch`` / ``indices`` protocol with ``AblationCAM`` (the multi-level ablation layer).
"""
from typing import Any

#: grad-cam versions this code was written and tested for.
TESTED_VERSIONS = ('1.5.7', )
#: (qualified name, sha1 of ``inspect.getsource``) of what it relies on.
FINGERPRINTS = {
    'pytorch_grad_cam.base_cam.BaseCAM.__init__': '3c0f101b9ae0caead2aab906e8c07fba9b8d804b',
    'pytorch_grad_cam.base_cam.BaseCAM.forward': '5e7be61c1a6f90a4024a88779827556aef0a1f31',
    'pytorch_grad_cam.base_cam.BaseCAM.compute_cam_per_layer':
    '11a97e417e8f5752dd5e92bcfbc914bfdb0b3caf',
    'pytorch_grad_cam.base_cam.BaseCAM.aggregate_multi_layers':
    '9c2cc5a4904bb9e3fabe6132820e74caa42d3c5d',
    'pytorch_grad_cam.eigen_cam.EigenCAM.get_cam_image': '37be142bf913aaeeef788df74a7426b35f9836b2',
    'pytorch_grad_cam.eigen_grad_cam.EigenGradCAM.get_cam_image':
    'fd7348e624329a32b804827f14ed870e275710b0',
    'pytorch_grad_cam.activations_and_gradients.ActivationsAndGradients':
    '3c614a67669f9254ed8bc5e0d0cf25c6ed7152c6',
    'pytorch_grad_cam.ablation_layer.AblationLayer': 'e4504a5c9d7dab613e6da2b642620066760e2819',
    'pytorch_grad_cam.ablation_cam.AblationCAM.get_cam_weights':
    '5544c13956a600255b3fbe42301dfd081c3fa41e',
}


def replace_recorder(cam: Any, recorder: Any) -> Any:
    """Release the hooks of ``cam``'s own ``ActivationsAndGradients`` and use ``recorder``
    instead; returns ``recorder``."""
    cam.activations_and_grads.release()
    cam.activations_and_grads = recorder
    return recorder
