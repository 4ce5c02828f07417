from .checkpoint import CheckpointError, load_checkpoint_safely, read_checkpoint
from .errors import UserInputError, closest_names

__all__ = [
    'CheckpointError', 'load_checkpoint_safely', 'read_checkpoint', 'UserInputError',
    'closest_names'
]
