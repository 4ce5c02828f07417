"""Patches of other libraries' internals, each with the versions it was written for and a test
(``tests/test_compat.py``) that notices when the patched code changes."""
