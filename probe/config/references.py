"""The checks that span probes (and files): names unique, secrets that must not be shared,
`depends_on` names that exist and make no cycle. Each problem is located in the file and at
the key where it is, and names where the other half is ("line 4" in the same file,
"a.yaml:4:9" in another of a folder)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import SecretStr

from probe.config.messages import did_you_mean
from probe.config.models import ProbeSpec
from probe.config.source import Loc, Source
from probe.dependency_graph import DependencyGraph
from probe.text import quoted

__all__ = ["Place", "check_dependencies", "check_unique_secrets", "duplicate_name"]

# Where a probe or notifier is: its file's Source and its key path there.
Place = tuple[Source, Loc]


def _other_place(first: Place, key: str, here: Source) -> str | None:
    """Where `first`'s `key` is, said from a problem in `here`'s file: "line 4" in the same
    file, "a.yaml:4:9" in another, "in a.yaml" without a position, None when unknown."""
    src, loc = first
    pos = src.where((*loc, key))
    if src is here:
        return None if pos is None else f"line {pos[0]}"
    return f"in {src.file}" if pos is None else f"{src.file}:{pos[0]}:{pos[1]}"


def duplicate_name(what: str, name: str, here: Place, first: Place) -> None:
    """Report the `what` named `name` at `here` as a second one of that name."""
    src, loc = here
    other = _other_place(first, "name", src)
    if other is None:
        where = ""
    elif other.startswith("in "):
        where = f" ({other})"
    else:
        where = f" (first at {other})"
    src.error((*loc, "name"), f"duplicate {what} name {quoted(name)}{where}")


def check_unique_secrets(probes: Sequence[tuple[ProbeSpec, Place]]) -> None:
    """No two probes of a kind share a secret its `unique_secrets` names (two push probes
    with one token, in one file or two): located at the second, naming the first, never
    showing the value."""
    seen: dict[tuple[str, str, str], tuple[str, Place]] = {}
    for spec, place in probes:
        src, loc = place
        for key in spec.unique_secrets:
            value = getattr(spec, key, None)
            secret = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not isinstance(secret, str):
                continue
            name, first = seen.setdefault((spec.kind, key, secret), (spec.name, place))
            if first is place:
                continue
            other = _other_place(first, key, src)
            at = "" if other is None else f" ({other})"
            src.error(
                (*loc, key),
                f"the same {key} as {spec.kind} probe {quoted(name)}{at}; each needs its own",
            )


def check_dependencies(probes: Sequence[tuple[ProbeSpec, Place]], where: dict[str, Place]) -> None:
    """Every `depends_on` name is a probe of the config (`where`: every probe name, also of
    entries that failed validation, in file order), and no chain of them comes back to
    where it started (located at the name, or at the depends_on of the cycle's first probe
    in file order)."""
    names = set(where)
    for spec, (src, loc) in probes:
        for index, dep in enumerate(spec.depends_on):
            if dep not in names:
                hint = did_you_mean(dep, sorted(names))
                src.error((*loc, "depends_on", index), f"no probe is named {quoted(dep)}{hint}")
    graph = DependencyGraph({spec.name: spec.depends_on for spec, _ in probes})
    cycle = graph.find_cycle()
    if cycle is not None:
        order = list(where)
        first = min(cycle[:-1], key=order.index)
        at = cycle.index(first)
        shown = [*cycle[at:-1], *cycle[:at], first]
        src, loc = where[first]
        src.error(
            (*loc, "depends_on"),
            "a cycle of dependencies: " + " -> ".join(quoted(n) for n in shown),
        )
