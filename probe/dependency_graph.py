"""Which probe depends on which (`depends_on:`), as a graph: its cycles, what a probe depends
on directly and transitively, what depends on it, and the root cause of a failure.

Neutral: the config loader uses it to refuse unknown names and cycles, the application to
decide whose alert tells the story. Names only, no probes, no state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = ["DependencyGraph"]


class DependencyGraph:
    """`depends_on`: probe name -> the names it depends on (unknown names are kept out)."""

    def __init__(self, depends_on: Mapping[str, Sequence[str]]) -> None:
        self._deps: dict[str, tuple[str, ...]] = {
            name: tuple(dict.fromkeys(d for d in deps if d != name))
            for name, deps in depends_on.items()
        }
        known = set(self._deps)
        self._deps = {n: tuple(d for d in deps if d in known) for n, deps in self._deps.items()}
        self._dependents: dict[str, list[str]] = {name: [] for name in self._deps}
        for name, deps in self._deps.items():
            for dep in deps:
                self._dependents[dep].append(name)

    def __bool__(self) -> bool:
        return any(self._deps.values())

    def dependencies(self, name: str) -> tuple[str, ...]:
        """What `name` depends on directly."""
        return self._deps.get(name, ())

    def all_dependencies(self, name: str) -> list[str]:
        """What `name` depends on, directly or through others, nearest first."""
        return self._walk(name, self.dependencies)

    def all_dependents(self, name: str) -> list[str]:
        """What depends on `name`, directly or through others, nearest first."""
        return self._walk(name, lambda n: self._dependents.get(n, ()))

    def root_cause(self, name: str, is_down: Callable[[str], bool]) -> str | None:
        """The down probe among `name`'s dependencies (direct or transitive) that none of
        its own dependencies explains: the one whose alert tells what is broken. Nearest
        first when two unrelated ones are down. None when no dependency is down."""
        for dep in self.all_dependencies(name):
            if is_down(dep) and not any(is_down(d) for d in self.all_dependencies(dep)):
                return dep
        # Every down dependency has a down dependency of its own: only a cycle does that,
        # and the loader refuses cycles; still, answer with the nearest one.
        return next((d for d in self.all_dependencies(name) if is_down(d)), None)

    def find_cycle(self) -> list[str] | None:
        """One cycle, as the names along it with the first repeated at the end
        (["a", "b", "a"]), or None. Depth-first, iterative (no recursion limit)."""
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for start in self._deps:
            if state.get(start):
                continue
            path: list[str] = [start]
            pending: list[Iterable[str]] = [iter(self._deps[start])]
            state[start] = 1
            while pending:
                step = next(iter(pending[-1]), None)
                if step is None:
                    state[path.pop()] = 2
                    pending.pop()
                    continue
                if state.get(step) == 1:
                    return [*path[path.index(step) :], step]
                if not state.get(step):
                    state[step] = 1
                    path.append(step)
                    pending.append(iter(self._deps[step]))
        return None

    @staticmethod
    def _walk(name: str, neighbours: Callable[[str], Iterable[str]]) -> list[str]:
        seen = {name}
        order: list[str] = []
        frontier = [name]
        while frontier:
            following: list[str] = []
            for current in frontier:
                for nxt in neighbours(current):
                    if nxt not in seen:
                        seen.add(nxt)
                        order.append(nxt)
                        following.append(nxt)
            frontier = following
        return order
