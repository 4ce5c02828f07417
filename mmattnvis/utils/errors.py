"""User-facing errors: one line that names the problem and, where possible, the fix."""
import difflib
from typing import Iterable, List


class UserInputError(ValueError):
    """A problem with what the user passed (paths, names, options).

    CLIs print ``str(err)`` on one line and exit with a non-zero code; no traceback.
    """


def closest_names(name: str, candidates: Iterable[str], n: int = 5) -> List[str]:
    """The ``n`` candidates closest to ``name`` (difflib ratio), best first.

    Names that share the queried prefix come first, so ``backbone.stage9`` suggests
    ``backbone.stage4``-style siblings rather than unrelated modules.
    """
    candidates = list(candidates)
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if len(close) < n:
        parent = name.rsplit('.', 1)[0] if '.' in name else ''
        siblings = [c for c in candidates if parent and c.startswith(parent + '.')
                    and c.count('.') == name.count('.') and c not in close]
        close += siblings[:n - len(close)]
    return close
