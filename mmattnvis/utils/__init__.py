from .checkpoint import CheckpointError, load_checkpoint_safely, read_checkpoint
from .errors import UserInputError, closest_names
from .setup_env import register_all_modules

__all__ = [
    'CheckpointError', 'load_checkpoint_safely', 'read_checkpoint', 'UserInputError',
    'closest_names', 'register_all_modules'
]
