"""Model-state guards: whatever a CAM computation changes on the model is put back on exit,
also when it raises."""
from typing import List

from torch import nn


class FrozenParams:
    """Turns ``requires_grad`` off for every parameter and restores the flags on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)
        return self

    def __exit__(self, *exc) -> None:
        for p in self.params:
            p.requires_grad_(True)


class EvalMode:
    """The model in eval mode inside the block, its own mode again afterwards."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()
        return self

    def __exit__(self, *exc) -> None:
        self.model.train(self.was_training)


class RestoredLayers:
    """Puts the original target layers back if AblationCAM's swap was interrupted."""

    def __init__(self, root: nn.Module, layers: List[nn.Module]) -> None:
        self.root = root
        self.places = []
        for layer in layers:
            for parent in root.modules():
                for key, child in parent._modules.items():
                    if child is layer:
                        self.places.append((parent, key, layer))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for parent, key, layer in self.places:
            if parent._modules.get(key) is not layer:
                parent._modules[key] = layer
