"""``register_all_modules`` as the other OpenMMLab packages offer it (at the package root, not in
``utils``: it imports every layer that registers something)."""
from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmattnvis module that registers something.

    Args:
        init_default_scope: Also make ``mmattnvis`` the current default scope if no scope is
            current yet. An existing scope (e.g. ``mmdet`` set by a runner) is left alone:
            ``mmattnvis.*`` types resolve from any scope through the registry tree.
    """
    import mmattnvis.hooks  # noqa: F401
    import mmattnvis.methods  # noqa: F401
    import mmattnvis.models  # noqa: F401
    import mmattnvis.visualization  # noqa: F401

    if init_default_scope and DefaultScope.get_current_instance() is None:
        DefaultScope.get_instance('mmattnvis', scope_name='mmattnvis')
