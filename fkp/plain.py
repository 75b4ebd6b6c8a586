"""Files users pass in (checkpoints, export JSON) are data: bounds on what they may hold, checked
before anything walks them. No torch, no fkp imports: the runtime uses it too."""

from __future__ import annotations

from typing import Any

from fkp.errors import FkpError

# Bounds on the plain data around the weights. A pickle can hold the same list many times
# over (a few KB that unfold into millions of leaves), refer to itself, or nest deeply; fkp's
# own checkpoints hold a few thousand values, nested less than ten deep.
MAX_VALUES = 200_000
MAX_DEPTH = 32
MAX_TEXT = 100_000  # characters in one string


def check_plain_data(value: Any, where: str, skip: tuple[str, ...] = ()) -> None:
    """Raise one FkpError if `value` (read from a file a user passed in) is too large, too
    deep or refers to itself, counting every appearance of a shared part (as anything that
    walks it would). Tensors count as one value; top-level keys in `skip` are not walked."""
    budget = MAX_VALUES
    stack: list[tuple[Any, int]] = [(value, 0)]
    open_containers: set[int] = set()  # ids on the current path, to catch self-reference
    exits: list[tuple[int, int]] = []  # (depth, id) of containers to close
    while stack:
        item, depth = stack.pop()
        while exits and exits[-1][0] >= depth:
            open_containers.discard(exits.pop()[1])
        budget -= 1
        if budget < 0:
            raise FkpError(
                f"{where}: holds more than {MAX_VALUES} values outside the weights (a crafted "
                "or damaged file); use a checkpoint or export written by fkp."
            )
        if isinstance(item, str | bytes) and len(item) > MAX_TEXT:
            raise FkpError(f"{where}: holds a text of {len(item)} characters; use another file.")
        if not isinstance(item, dict | list | tuple):
            continue
        if depth >= MAX_DEPTH:
            raise FkpError(
                f"{where}: nested more than {MAX_DEPTH} levels deep (a crafted or damaged "
                "file); use a checkpoint or export written by fkp."
            )
        if id(item) in open_containers:
            raise FkpError(f"{where}: a structure contains itself (a crafted file); use another.")
        open_containers.add(id(item))
        exits.append((depth, id(item)))
        if isinstance(item, dict):
            for key, child in item.items():
                stack.append((key, depth + 1))
                if not (depth == 0 and key in skip):
                    stack.append((child, depth + 1))
        else:
            stack.extend((child, depth + 1) for child in item)
