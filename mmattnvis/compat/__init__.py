"""Patches of other libraries' internals; each names the versions it was written for and has a
test that notices when those internals change (``tests/test_cli_args.py``)."""
from .mmengine_config import patch_config_resolution

__all__ = ['patch_config_resolution']
